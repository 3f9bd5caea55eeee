//! `airlock proof` writes a C2SP tlog-proof file of one release; `airlock proof verify` checks it
//! offline against a root, and refuses it after any byte of it changes.

use crate::harness::World;

#[test]
fn a_proof_verifies_offline_and_fails_after_any_byte_changes() {
    let mut world = World::new(1, 1);
    for (name, bytes) in [("a", b"alpha" as &[u8]), ("p", b"the proven one"), ("z", b"zulu")] {
        world.write(&format!("{name}-1.0.bin"), bytes);
        world.publish(&format!("{name}-1.0.bin"), name, "1.0").ok();
    }
    let url = world.url();
    let run =
        world.cli(&["proof", "p==1.0", "--server", &url, "--root", "root.cbor", "-o", "p.tlog-proof"]).ok();
    assert!(run.stdout.contains("wheel p==1.0 is leaf 2 of 4"), "{}", run.stdout);
    let bytes = std::fs::read(world.path("p.tlog-proof")).unwrap();
    assert!(bytes.starts_with(b"c2sp.org/tlog-proof@v1\nextra "), "{}", String::from_utf8_lossy(&bytes));

    // Offline: the registry is gone and the verifier has no state, only the root.
    world.server.take().unwrap().stop();
    let fresh = world.path("auditor");
    let verify = |file: &str| {
        std::process::Command::new(crate::harness::airlock_bin())
            .args(["--json", "proof", "verify", file, "--root", "root.cbor"])
            .current_dir(world.dir.path())
            .env("AIRLOCK_HOME", &fresh)
            .output()
            .unwrap()
    };
    let output = verify("p.tlog-proof");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["statement"], "wheel p==1.0");
    assert_eq!((report["leaf_index"].as_u64(), report["tree_size"].as_u64()), (Some(2), Some(4)));
    assert_eq!(report["files"][0]["blake3"], airlock_proto::Digest::of(b"the proven one").to_string());

    // Any changed byte, anywhere in the file, makes verification fail (checked through the same
    // library call the CLI makes, for every byte), and the CLI says so with the verify exit code.
    let root = airlock_keys::TrustedRoot::pin(&std::fs::read(world.path("root.cbor")).unwrap()).unwrap();
    airlock_client::proof::verify_file(&root, &bytes).unwrap();
    for at in 0..bytes.len() {
        let mut changed = bytes.clone();
        changed[at] ^= 0x01;
        assert!(
            airlock_client::proof::verify_file(&root, &changed).is_err(),
            "byte {at} changed and still verified"
        );
    }
    // Positions in the header, the entry and the checkpoint's signature line, and one byte of
    // that line made invalid base64 outright: every one is a verification failure (exit 3).
    let signature_line = bytes.len() - 10;
    for (at, replacement) in
        [(30, None), (bytes.len() / 2, None), (signature_line, None), (signature_line, Some(b'!'))]
    {
        let mut changed = bytes.clone();
        changed[at] = replacement.unwrap_or(changed[at] ^ 0x01);
        std::fs::write(world.path("changed.tlog-proof"), &changed).unwrap();
        let output = verify("changed.tlog-proof");
        assert_eq!(output.status.code(), Some(3), "byte {at}: {}", String::from_utf8_lossy(&output.stderr));
    }
}
