//! `airlockd serve --db-memory-mib` (and `db_memory_mib` in the config file) bound RocksDB's
//! memory; a budget outside 8..=65536 MiB is refused before anything is opened.

use std::process::Command;

use crate::crash::free_port;
use crate::harness::{http_get, World};

#[test]
fn the_database_memory_budget_is_taken_from_the_flag_or_the_file_and_refused_out_of_range() {
    let world = World::prepared(1, 1);
    let serve = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_airlockd"))
            .args(["serve", "--data", "data", "--root", "root.cbor", "--listen"])
            .arg(format!("127.0.0.1:{}", free_port()))
            .args(extra)
            .current_dir(world.dir.path())
            .output()
            .unwrap()
    };
    let refused = serve(&["--db-memory-mib", "4"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("db_memory_mib must be between 8 and 65536, not 4"), "{stderr}");
    world.write("airlockd.toml", b"db_memory_mib = 70000\n");
    let refused = serve(&["--config", "airlockd.toml"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not 70000"));

    // Within range it serves.
    world.write("airlockd.toml", b"db_memory_mib = 16\n");
    let port = free_port();
    let mut child =
        crate::harness::spawn_airlockd(&world, "data", port, &["--config", "airlockd.toml"], None);
    assert_eq!(http_get(&format!("http://127.0.0.1:{port}"), "/healthz").0, 200);
    let _ = child.kill();
    let _ = child.wait();
}
