//! The zero-copy path (`zero_copy.rs`): with `airlockd serve --zero-copy`, on plain HTTP/1 a blob
//! body larger than 64 KiB goes from its file to the socket by `sendfile`. These tests check that it sends exactly the blob's
//! bytes, whole, in ranges across its 4 MiB chunks and between other responses on one
//! pipelined connection; that the `airlock_sent_zero_copy_bytes_total` counter shows it was
//! taken (and not without the flag); that h2 and TLS copy instead and still send the same bytes; and that a file shorter
//! than its record ends the body early rather than send anything else.

use std::io::{BufRead, BufReader, Read, Write};

use airlock_proto::Digest;

use crate::harness::{read_response, Server, World};
use crate::metrics::scrape;

const COUNTER: &str = "airlock_sent_zero_copy_bytes_total";

fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    blake3::Hasher::new().update(&rand::random::<[u8; 32]>()).finalize_xof().fill(&mut bytes);
    bytes
}

/// A blob spanning three 4 MiB chunks, published.
fn world_with_blob() -> (World, Vec<u8>, String) {
    let world = World::new(1, 1);
    let bytes = random_bytes(9 * 1024 * 1024 + 4321);
    world.write("big.bin", &bytes);
    world.publish("big.bin", "big", "1.0").ok();
    let path = format!("/v1/blobs/blake3/{}", Digest::of(&bytes).to_hex());
    (world, bytes, path)
}

/// A world whose blob is served by a real `airlockd serve --zero-copy` (killed on drop).
struct ZeroCopyServer {
    child: std::process::Child,
    url: String,
}

impl Drop for ZeroCopyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn zero_copy_server(world: &mut World) -> ZeroCopyServer {
    world.server.take().unwrap().stop();
    let port = crate::crash::free_port();
    let child = crate::harness::spawn_airlockd(world, "data", port, &["--zero-copy"], None);
    ZeroCopyServer { child, url: format!("http://127.0.0.1:{port}") }
}

#[test]
fn large_blobs_go_by_sendfile_exactly_whole_ranged_and_between_other_responses() {
    let (mut world, bytes, path) = world_with_blob();
    let size = bytes.len();
    // Without --zero-copy the body is copied: same bytes, the counter stays at zero.
    assert!(crate::harness::http_get(&world.url(), &path).1 == bytes);
    assert_eq!(scrape(&world.url())[COUNTER], 0.0, "zero-copy without --zero-copy");

    let server = zero_copy_server(&mut world);
    let url = server.url.clone();
    let before = scrape(&url).get(COUNTER).copied().unwrap_or(0.0);

    let host = url.trim_start_matches("http://").to_owned();
    let stream = std::net::TcpStream::connect(&host).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    // Across the first chunk boundary and into the third chunk; then a tail range.
    let (cross_start, cross_end) = ((4 << 20) - 10, (8 << 20) + 5);
    let tail = size - 70_000;
    // Pipelined: every request is sent before any answer is read.
    let requests = [
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nRange: bytes={cross_start}-{cross_end}\r\n\r\n"),
        format!("GET /v1/log/checkpoint HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nRange: bytes={tail}-\r\n\r\n"),
        format!("HEAD {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    ];
    writer.write_all(requests.concat().as_bytes()).unwrap();

    let (status, _, body) = read_response(&mut reader, false);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body == bytes, "the whole blob differs");
    let (status, head, body) = read_response(&mut reader, false);
    assert_eq!(status, "HTTP/1.1 206 Partial Content");
    assert!(head.contains(&format!("content-range: bytes {cross_start}-{cross_end}/{size}")), "{head}");
    assert!(body == bytes[cross_start..=cross_end], "the range across chunks differs");
    let (status, _, body) = read_response(&mut reader, false);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(String::from_utf8(body).unwrap().starts_with("test.airlock\n"));
    let (status, _, body) = read_response(&mut reader, false);
    assert_eq!(status, "HTTP/1.1 206 Partial Content");
    assert!(body == bytes[tail..], "the tail range differs");
    let (status, head, body) = read_response(&mut reader, true);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(head.contains(&format!("content-length: {size}")) && body.is_empty(), "{head}");
    let (status, _, body) = read_response(&mut reader, false);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body == bytes, "the whole blob differs the second time");
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{} bytes after the last response", rest.len());

    let sent = scrape(&url)[COUNTER] - before;
    let expected = 2 * size + (cross_end - cross_start + 1) + (size - tail);
    assert_eq!(sent, expected as f64, "bytes sent by sendfile");
}

#[test]
fn h2_and_tls_copy_the_bytes_and_send_the_same() {
    let (mut world, bytes, path) = world_with_blob();
    let server = zero_copy_server(&mut world);
    let url = server.url.clone();
    let before = scrape(&url)[COUNTER];
    // HTTP/2 with prior knowledge on the plain port: h2 frames carry copies.
    let addr = url.trim_start_matches("http://").to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (version, body) = runtime.block_on(async {
        use http_body_util::BodyExt;
        let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        let request = http::Request::get(format!("http://{addr}{path}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        (response.version(), response.into_body().collect().await.unwrap().to_bytes())
    });
    // Closes the h2 connection, which would otherwise hold the server's shutdown back.
    drop(runtime);
    assert_eq!(version, http::Version::HTTP_2);
    assert!(body == bytes, "the blob over h2 differs");
    assert_eq!(scrape(&url)[COUNTER], before, "h2 must not use the zero-copy path");

    // TLS: the same data directory served over rustls, pulled by the client.
    drop(server);
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    world.write("tls/cert.pem", cert.cert.pem().as_bytes());
    world.write("tls/key.pem", cert.key_pair.serialize_pem().as_bytes());
    let mut config = world.config();
    config.zero_copy = true;
    config.tls = Some(airlock_server::config::TlsFiles {
        cert: world.path("tls/cert.pem"),
        key: world.path("tls/key.pem"),
    });
    world.server = Some(Server::start_tls(config));
    let tls_url = world.url();
    world
        .cli(&[
            "--ca-cert",
            "tls/cert.pem",
            "pull",
            "big==1.0",
            "--server",
            &tls_url,
            "--root",
            "root.cbor",
            "-o",
            "big.out",
        ])
        .ok();
    assert!(std::fs::read(world.path("big.out")).unwrap() == bytes, "the blob over TLS differs");
}

#[test]
fn a_file_shorter_than_its_record_ends_the_body_early_and_sends_nothing_else() {
    let (mut world, bytes, path) = world_with_blob();
    let server = zero_copy_server(&mut world);
    let hex = Digest::of(&bytes).to_hex();
    let file = world.path(&format!("data/blobs/{}/{hex}", &hex[..2]));
    let kept = 5 * 1024 * 1024 + 7;
    std::fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(kept as u64).unwrap();

    let host = server.url.trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&host).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    // The connection closes after what the file holds: the client sees a cut, never other bytes.
    let mut body = Vec::new();
    reader.read_to_end(&mut body).unwrap();
    assert_eq!(body.len(), kept, "bytes before the cut");
    assert!(body == bytes[..kept], "the bytes before the cut differ");
}
