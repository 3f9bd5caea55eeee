//! Crash safety: `airlockd` is killed with SIGKILL during a stream of uploads and statements.
//! After a restart, every acknowledged write is served with the right bytes, and nothing partial
//! is visible or recorded.

use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_keys::{read_secret_key, sign_envelope};
use airlock_proto::{Digest, Kind, Metadata, PackageName, Version};

use crate::harness::{http_get, http_request, World};
use crate::publish_pull::walk_files;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn spawn_server(world: &World, port: u16) -> Child {
    crate::harness::spawn_airlockd(world, "data", port, &[], None)
}

struct Acked {
    blobs: Vec<(Digest, Vec<u8>)>,
    statements: usize,
}

#[test]
fn sigkill_during_uploads_loses_no_acknowledged_write_and_exposes_no_partial_one() {
    let world = World::prepared(1, 1);
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = spawn_server(&world, port);
    let token = world.publish_token.clone();
    let publisher = read_secret_key(&world.path("keys/pub1.key")).unwrap();
    let acked = Arc::new(Mutex::new(Acked { blobs: Vec::new(), statements: 0 }));

    // A slow upload that is certainly in flight when the server dies.
    let partial: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    let partial_digest = Digest::of(&partial);
    let slow_url = url.clone();
    let slow_token = token.clone();
    let slow = std::thread::spawn(move || {
        use std::io::Write;
        let host = slow_url.trim_start_matches("http://").to_owned();
        let mut stream = std::net::TcpStream::connect(&host).unwrap();
        let head = format!(
            "PUT /v1/blobs/blake3/{} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {slow_token}\r\nContent-Length: {}\r\n\r\n",
            partial_digest.to_hex(),
            partial.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        let _ = stream.write_all(&partial[..partial.len() / 2]);
        std::thread::sleep(Duration::from_secs(5));
    });

    let writer_acked = Arc::clone(&acked);
    let writer_url = url.clone();
    let writer = std::thread::spawn(move || {
        for i in 0u32.. {
            let size = 100_000 + (rand::random::<u32>() % 1_500_000) as usize;
            let bytes: Vec<u8> = (0..size).map(|_| rand::random::<u8>()).collect();
            let digest = Digest::of(&bytes);
            let (status, _) = http_request(
                "PUT",
                &writer_url,
                &format!("/v1/blobs/blake3/{}", digest.to_hex()),
                Some(&token),
                &bytes,
            );
            if status != 201 {
                return;
            }
            writer_acked.lock().unwrap().blobs.push((digest, bytes.clone()));
            let filename = format!("crash_pkg-{i}.0.bin");
            let digests = airlock_client::publish::FileDigests {
                size: bytes.len() as u64,
                blake3: digest,
                sha256: airlock_proto::Sha256(sha256(&bytes)),
            };
            let mut envelope = airlock_client::publish::release_envelope(
                Kind::Wheel,
                PackageName::new(Kind::Wheel, "crash-pkg").unwrap(),
                Version::new(&format!("{i}.0")).unwrap(),
                (airlock_proto::FileName::new(&filename).unwrap(), digests),
                Metadata::default(),
                0,
            )
            .unwrap();
            sign_envelope(&mut envelope, &publisher);
            let (status, _) = http_request(
                "POST",
                &writer_url,
                "/v1/statements",
                Some(&token),
                &envelope.to_bytes().unwrap(),
            );
            if status != 201 {
                return;
            }
            writer_acked.lock().unwrap().statements += 1;
        }
    });

    std::thread::sleep(Duration::from_millis(1500));
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    writer.join().unwrap();
    slow.join().unwrap();

    let acked = acked.lock().unwrap();
    assert!(acked.blobs.len() >= 3, "too few uploads finished before the kill to mean anything");
    let mut server = spawn_server(&world, port);
    assert_eq!(std::fs::read_dir(world.path("data/tmp")).unwrap().count(), 0, "temp files survived restart");
    for (digest, bytes) in &acked.blobs {
        let (status, body) = http_request(
            "GET",
            &url,
            &format!("/v1/blobs/blake3/{}", digest.to_hex()),
            Some(&world.publish_token),
            b"",
        );
        assert_eq!(status, 200, "acknowledged blob {digest} lost");
        assert!(body == *bytes, "acknowledged blob {digest} has other bytes");
    }
    let (status, _) = http_request(
        "GET",
        &url,
        &format!("/v1/blobs/blake3/{}", partial_digest.to_hex()),
        Some(&world.publish_token),
        b"",
    );
    assert_eq!(status, 404, "a partial upload became visible");
    for path in walk_files(&world.path("data/blobs")) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            Digest::of(&std::fs::read(&path).unwrap()).to_hex(),
            name,
            "stored blob does not match its name"
        );
    }
    // Every acknowledged statement is in the log, and the log still verifies end to end.
    let (_, checkpoint) = http_get(&url, "/v1/log/checkpoint");
    let size = airlock_proto::Checkpoint::from_note_unverified(&checkpoint).unwrap().size;
    assert!(
        size > acked.statements as u64,
        "log size {size} lost acknowledged statements ({})",
        acked.statements
    );
    if acked.statements > 0 {
        let last = format!("crash-pkg=={}.0", acked.statements - 1);
        world.pull_from(&url, &last, "last.bin").ok();
    }
    server.kill().unwrap();
    server.wait().unwrap();
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}
