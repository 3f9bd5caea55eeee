//! Logs: `--log-format json` writes one JSON object a line; each request's id is in every line
//! logged while it is answered and in its `X-Request-Id` header; `--access-log` logs one line a
//! request; `--audit-log FILE` keeps the audit log of writes apart from the main log; no token
//! appears in either.

use airlock_proto::Digest;

use crate::harness::{http_get_with, http_request, spawn_airlockd, World};

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

#[test]
fn json_logs_carry_request_ids_the_access_log_names_requests_and_the_audit_log_is_apart() {
    let world = World::prepared(1, 1);
    let port = crate::crash::free_port();
    let log = std::fs::File::create(world.path("airlockd.log")).unwrap();
    let args = ["--log-format", "json", "--access-log", "--audit-log", "audit.jsonl"];
    let mut child = spawn_airlockd(&world, "data", port, &args, Some(log));
    let url = format!("http://127.0.0.1:{port}");
    let (status, headers, _) = http_get_with(&url, "/healthz", None);
    assert_eq!(status, 200);
    let id = headers.get("x-request-id").expect("an X-Request-Id header").clone();
    let (_, again, _) = http_get_with(&url, "/healthz", None);
    assert_ne!(again["x-request-id"], id, "request ids repeat");
    let digest = Digest::of(b"logged upload");
    let upload = format!("/v1/blobs/blake3/{}", digest.to_hex());
    assert_eq!(http_request("PUT", &url, &upload, Some(&world.publish_token), b"logged upload").0, 201);
    let _ = child.kill();
    let _ = child.wait();

    let main = std::fs::read_to_string(world.path("airlockd.log")).unwrap();
    let audit = std::fs::read_to_string(world.path("audit.jsonl")).unwrap();
    for text in [&main, &audit] {
        assert!(!text.contains(&world.publish_token), "a token was logged");
    }
    let main = json_lines(&main);
    let audit = json_lines(&audit);
    let span_id = |line: &serde_json::Value| line["span"]["id"].as_str().map(str::to_owned);
    // The access line of the first request carries the id its answer gave.
    let access: Vec<&serde_json::Value> = main.iter().filter(|l| l["target"] == "airlock::access").collect();
    let first = access
        .iter()
        .find(|l| span_id(l).as_deref() == Some(id.as_str()))
        .expect("an access line with the id");
    assert_eq!(
        (first["fields"]["method"].as_str(), first["fields"]["path"].as_str()),
        (Some("GET"), Some("/healthz"))
    );
    assert_eq!(first["fields"]["status"], 200);
    // The upload's audit line is in the audit file only, with the id of the upload's access line.
    assert!(main.iter().all(|l| l["target"] != "airlock::audit"), "audit lines in the main log");
    let written = audit
        .iter()
        .find(|l| l["fields"]["what"] == format!("PUT {upload}"))
        .expect("the upload's audit line");
    assert_eq!(written["fields"]["status"], 201);
    let put = access.iter().find(|l| l["fields"]["method"] == "PUT").expect("the upload's access line");
    assert_eq!(span_id(written), span_id(put));
    assert!(span_id(put).is_some());
}
