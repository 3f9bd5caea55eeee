//! Tokens over their lifetime: created, listed and revoked on a stopped server's data directory
//! or through a running server (`airlockd token ... --server`), refused at once when revoked or
//! expired, and never printed by a listing.

use std::process::Command;

use airlock_proto::Clock;

use crate::harness::{http_request, Server, World};

fn airlockd(world: &World, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_airlockd"))
        .args(args)
        .current_dir(world.dir.path())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn upload(url: &str, token: &str, bytes: &[u8]) -> (u16, String) {
    let path = format!("/v1/blobs/blake3/{}", airlock_proto::Digest::of(bytes).to_hex());
    let (status, body) = http_request("PUT", url, &path, Some(token), bytes);
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn tokens_are_created_listed_revoked_and_expire_on_a_running_server() {
    let mut world = World::prepared(1, 1);
    let admin =
        airlock_server::cli::token_create(&world.path("data"), airlock_server::auth::Scope::Admin, "ops")
            .unwrap();
    // Stopped: the data directory is read directly; a listing never shows a token.
    let (ok, listed, _) = airlockd(&world, &["token", "list", "--data", "data"]);
    assert!(ok && listed.contains("ops") && listed.contains("admin"), "{listed}");
    assert!(!listed.contains(&admin) && !listed.contains("alk_"), "a token was printed: {listed}");

    let mut config = world.config();
    let (clock, time) = Clock::manual(airlock_proto::clock::system_now());
    config.clock = clock;
    world.server = Some(Server::start(config));
    let url = world.url();
    world.write("admin.token", admin.as_bytes());
    let running = ["--server", url.as_str(), "--admin-token-file", "admin.token"];
    let create = |label: &str| {
        let mut args =
            vec!["token", "create", "--scope", "publish", "--label", label, "--expires-in-days", "1"];
        args.extend_from_slice(&running);
        let (ok, token, stderr) = airlockd(&world, &args);
        assert!(ok, "{stderr}");
        token.trim().to_owned()
    };
    let ci = create("ci");
    assert_eq!(upload(&url, &ci, b"first").0, 201);
    let mut args = vec!["token", "list"];
    args.extend_from_slice(&running);
    let (ok, listed, _) = airlockd(&world, &args);
    assert!(ok && listed.contains("ci") && listed.contains("publish") && !listed.contains(&ci), "{listed}");

    // Revoked through the running server: refused at the next request.
    let mut args = vec!["token", "revoke", "ci"];
    args.extend_from_slice(&running);
    let (ok, out, err) = airlockd(&world, &args);
    assert!(ok && out.contains("revoked 1 token(s)"), "{out}{err}");
    let (status, body) = upload(&url, &ci, b"second");
    assert_eq!(status, 401);
    assert!(body.contains("not recognised"), "{body}");
    let (ok, _, err) = airlockd(&world, &args);
    assert!(!ok && err.contains("no token has id or label"), "{err}");

    // Expired: refused once the server's clock passes its expiry.
    let later = create("short-lived");
    assert_eq!(upload(&url, &later, b"third").0, 201);
    time.advance(2 * 86_400);
    let (status, body) = upload(&url, &later, b"fourth");
    assert_eq!(status, 401);
    assert!(body.contains("expired at"), "{body}");
    // A non-admin token cannot manage tokens.
    let (status, _) = http_request("GET", &url, "/v1/admin/tokens", Some(&world.publish_token), b"");
    assert_eq!(status, 403);
}
