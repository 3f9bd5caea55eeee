//! `GET /metrics`: scraped before and after known requests, the counters move by exactly what
//! was asked, through a parser of the text format that also checks every sample's family is
//! declared and the exposition ends with `# EOF`.

use std::collections::HashMap;

use airlock_proto::Digest;

use crate::harness::{http_get, http_get_with, http_request, Server, World};

/// A scrape: each sample line `name{labels} value` by its series text.
pub(crate) fn scrape(url: &str) -> HashMap<String, f64> {
    let (status, headers, body) = http_get_with(url, "/metrics", None);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(headers["content-type"].starts_with("application/openmetrics-text"), "{headers:?}");
    parse(&String::from_utf8(body).unwrap())
}

/// Parses the OpenMetrics text format: `# HELP`/`# TYPE` lines declare families, sample lines
/// carry a series and a value, and the text ends with `# EOF`.
fn parse(text: &str) -> HashMap<String, f64> {
    assert!(text.ends_with("# EOF\n"), "no EOF marker");
    let mut families: Vec<(String, String)> = Vec::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            families.push((name.to_owned(), kind.to_owned()));
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let name = series.split('{').next().unwrap();
        let declared = families.iter().any(|(family, kind)| {
            let suffixes: &[&str] = match kind.as_str() {
                "counter" => &["_total", "_created"],
                "histogram" => &["_bucket", "_count", "_sum", "_created"],
                _ => &[""],
            };
            suffixes.iter().any(|suffix| name == format!("{family}{suffix}"))
        });
        assert!(declared, "sample {name} has no family declared before it");
        samples.insert(
            series.to_owned(),
            value.parse::<f64>().unwrap_or_else(|_| panic!("bad value in {line:?}")),
        );
    }
    samples
}

/// A series' value; the series must be in the scrape.
pub(crate) fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples.get(series).unwrap_or_else(|| panic!("{series} is not in the scrape"))
}

pub(crate) fn requests(route: &str, method: &str, status: u16) -> String {
    format!("airlock_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}}")
}

#[test]
fn metrics_move_with_the_requests_made_and_report_the_store_the_log_and_gc() {
    let mut world = World::prepared(1, 1);
    let admin = world.admin_token();
    world.server = Some(Server::start(world.config()));
    let url = world.url();
    world.write("a.bin", b"metrics bytes");
    world.publish("a.bin", "a", "1.0").ok();
    let blob = format!("/v1/blobs/blake3/{}", Digest::of(b"metrics bytes").to_hex());
    let missing = format!("/v1/blobs/blake3/{}", Digest::of(b"never stored").to_hex());

    let before = scrape(&url);
    for _ in 0..3 {
        assert_eq!(http_get(&url, "/healthz").0, 200);
    }
    for _ in 0..2 {
        assert_eq!(http_get(&url, &blob).0, 200);
    }
    assert_eq!(http_get(&url, &missing).0, 404);
    assert_eq!(http_get(&url, "/simple/").0, 200);
    let after = scrape(&url);
    // A series may first appear in the second scrape (no such request before it).
    let moved = |series: &str| value(&after, series) - before.get(series).copied().unwrap_or(0.0);
    assert_eq!(moved(&requests("healthz", "GET", 200)), 3.0);
    assert_eq!(moved(&requests("blob", "GET", 200)), 2.0);
    assert_eq!(moved(&requests("blob", "GET", 404)), 1.0);
    assert_eq!(moved(&requests("simple", "GET", 200)), 1.0);
    // The first scrape is counted by the second.
    assert_eq!(moved(&requests("metrics", "GET", 200)), 1.0);
    assert_eq!(moved("airlock_http_request_duration_seconds_count{route=\"healthz\"}"), 3.0);
    // Every request above sent its head and read an answer: bytes moved both ways, at least
    // the two blob bodies out.
    assert!(moved("airlock_received_bytes_total") > 0.0);
    assert!(moved("airlock_sent_bytes_total") >= 2.0 * b"metrics bytes".len() as f64);
    // The scraping connection itself is open.
    assert!(value(&after, "airlock_open_connections") >= 1.0);
    assert_eq!(value(&after, "airlock_log_size"), world.log_size() as f64);
    assert_eq!(value(&after, "airlock_stored_blobs"), 1.0);
    assert_eq!(value(&after, "airlock_stored_blob_bytes"), b"metrics bytes".len() as f64);
    assert!(value(&after, "airlock_checkpoint_age_seconds") < 300.0);

    // A garbage collection is counted with what it removed.
    let upload = format!("/v1/blobs/blake3/{}", Digest::of(b"orphan").to_hex());
    assert_eq!(http_request("PUT", &url, &upload, Some(&world.publish_token), b"orphan").0, 201);
    let (status, body) =
        http_request("POST", &url, "/v1/admin/gc", Some(&admin), br#"{"dry_run":false,"grace_secs":0}"#);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let collected = scrape(&url);
    assert_eq!(value(&collected, "airlock_gc_runs_total"), 1.0);
    assert_eq!(value(&collected, "airlock_gc_removed_blobs_total"), 1.0);
    assert_eq!(value(&collected, "airlock_gc_freed_bytes_total"), b"orphan".len() as f64);

    // A mirror reports its lag and last sync.
    let (config, mirror_admin) = crate::mirror::mirror_config(&world, "site", &url);
    let mirror = Server::start(config);
    crate::mirror::sync(&mirror, &mirror_admin);
    let mirrored = scrape(&mirror.url);
    assert_eq!(value(&mirrored, "airlock_mirror_last_sync_ok"), 1.0);
    assert_eq!(value(&mirrored, "airlock_mirror_lag_leaves"), 0.0);
    assert_eq!(value(&mirrored, "airlock_log_size"), world.log_size() as f64);
    assert_eq!(value(&mirrored, "airlock_stored_blobs"), 1.0);
}

#[test]
fn metrics_need_a_read_token_where_reads_do() {
    let mut world = World::prepared(1, 1);
    let mut config = world.config();
    config.read_access = airlock_server::config::ReadAccess::TokenRequired;
    world.server = Some(Server::start(config));
    let url = world.url();
    assert_eq!(http_get(&url, "/metrics").0, 401);
    let (status, body) = http_request("GET", &url, "/metrics", Some(&world.read_token), b"");
    assert_eq!(status, 200);
    parse(&String::from_utf8(body).unwrap());
}
