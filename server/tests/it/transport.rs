//! Transport: real TLS with rustls, header-read timeouts, graceful shutdown.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::harness::{http_get, Server, World};

#[test]
fn pull_over_tls_with_a_pinned_ca() {
    let mut world = World::prepared(1, 1);
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    world.write("tls/cert.pem", cert.cert.pem().as_bytes());
    world.write("tls/key.pem", cert.key_pair.serialize_pem().as_bytes());
    let mut config = world.config();
    config.tls = Some(airlock_server::config::TlsFiles {
        cert: world.path("tls/cert.pem"),
        key: world.path("tls/key.pem"),
    });
    world.server = Some(Server::start_tls(config));
    let url = world.url().replace("http://", "https://");
    world.write("t-1.0.bin", b"over tls");
    let token = world.publish_token.clone();
    world
        .publish_to(&url, Some(&token), "t-1.0.bin", "wheel", "t", "1.0", &["--ca-cert", "tls/cert.pem"])
        .ok();
    world
        .cli(&[
            "--ca-cert",
            "tls/cert.pem",
            "pull",
            "t==1.0",
            "--server",
            &url,
            "--root",
            "root.cbor",
            "-o",
            "t.bin",
        ])
        .ok();
    assert_eq!(std::fs::read(world.path("t.bin")).unwrap(), b"over tls");
    // Without the CA the certificate is not trusted.
    world
        .cli(&["pull", "t==1.0", "--server", &url, "--root", "root.cbor", "-o", "u.bin"])
        .code(1)
        .says("certificate");
}

#[test]
fn slow_headers_are_cut_off_and_others_still_served() {
    let world = World::prepared(1, 1);
    let mut config = world.config();
    config.limits.header_read_timeout = Duration::from_secs(1);
    let server = Server::start(config);
    let mut slow = std::net::TcpStream::connect(server.addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    // Meanwhile other clients are served.
    assert_eq!(http_get(&server.url, "/healthz").0, 200);
    let started = Instant::now();
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "slow connection held for {waited:?}");
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"), "incomplete request must not be answered");
}

#[test]
fn graceful_shutdown_with_an_idle_keepalive_connection() {
    let world = World::prepared(1, 1);
    let server = Server::start(world.config());
    let mut idle = std::net::TcpStream::connect(server.addr).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let started = Instant::now();
    server.stop();
    assert!(started.elapsed() < Duration::from_secs(8), "shutdown waited for an idle connection");
}
