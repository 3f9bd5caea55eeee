//! Guards against the Nagle / delayed-ACK stall: 100 sequential requests on one keep-alive
//! connection must take well under a second (a stalled server needs ~4 s).

use std::io::{BufReader, Write};
use std::time::{Duration, Instant};

use crate::harness::{read_response, World};

#[test]
fn hundred_keepalive_requests_take_under_a_second() {
    let world = World::new(1, 1);
    let host = world.url().trim_start_matches("http://").to_owned();
    let stream = std::net::TcpStream::connect(&host).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let started = Instant::now();
    for _ in 0..100 {
        // Headers and body in two writes, as real clients often send them.
        write!(writer, "GET /v1/log/checkpoint HTTP/1.1\r\nHost: {host}\r\n").unwrap();
        writer.write_all(b"\r\n").unwrap();
        let (status, _, _) = read_response(&mut reader, false);
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    }
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(1), "100 keep-alive requests took {elapsed:?}");
}
