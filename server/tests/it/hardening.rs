//! The defects an adversarial review found (issue "Hardening"), one test each, named after what
//! it shows.

use airlock_proto::Clock;

use crate::harness::{http_get, http_request, Server, World};

const DAY: u64 = 86_400;

/// `airlock root create --from root.cbor` with extra arguments, signed by root1 as the next
/// root of `root.cbor`.
fn create_root(world: &World, out: &str, extra: &[&str]) {
    world.root_next("root.cbor", out, extra);
}

fn submit(world: &World, file: &str) -> crate::harness::Run {
    world.cli(&["submit", file, "--server", &world.url(), "--token", &world.publish_token])
}

/// Defect 1: once the root in force lapsed, the registry refused every statement, including the
/// next root that would end the lapse; and a root already expired when logged was accepted. Also
/// (defect 9) a root whose log threshold this server's one key cannot meet was accepted.
#[test]
fn an_expired_root_is_replaced_by_the_next_root_and_a_root_expired_when_logged_is_refused() {
    let mut world = World::prepared(1, 1);
    let mut config = world.config();
    let (clock, time) = Clock::manual(airlock_proto::clock::system_now());
    config.clock = clock;
    world.server = Some(Server::start(config));
    world.write("a-1.0.bin", b"after the lapse");
    world.sign_only("a-1.0.bin", "wheel", "a", "1.0", "a.cbor").ok();

    // The root (365 days) lapses on the server's clock.
    time.advance(366 * DAY);
    let refused = submit(&world, "a.cbor").code(1);
    assert!(
        refused.stderr.contains("expired") && refused.stderr.contains("submit the next root first"),
        "{}",
        refused.stderr
    );

    // A next root that is itself already expired at the server's time is refused.
    create_root(&world, "short.cbor", &["--expires-in-days", "30"]);
    let refused = submit(&world, "short.cbor").code(1);
    assert!(refused.stderr.contains("before it could be logged"), "{}", refused.stderr);

    // A next root the server could never sign checkpoints for is refused.
    world.cli(&["key", "generate", "log2", "--dir", "keys"]).ok();
    create_root(
        &world,
        "two-logs.cbor",
        &["--expires-in-days", "800", "--log-key", "keys/log2.pub", "--log-threshold", "2"],
    );
    let refused = submit(&world, "two-logs.cbor").code(1);
    assert!(refused.stderr.contains("needs 2 log signatures"), "{}", refused.stderr);

    // The next root, valid at the server's time, ends the lapse; statements are taken again.
    create_root(&world, "next.cbor", &["--expires-in-days", "800"]);
    submit(&world, "next.cbor").ok();
    submit(&world, "a.cbor").ok();
    assert_eq!(world.log_size(), 3);
}

/// `airlockd serve` for the world as a process whose log (stderr) goes to `log`.
fn spawn_logged(world: &World, log: &std::path::Path) -> (std::process::Child, String) {
    let port = crate::crash::free_port();
    let child =
        crate::harness::spawn_airlockd(world, "data", port, &[], Some(std::fs::File::create(log).unwrap()));
    (child, format!("http://127.0.0.1:{port}"))
}

