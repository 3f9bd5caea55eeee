//! Timed HTTP/1.1 downloads over a plain socket, shared by the benchmarks.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use airlock_proto::Digest;
use anyhow::{bail, ensure, Context};

use super::connect;

/// GETs `path` (expecting exactly `size` bytes) reading into `buf` and discarding; when
/// `verify` is given, hashes the body and checks it. Returns the time taken.
pub fn download(
    addr: SocketAddr,
    path: &str,
    size: u64,
    buf: &mut [u8],
    verify: Option<&Digest>,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    fetch(connect(addr)?, addr, path, size, buf, verify)?;
    Ok(start.elapsed())
}

/// The GET of `download` over an open `stream` (plain or TLS): the request, the response head,
/// then exactly `size` bytes of body, hashed and checked when `verify` is given.
pub fn fetch(
    mut stream: impl Read + Write,
    addr: SocketAddr,
    path: &str,
    size: u64,
    buf: &mut [u8],
    verify: Option<&Digest>,
) -> anyhow::Result<()> {
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes())?;

    // The response head, and whatever part of the body came with it.
    let mut filled = 0;
    let head_end = loop {
        ensure!(filled < 64 * 1024, "response head over 64 KiB");
        let n = stream.read(&mut buf[filled..])?;
        ensure!(n > 0, "connection closed before the response head");
        filled += n;
        if let Some(end) = find_header_end(&buf[..filled]) {
            break end;
        }
    };
    let head = std::str::from_utf8(&buf[..head_end])?.to_owned();
    let status = parse_status(&head)?;
    if status != 200 {
        let mut rest = buf[head_end..filled].to_vec();
        let _ = (&mut stream).take(64 * 1024).read_to_end(&mut rest);
        bail!("GET {path}: HTTP {status}: {}", String::from_utf8_lossy(&rest).trim());
    }
    let length: u64 = header_value(&head, "content-length")
        .context("response has no Content-Length")?
        .parse()
        .context("bad Content-Length")?;
    ensure!(length == size, "GET {path}: Content-Length {length}, expected {size}");

    let mut hasher = verify.map(|_| blake3::Hasher::new());
    let mut received = (filled - head_end) as u64;
    if let Some(h) = hasher.as_mut() {
        h.update(&buf[head_end..filled]);
    }
    while received < size {
        let n = stream.read(buf)?;
        ensure!(n > 0, "GET {path}: connection closed after {received} of {size} bytes");
        if let Some(h) = hasher.as_mut() {
            h.update(&buf[..n]);
        }
        received += n as u64;
    }
    ensure!(received == size, "GET {path}: {received} bytes received, {size} expected");
    if let (Some(h), Some(expected)) = (hasher, verify) {
        let got = Digest::from_bytes(*h.finalize().as_bytes());
        ensure!(got == *expected, "GET {path}: body hashes to {got}, expected {expected}");
    }
    Ok(())
}

/// The length of the response head including its blank line, once it is complete.
pub fn find_header_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

pub fn parse_status(head: &str) -> anyhow::Result<u16> {
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line: {:?}", head.lines().next().unwrap_or_default()))
}

pub fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// Requests per second wrk reaches against `url`.
pub fn wrk(url: &str, threads: u32, connections: u32, secs: u64) -> anyhow::Result<f64> {
    let out = Command::new("wrk")
        .args(["-t", &threads.to_string(), "-c", &connections.to_string(), "-d", &format!("{secs}s"), url])
        .output()
        .context("run wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.contains("Non-2xx") || text.contains("Socket errors") {
        bail!("wrk against {url} failed or saw errors:\n{text}{}", String::from_utf8_lossy(&out.stderr));
    }
    let line = text.lines().find(|l| l.starts_with("Requests/sec:")).context("wrk printed no rate")?;
    line.trim_start_matches("Requests/sec:").trim().parse().context("wrk's rate")
}
