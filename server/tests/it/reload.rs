//! `airlockd reload`: the TLS certificate is read again and used for new connections, while a
//! keep-alive connection made before it goes on answering; a certificate that does not load is
//! refused and the old one stays. The config file's log level and a mirror's carry filter are
//! read again: a wider filter fetches the blobs it takes in, a narrower one leaves blobs for GC,
//! and a file that does not load changes nothing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use airlock_proto::Digest;

use crate::harness::{http_request, spawn_airlockd, Server, World};

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to `addr` trusting only `cert_der`.
fn connect(addr: std::net::SocketAddr, cert_der: &[u8]) -> std::io::Result<Tls> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(cert_der.to_vec())).unwrap();
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(connection, TcpStream::connect(addr)?);
    tls.flush()?; // completes the handshake, or fails it
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// `GET /healthz` on a keep-alive connection; the status.
fn healthz(tls: &mut Tls) -> std::io::Result<u16> {
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a content-length");
    let mut body = vec![0u8; length];
    tls.read_exact(&mut body)?;
    Ok(head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0))
}

/// A new self-signed certificate for 127.0.0.1 in tls/; its DER. `ca.pem` (which `airlockd
/// reload` trusts) gets it appended, so the command trusts the server before and after.
fn certificate(world: &World) -> Vec<u8> {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    world.write("tls/cert.pem", cert.cert.pem().as_bytes());
    world.write("tls/key.pem", cert.key_pair.serialize_pem().as_bytes());
    let mut trusted = std::fs::read(world.path("ca.pem")).unwrap_or_default();
    trusted.extend_from_slice(cert.cert.pem().as_bytes());
    world.write("ca.pem", &trusted);
    cert.cert.der().to_vec()
}

#[test]
fn reload_swaps_the_tls_certificate_for_new_connections_without_dropping_open_ones() {
    let mut world = World::prepared(1, 1);
    world.admin_token();
    let first = certificate(&world);
    let mut config = world.config();
    config.tls = Some(airlock_server::config::TlsFiles {
        cert: world.path("tls/cert.pem"),
        key: world.path("tls/key.pem"),
    });
    world.server = Some(Server::start_tls(config));
    let addr = world.server.as_ref().unwrap().addr;
    let url = world.url();
    let reload = || {
        world.airlockd(&[
            "reload",
            "--server",
            url.as_str(),
            "--admin-token-file",
            "admin.token",
            "--ca-cert",
            "ca.pem",
        ])
    };
    let mut open = connect(addr, &first).unwrap();
    assert_eq!(healthz(&mut open).unwrap(), 200);

    // A certificate file that does not load is refused; the old certificate stays in force.
    std::fs::write(world.path("tls/key.pem"), b"not a key").unwrap();
    reload().code(1).says("the TLS certificate was not reloaded");
    assert_eq!(healthz(&mut connect(addr, &first).unwrap()).unwrap(), 200);

    let second = certificate(&world);
    reload().ok().says("reloaded the TLS certificate");
    // The connection made before the reload still answers on the same stream.
    assert_eq!(healthz(&mut open).unwrap(), 200);
    assert_eq!(healthz(&mut open).unwrap(), 200);
    // New connections get the new certificate: trusted with it, refused with the old one.
    assert_eq!(healthz(&mut connect(addr, &second).unwrap()).unwrap(), 200);
    assert!(connect(addr, &first).and_then(|mut tls| healthz(&mut tls)).is_err());
}

fn blob_held(world: &World, data: &str, bytes: &[u8]) -> bool {
    let hex = Digest::of(bytes).to_hex();
    world.path(&format!("{data}/blobs/{}/{hex}", &hex[..2])).exists()
}

#[test]
fn reload_reads_the_log_level_and_the_carry_filter_again_from_the_config_file() {
    let world = World::new(1, 1);
    let (a, b) = (b"alpha wheel bytes".as_slice(), b"bravo wheel bytes".as_slice());
    world.write("a.bin", a);
    world.publish("a.bin", "a", "1.0").ok();
    world.write("b.bin", b);
    world.publish("b.bin", "b", "1.0").ok();
    let upstream = world.url();
    let (_, admin) = crate::mirror::mirror_config(&world, "site", &upstream);
    world.write("site.token", admin.as_bytes());
    let settings = |level: &str, names: &str| {
        let text = format!("upstream = {upstream:?}\nlog_level = {level:?}\ncarry_names = [{names}]\n");
        world.write("site.toml", text.as_bytes());
    };
    settings("warn", "\"a\"");
    let port = crate::crash::free_port();
    let log = std::fs::File::create(world.path("site.log")).unwrap();
    // RUST_LOG=info is in the environment: the file's level is over it.
    let mut child = spawn_airlockd(&world, "site", port, &["--config", "site.toml"], Some(log));
    let url = format!("http://127.0.0.1:{port}");
    let (status, body) = http_request("POST", &url, "/v1/mirror/sync", Some(&admin), b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(blob_held(&world, "site", a) && !blob_held(&world, "site", b));
    let logged = || std::fs::read_to_string(world.path("site.log")).unwrap();
    assert!(!logged().contains(" INFO "), "info lines under log_level = warn:\n{}", logged());
    let reload = || world.airlockd(&["reload", "--server", url.as_str(), "--admin-token-file", "site.token"]);

    // A file that does not load changes nothing, neither the level nor the filter.
    settings("warn,[", "\"a\", \"b\"");
    reload().code(1).says("nothing was reloaded").says("is not a log level");
    assert!(!blob_held(&world, "site", b));

    // Wider: the sync that follows fetches b's blob; the level is info now.
    settings("info", "\"a\", \"b\"");
    let run = reload().ok().says("the carry filter changed").says("synced: 1 blob(s) fetched");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["log_level"], "info");
    assert!(blob_held(&world, "site", b));
    assert!(logged().contains("configuration reloaded"), "{}", logged());

    // Narrower: b's blob is no longer carried, and GC takes it.
    settings("info", "\"a\"");
    reload().ok().says("the carry filter changed");
    let gc = ["gc", "--grace", "0s", "--server", url.as_str(), "--admin-token-file", "site.token"];
    let run = world.airlockd(&gc).ok();
    assert!(run.stdout.contains("uncarried"), "{}", run.stdout);
    assert!(blob_held(&world, "site", a) && !blob_held(&world, "site", b));
    let _ = child.kill();
    let _ = child.wait();
}