/// Defect 11 (and the token message and colour of defect 10): every accepted and refused write
/// is logged under `airlock::audit` with the token's label, never the token; a wrong token is
/// "not recognised" rather than "required"; a log written to a file has no colour codes.
#[test]
fn the_audit_log_records_every_write_by_token_label_and_never_the_token() {
    let world = World::prepared(1, 1);
    let data = world.path("data");
    let alice =
        airlock_server::cli::token_create(&data, airlock_server::auth::Scope::Publish, "alice").unwrap();
    let reader = airlock_server::cli::token_create(&data, airlock_server::auth::Scope::Read, "bob").unwrap();
    let log = world.path("airlockd.log");
    let (mut child, url) = spawn_logged(&world, &log);
    let blob = b"audited bytes";
    let path = format!("/v1/blobs/blake3/{}", airlock_proto::Digest::of(blob).to_hex());
    assert_eq!(http_request("PUT", &url, &path, Some(&alice), blob).0, 201);
    assert_eq!(http_request("PUT", &url, &path, Some(&reader), blob).0, 403);
    let (status, body) = http_request("POST", &url, "/v1/statements", Some("alk_0000"), b"x");
    assert_eq!(status, 401);
    assert!(
        String::from_utf8_lossy(&body).contains("the bearer token is not recognised"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, body) = http_request("POST", &url, "/v1/statements", None, b"x");
    assert_eq!(status, 401);
    assert!(String::from_utf8_lossy(&body).contains("a bearer token is required"));
    assert_eq!(http_request("POST", &url, "/v1/statements", Some(&alice), b"not cbor").0, 422);
    child.kill().unwrap();
    child.wait().unwrap();

    let text = std::fs::read_to_string(&log).unwrap();
    let audit: Vec<&str> = text.lines().filter(|line| line.contains("airlock::audit")).collect();
    let has = |needles: &[&str]| audit.iter().any(|line| needles.iter().all(|n| line.contains(n)));
    assert!(has(&["write accepted", r#"who="token \"alice\" (publish)""#, &path, "status=201"]), "{text}");
    assert!(
        has(&[
            "write refused",
            r#"who="token \"bob\" (read)""#,
            &path,
            "status=403",
            "this token has scope read"
        ]),
        "{text}"
    );
    assert!(
        has(&["write refused", r#"who="unrecognised credentials""#, "POST /v1/statements", "status=401"]),
        "{text}"
    );
    assert!(
        has(&["write refused", r#"who="anonymous""#, "status=401", "a bearer token is required"]),
        "{text}"
    );
    assert!(
        has(&["write refused", r#"who="token \"alice\" (publish)""#, "POST /v1/statements", "status=422"]),
        "{text}"
    );
    assert_eq!(audit.len(), 5, "{text}");
    for secret in [&alice, &reader, &world.publish_token] {
        assert!(!text.contains(secret.as_str()), "a token reached the log");
    }
    assert!(!text.contains('\u{1b}'), "colour codes in a log file: {text}");
}

/// Defect 9: a malformed or unknown `Authorization` header is a 401 even where reads are open
/// (a blob GET treated it as anonymous).
#[test]
fn a_malformed_authorization_header_is_refused_even_on_open_reads() {
    let world = World::new(1, 1);
    world.write("a-1.0.bin", b"open read");
    world.publish("a-1.0.bin", "a", "1.0").ok();
    let path = format!("/v1/blobs/blake3/{}", airlock_proto::Digest::of(b"open read").to_hex());
    let url = world.url();
    assert_eq!(http_get(&url, &path).0, 200, "open reads need no token");
    assert_eq!(http_request("GET", &url, &path, Some(&world.read_token), b"").0, 200);
    for bad in ["not-a-token", "alk_unknown"] {
        let (status, body) = http_request("GET", &url, &path, Some(bad), b"");
        assert_eq!(status, 401, "{bad}: {}", String::from_utf8_lossy(&body));
        assert_eq!(http_request("GET", &url, "/v1/log/checkpoint", Some(bad), b"").0, 401);
    }
}

/// A tmpfs of `size` mounted on `dir` for the test's life (tests run as root here).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs needs root");
        Self(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Defect 10: a full disk is answered 507 naming the cause — on an upload, a mirror sync and a
/// bundle import into a mirror — nothing partial is left, and the server keeps serving.
#[test]
fn a_full_disk_is_answered_507_naming_the_cause_and_leaves_nothing_partial() {
    let mut world = World::prepared(1, 1);
    // The primary's data directory: copied onto a 64 MiB tmpfs.
    let original = world.path("data-original");
    std::fs::rename(world.path("data"), &original).unwrap();
    let _primary_disk = Tmpfs::mount(&world.path("data"), "64m");
    let copied =
        std::process::Command::new("cp").arg("-a").arg(original.join(".")).arg(world.path("data")).status();
    assert!(copied.unwrap().success());
    world.server = Some(Server::start(world.config()));
    let url = world.url();
    let big: Vec<u8> = (0..100u32 << 20).map(|i| (i % 251) as u8).collect();
    let path = format!("/v1/blobs/blake3/{}", airlock_proto::Digest::of(&big).to_hex());
    let (status, body) = http_request("PUT", &url, &path, Some(&world.publish_token), &big);
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 507, "{body}");
    assert!(body.contains("storage is full") && body.contains("No space left on device"), "{body}");
    assert_eq!(std::fs::read_dir(world.path("data/tmp")).unwrap().count(), 0, "a partial upload was left");
    assert_eq!(http_get(&url, &path).0, 404);
    // Still serving, and a small write fits.
    world.write("a-1.0.bin", b"small");
    world.publish("a-1.0.bin", "a", "1.0").ok();
    drop(world.server.take());

    // A 100 MiB release on a primary with room, then a mirror on a 64 MiB tmpfs.
    let mut world = World::new(1, 1);
    world.write("big-1.0.bin", &big);
    world.publish("big-1.0.bin", "big", "1.0").ok();
    let url = world.url();
    world.cli(&["export", "--server", &url, "--root", "root.cbor", "--all", "-o", "full.tar"]).ok();
    let _mirror_disk = Tmpfs::mount(&world.path("mirror"), "64m");
    let (mirror, admin) = crate::mirror::start_mirror(&world, "mirror", &url);
    let (status, body) = http_request("POST", &mirror.url, "/v1/mirror/sync", Some(&admin), b"");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 507, "sync: {body}");
    assert!(body.contains("storage is full"), "{body}");
    let bundle = std::fs::read(world.path("full.tar")).unwrap();
    let (status, body) = http_request("POST", &mirror.url, "/v1/mirror/import", Some(&admin), &bundle);
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 507, "import: {body}");
    assert!(body.contains("storage is full"), "{body}");
    assert_eq!(http_get(&mirror.url, "/healthz").0, 200);
    assert_eq!(std::fs::read_dir(world.path("mirror/tmp")).unwrap().count(), 0, "a partial blob was left");
    world.server = None;
}

/// Defect 8: a payload already logged, submitted again under another set of signatures, was
/// reported by `airlock submit --root` as an inclusion failure (the proof is for the logged leaf).
#[test]
fn resubmitting_a_logged_payload_with_other_signatures_verifies_its_inclusion() {
    let world = World::new(2, 1);
    world.write("a-1.0.bin", b"signed twice");
    world.sign_only("a-1.0.bin", "wheel", "a", "1.0", "a.cbor").ok();
    let url = world.url();
    let submit = |file: &str| {
        world.cli(&["submit", file, "--server", &url, "--token", &world.publish_token, "--root", "root.cbor"])
    };
    let first = submit("a.cbor").ok();
    assert!(!first.stdout.contains("already logged"), "{}", first.stdout);
    world.cli(&["approve", "a.cbor", "--key", "keys/pub2.key", "--root", "root.cbor", "-o", "b.cbor"]).ok();
    let again = submit("b.cbor").ok();
    assert!(again.stdout.contains("logged at leaf 1 of 2 (already logged)"), "{}", again.stdout);
    assert_eq!(world.log_size(), 2);
}

/// Defect 6: a client that verified size 3 from the primary and then asks an honest mirror still
/// at size 2 is told the mirror is behind (exit 6), not SECURITY ERROR, and keeps its state.
#[test]
fn an_honest_lagging_mirror_is_reported_as_behind_not_as_a_rollback() {
    let world = World::new(1, 1);
    world.write("a-1.0.bin", b"first");
    world.publish("a-1.0.bin", "a", "1.0").ok();
    let (mirror, admin) = crate::mirror::start_mirror(&world, "mirror", &world.url());
    crate::mirror::sync(&mirror, &admin);
    world.write("b-1.0.bin", b"second");
    world.publish("b-1.0.bin", "b", "1.0").ok();
    world.pull("b==1.0", "b.bin").ok();
    let behind = world.pull_from(&mirror.url, "a==1.0", "a.bin").code(6);
    assert!(
        behind.stderr.contains("the registry is behind: it serves the log at size 2, and size 3"),
        "{}",
        behind.stderr
    );
    assert!(!behind.stderr.contains("SECURITY"), "{}", behind.stderr);
    // The client kept its state: the primary is still followed from size 3, and once the
    // mirror catches up it is accepted.
    world.pull("a==1.0", "a-from-primary.bin").ok();
    crate::mirror::sync(&mirror, &admin);
    world.pull_from(&mirror.url, "b==1.0", "b-from-mirror.bin").ok();
}

/// Defect 9: a mirror could not follow an upstream that requires a read token or has a private
/// CA. `airlockd serve --upstream https://... --upstream-token-file F --upstream-ca-cert PEM`
/// does; without the token the sync fails naming the 401.
#[test]
fn a_mirror_follows_a_token_protected_upstream_with_a_private_ca() {
    let mut world = World::prepared(1, 1);
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    world.write("tls/cert.pem", cert.cert.pem().as_bytes());
    world.write("tls/key.pem", cert.key_pair.serialize_pem().as_bytes());
    let mut config = world.config();
    config.tls = Some(airlock_server::config::TlsFiles {
        cert: world.path("tls/cert.pem"),
        key: world.path("tls/key.pem"),
    });
    config.read_access = airlock_server::config::ReadAccess::TokenRequired;
    world.server = Some(Server::start_tls(config));
    let upstream = world.url();
    world.write("a-1.0.bin", b"behind a token");
    world
        .publish_to(
            &upstream,
            Some(&world.publish_token.clone()),
            "a-1.0.bin",
            "wheel",
            "a",
            "1.0",
            &["--ca-cert", "tls/cert.pem"],
        )
        .ok();
    world.write("upstream.token", format!("{}\n", world.read_token).as_bytes());

    let mirror = |name: &str, with_token: bool| {
        let data = world.path(name);
        airlock_server::cli::init(&data).unwrap();
        let admin =
            airlock_server::cli::token_create(&data, airlock_server::auth::Scope::Admin, "ops").unwrap();
        let port = crate::crash::free_port();
        let mut extra = vec!["--upstream", upstream.as_str(), "--upstream-ca-cert", "tls/cert.pem"];
        if with_token {
            extra.extend(["--upstream-token-file", "upstream.token"]);
        }
        let child = crate::harness::spawn_airlockd(&world, name, port, &extra, None);
        (KillOnDrop(child), format!("http://127.0.0.1:{port}"), admin)
    };
    let (_with, url, admin) = mirror("mirror", true);
    let (status, body) = http_request("POST", &url, "/v1/mirror/sync", Some(&admin), b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    world.pull_from(&url, "a==1.0", "a.bin").ok();
    let (_without, url, admin) = mirror("no-token", false);
    let (status, body) = http_request("POST", &url, "/v1/mirror/sync", Some(&admin), b"");
    let body = String::from_utf8_lossy(&body);
    assert_ne!(status, 200);
    assert!(body.contains("401"), "{body}");
}

/// A child process killed when the test lets go of it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Defect 2: connections that send nothing were held open forever (protocol detection had no
/// timer) and were not capped. Now 2,000 silent connections against a cap of 64 cannot keep a
/// client out, and each silent one is closed once the header-read time has passed.
#[test]
fn connections_that_send_nothing_are_closed_and_cannot_keep_others_out() {
    use std::io::Read;
    use std::time::{Duration, Instant};
    let mut world = World::prepared(1, 1);
    let mut config = world.config();
    config.limits.max_connections = 64;
    config.limits.header_read_timeout = Duration::from_secs(2);
    world.server = Some(Server::start(config));
    let url = world.url();
    let addr = url.trim_start_matches("http://").to_owned();
    let silent: Vec<std::net::TcpStream> =
        (0..2000).filter_map(|_| std::net::TcpStream::connect(&addr).ok()).collect();
    assert!(silent.len() >= 1900, "only {} connections opened", silent.len());
    // Liveness under the load: a real request is answered (a generous bound, not a speed target).
    let started = Instant::now();
    assert_eq!(http_get(&url, "/healthz").0, 200);
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    // The last ones admitted were never evicted: the header-read timer closes them.
    let deadline = Instant::now() + Duration::from_secs(15);
    let last: Vec<std::net::TcpStream> =
        silent.iter().rev().take(3).map(|s| s.try_clone().unwrap()).collect();
    for mut stream in last.into_iter().chain(silent.into_iter().step_by(97)) {
        stream
            .set_read_timeout(Some(
                deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1)),
            ))
            .unwrap();
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Ok(0) => {}
            Ok(_) => panic!("a silent connection got bytes"),
            Err(e) => assert!(
                !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
                "a silent connection was still open after the header-read time: {e}"
            ),
        }
    }
    assert_eq!(http_get(&url, "/healthz").0, 200);

    // Connections that send one keep-alive request and then sit idle cannot hold every slot
    // either: a newcomer takes the place of the one idle longest.
    let idle: Vec<std::net::TcpStream> = (0..200)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(&addr).unwrap();
            std::io::Write::write_all(&mut stream, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut answer = Vec::new();
            let mut buffer = [0u8; 1024];
            while !answer.ends_with(b"}") {
                let n = stream.read(&mut buffer).unwrap();
                assert!(n > 0, "closed before answering");
                answer.extend_from_slice(&buffer[..n]);
            }
            stream
        })
        .collect();
    let started = Instant::now();
    assert_eq!(http_get(&url, "/healthz").0, 200);
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    let mut oldest = idle.into_iter().next().unwrap();
    oldest.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut byte = [0u8; 1];
    match oldest.read(&mut byte) {
        Ok(0) => {}
        Ok(_) => panic!("an idle connection got bytes"),
        Err(e) => assert!(
            !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
            "the longest-idle connection was kept: {e}"
        ),
    }
}

/// The bundle at `from` without its member `blobs/<hex of digest>`.
fn without_member(from: &std::path::Path, digest: &airlock_proto::Digest) -> Vec<u8> {
    let mut archive = tar::Archive::new(std::fs::File::open(from).unwrap());
    let mut out = tar::Builder::new(Vec::new());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if path == format!("blobs/{}", digest.to_hex()) {
            continue;
        }
        let mut header = entry.header().clone();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        out.append_data(&mut header, &path, bytes.as_slice()).unwrap();
    }
    out.into_inner().unwrap()
}

/// Defect 4: a failing import removed the staged blobs whose records a concurrent import had
/// committed (a logged blob then answered 500). Imports now take the mirror's one writer in
/// turn, and a failed one takes back only blobs it stored itself: run side by side many times,
/// the good import's blob is always served and the store verifies.
#[test]
fn a_failed_import_never_deletes_a_blob_another_import_recorded() {
    let world = World::new(1, 1);
    world.write("a-1.0.bin", b"shared blob");
    world.publish("a-1.0.bin", "a", "1.0").ok();
    world.write("b-1.0.bin", b"missing from the bad bundle");
    world.publish("b-1.0.bin", "b", "1.0").ok();
    let url = world.url();
    world.cli(&["export", "--server", &url, "--root", "root.cbor", "--all", "-o", "good.tar"]).ok();
    // The same segment without b's blob: it stores a's blob, then fails (a blob is missing).
    let bad =
        without_member(&world.path("good.tar"), &airlock_proto::Digest::of(b"missing from the bad bundle"));
    let good = std::fs::read(world.path("good.tar")).unwrap();
    let shared = format!("/v1/blobs/blake3/{}", airlock_proto::Digest::of(b"shared blob").to_hex());
    for round in 0..6 {
        let name = format!("site{round}");
        let _ = std::fs::create_dir_all(world.path(&name));
        let config = {
            let data = world.path(&name);
            airlock_server::cli::init(&data).unwrap();
            let mut config = airlock_server::Config::new(&data);
            config.root = Some(world.path("root.cbor"));
            config.mirror = true;
            config
        };
        let admin =
            airlock_server::cli::token_create(&config.data, airlock_server::auth::Scope::Admin, "ops")
                .unwrap();
        let site = Server::start(config);
        let (bad, good) = (bad.clone(), good.clone());
        let (site_url, admin_bad) = (site.url.clone(), admin.clone());
        let failing = std::thread::spawn(move || {
            http_request("POST", &site_url, "/v1/mirror/import", Some(&admin_bad), &bad)
        });
        let succeeding = http_request("POST", &site.url, "/v1/mirror/import", Some(&admin), &good);
        let failed = failing.join().unwrap();
        assert_eq!(succeeding.0, 200, "round {round}: {}", String::from_utf8_lossy(&succeeding.1));
        // Whichever took the writer first: the bad bundle fails for its missing blob, or, after
        // the good one, it has nothing new to add.
        let failed_text = String::from_utf8_lossy(&failed.1);
        assert!(
            (failed.0 == 422 && failed_text.contains("lacks blob"))
                || (failed.0 == 200 && failed_text.contains("\"from_size\": 3")),
            "round {round}: {} {failed_text}",
            failed.0
        );
        let (status, body) = http_get(&site.url, &shared);
        assert_eq!((status, body.as_slice()), (200, b"shared blob".as_slice()), "round {round}");
        drop(site);
        let report = std::process::Command::new(env!("CARGO_BIN_EXE_airlockd"))
            .args(["verify-store", "--data", &name])
            .current_dir(world.dir.path())
            .output()
            .unwrap();
        assert!(report.status.success(), "round {round}: {}", String::from_utf8_lossy(&report.stdout));
    }
}

/// Defect 5: a mirror stored an offered checkpoint without checking it against its leaves, and
/// kept the offered bytes even when its verifier kept a newer one: a replayed older checkpoint,
/// or a bundle ending at the mirror's own size, became what it served, and a restart failed.
/// Now every stored checkpoint is the one the verifier kept.
#[test]
fn a_mirror_only_ever_serves_the_newest_checkpoint_that_matches_its_leaves() {
    const HOUR: u64 = 3_600;
    let real_now = airlock_proto::clock::system_now();
    let mut world = World::prepared(1, 1);
    let mut config = world.config();
    let (clock, primary_time) = Clock::manual(real_now - 13 * HOUR);
    config.clock = clock;
    world.server = Some(Server::start(config));
    let url = world.url();
    world.cli(&["export", "--server", &url, "--root", "root.cbor", "--all", "-o", "size1.tar"]).ok();
    world.write("a-1.0.bin", b"mirrored");
    world.publish("a-1.0.bin", "a", "1.0").ok();
    world.cli(&["export", "--server", &url, "--root", "root.cbor", "--all", "-o", "size2-older.tar"]).ok();
    // Past half its validity the primary re-signs the same tree: a newer checkpoint of size 2.
    primary_time.set(real_now);
    let newer = http_get(&url, "/v1/log/checkpoint").1;
    let issued = |bytes: &[u8]| airlock_proto::Checkpoint::from_note_unverified(bytes).unwrap();
    assert_eq!((issued(&newer).size, issued(&newer).issued_at), (2, real_now));

    let data = world.path("mirror");
    airlock_server::cli::init(&data).unwrap();
    let admin = airlock_server::cli::token_create(&data, airlock_server::auth::Scope::Admin, "ops").unwrap();
    let mut mirror_config = airlock_server::Config::new(&data);
    mirror_config.root = Some(world.path("root.cbor"));
    mirror_config.upstream = Some(url.clone());
    mirror_config.sync_interval = None;
    let mirror = Server::start(mirror_config.clone());
    crate::mirror::sync(&mirror, &admin);
    assert_eq!(http_get(&mirror.url, "/v1/log/checkpoint").1, newer);
    // A bundle ending at the mirror's size with an older checkpoint adds nothing and changes
    // nothing served; an older bundle is refused.
    let import = |file: &str| {
        let bundle = std::fs::read(world.path(file)).unwrap();
        http_request("POST", &mirror.url, "/v1/mirror/import", Some(&admin), &bundle)
    };
    assert_eq!(import("size2-older.tar").0, 200);
    assert_eq!(http_get(&mirror.url, "/v1/log/checkpoint").1, newer);
    let (status, body) = import("size1.tar");
    assert_eq!(status, 422, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("older than the mirror's state"));
    // The upstream answering its older checkpoint again (a replay) changes nothing either.
    let proxy = crate::proxy::Proxy::start(&url);
    let older = {
        let tar = std::fs::read(world.path("size2-older.tar")).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut manifest = archive.entries().unwrap().next().unwrap().unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut manifest, &mut bytes).unwrap();
        let manifest: airlock_proto::api::BundleManifest =
            airlock_proto::codec::decode("manifest", &bytes, 1 << 20).unwrap();
        manifest.checkpoint.to_vec()
    };
    assert!(issued(&older).issued_at < real_now);
    proxy.set(move |path, body| if path.starts_with("/v1/log/checkpoint") { older.clone() } else { body });
    drop(mirror);
    let mut via_proxy = mirror_config.clone();
    via_proxy.upstream = Some(proxy.url.clone());
    let mirror = Server::start(via_proxy);
    let _ = http_request("POST", &mirror.url, "/v1/mirror/sync", Some(&admin), b"");
    assert_eq!(http_get(&mirror.url, "/v1/log/checkpoint").1, newer);
    // A restart re-verifies what is stored: it opens and serves the same.
    drop(mirror);
    let mirror = Server::start(mirror_config);
    assert_eq!(http_get(&mirror.url, "/v1/log/checkpoint").1, newer);
    assert_eq!(http_get(&mirror.url, "/healthz").0, 200);
}

/// Defect 7, through `POST /v1/statements`: a status statement signed before a newer one was
/// logged is refused (422), naming the latest leaf; signed against the current log it is taken.
#[test]
fn a_stale_status_statement_is_refused_at_submit() {
    use airlock_proto::{Kind, PackageName, StatusAction, Version};
    let world = World::new(1, 1);
    world.write("a-1.0.bin", b"status chain");
    world.publish("a-1.0.bin", "a", "1.0").ok();
    let status = |action, supersedes| {
        airlock_client::statements::status(
            Kind::Wheel,
            PackageName::new(Kind::Wheel, "a").unwrap(),
            Version::new("1.0").unwrap(),
            action,
            "CVE-2026-0001",
            1_700_000_000,
            supersedes,
        )
        .unwrap()
    };
    // Both signed while the release had no status.
    let yank = status(StatusAction::Yank, None);
    let unyank_stale = status(StatusAction::Unyank, None);
    assert_eq!(world.submit_signed_by_publisher(yank).0, 201);
    let (code, body) = world.submit_signed_by_publisher(unyank_stale);
    let body = String::from_utf8_lossy(&body);
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("but the latest is leaf 2") && body.contains("signed before a newer one was logged"),
        "{body}"
    );
    assert_eq!(world.submit_signed_by_publisher(status(StatusAction::Unyank, Some(2))).0, 201);
}

/// Defect 3: the client fetched (and held) every leaf a checkpoint claimed before checking that
/// the log key signed it. Now a forged checkpoint claiming a billion leaves is refused before any
/// leaf is requested; and a client behind a log-key rotation still follows, verifying the new
/// key through the registry's root chain (`GET /v1/roots`) before fetching leaves.
#[test]
fn the_checkpoint_signature_is_checked_before_any_leaf_is_fetched() {
    let mut world = World::new(1, 1);
    world.write("a-1.0.bin", b"before the rotation");
    world.publish("a-1.0.bin", "a", "1.0").ok();
    let proxy = crate::proxy::Proxy::start(&world.url());
    let stranger = airlock_keys::SecretKey::generate();
    let forged = crate::harness::signed_checkpoint(
        &stranger,
        1_000_000_000,
        [9; 32],
        airlock_proto::clock::system_now(),
    );
    let requested = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = std::sync::Arc::clone(&requested);
    proxy.set(move |path, body| {
        seen.lock().unwrap().push(path.to_owned());
        if path.starts_with("/v1/log/checkpoint") {
            forged.clone()
        } else {
            body
        }
    });
    world.pull_from(&proxy.url, "a==1.0", "a.bin").code(3).says("checkpoint signature");
    let requested = requested.lock().unwrap().clone();
    assert!(requested.iter().any(|p| p.starts_with("/v1/log/checkpoint")), "{requested:?}");
    assert!(!requested.iter().any(|p| p.starts_with("/v1/log/leaves")), "leaves fetched: {requested:?}");

    // A rotation of the log key: root 2 lists the old and a new log key; the server restarts
    // with the new one, whose checkpoints a client pinned to root 1 must verify.
    world.cli(&["key", "generate", "log2", "--dir", "keys"]).ok();
    create_root(&world, "root2.cbor", &["--log-key", "keys/log2.pub"]);
    world.cli(&["submit", "root2.cbor", "--server", &world.url(), "--token", &world.publish_token]).ok();
    world.server = None;
    std::fs::copy(world.path("keys/log2.key"), world.path("data/log.key")).unwrap();
    world.server = Some(Server::start(world.config()));
    world.write("b-1.0.bin", b"after the rotation");
    world.publish("b-1.0.bin", "b", "1.0").ok();
    let checkpoint = http_get(&world.url(), "/v1/log/checkpoint").1;
    let key2 = airlock_keys::read_public_key(&world.path("keys/log2.pub")).unwrap();
    let note = airlock_proto::Note::parse(&checkpoint).unwrap();
    let by_key2 = airlock_keys::note_key_id("test.airlock", &key2);
    assert!(note.signatures().iter().all(|line| line.key_id == by_key2), "not signed by the new key only");
    let (status, chain) = http_get(&world.url(), "/v1/roots");
    assert_eq!(status, 200);
    let chain: airlock_proto::api::RootChain =
        airlock_proto::codec::decode("roots", &chain, 1 << 20).unwrap();
    assert_eq!(chain.roots.len(), 2);
    // A new client pinned to root 1 follows through the rotation.
    world
        .cli(&[
            "pull",
            "b==1.0",
            "--server",
            &world.url(),
            "--root",
            "root.cbor",
            "-o",
            "b.bin",
            "--state-dir",
            "fresh-state",
        ])
        .ok();
    assert_eq!(std::fs::read(world.path("b.bin")).unwrap(), b"after the rotation");
}

/// Defect 6 for mirrors: a mirror whose upstream answers an older checkpoint of the same log (an
/// upstream mirror that lags) reports it as behind and keeps its state; no SECURITY ERROR.
#[test]
fn a_mirror_ahead_of_its_upstream_reports_it_behind_and_keeps_its_state() {
    let world = World::new(1, 1);
    world.write("a-1.0.bin", b"first");
    world.publish("a-1.0.bin", "a", "1.0").ok();
    let older = http_get(&world.url(), "/v1/log/checkpoint").1;
    world.write("b-1.0.bin", b"second");
    world.publish("b-1.0.bin", "b", "1.0").ok();
    let proxy = crate::proxy::Proxy::start(&world.url());
    let (mirror, admin) = crate::mirror::start_mirror(&world, "mirror", &proxy.url);
    assert_eq!(crate::mirror::sync(&mirror, &admin)["to_size"], 3);
    proxy.set(move |path, body| if path.starts_with("/v1/log/checkpoint") { older.clone() } else { body });
    let (status, body) = http_request("POST", &mirror.url, "/v1/mirror/sync", Some(&admin), b"");
    let body = String::from_utf8_lossy(&body);
    assert_ne!(status, 200);
    assert!(body.contains("the registry is behind") && !body.contains("SECURITY"), "{body}");
    assert_eq!(crate::harness::http_get(&mirror.url, "/healthz").0, 200);
    world.pull_from(&mirror.url, "b==1.0", "b.bin").ok();
}
