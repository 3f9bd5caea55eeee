//! Registries whose blobs are in an S3-compatible bucket: the SeaweedFS the test run starts
//! (`scripts/seaweedfs.sh`, which `test.sh` runs; without it these tests are skipped with a
//! message, or fail under `AIRLOCK_TEST_S3_REQUIRED`). Each data directory has a key prefix of
//! its own in the one bucket.

use std::sync::Arc;

use airlock_proto::Digest;
use airlock_server::store::blob_store::{self, S3Settings};
use airlock_server::store::{BlobBackend, S3Backend};
use object_store::ObjectStore;

use crate::harness::{http_get, http_request, Server, World};
use crate::mirror::{mirror_config, sync};

/// Puts the blobs of the data directory `data` in the run's bucket, under a prefix of its own.
pub(crate) fn on_bucket(world: &World, data: &str, test: &str) -> Option<S3Settings> {
    let bucket = blob_store::test_bucket(test)?;
    blob_store::write(&world.path(data), &bucket).unwrap();
    Some(bucket)
}

/// The bucket straight through `object_store`, to damage what a registry stored.
fn raw(bucket: &S3Settings) -> (Arc<dyn ObjectStore>, tokio::runtime::Runtime) {
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&bucket.endpoint)
        .with_bucket_name(&bucket.bucket)
        .with_region(&bucket.region)
        .with_allow_http(true)
        .with_access_key_id(bucket.access_key_id.clone().unwrap_or_default())
        .with_secret_access_key(bucket.secret_access_key.clone().unwrap_or_default())
        .build()
        .unwrap();
    (Arc::new(store), tokio::runtime::Runtime::new().unwrap())
}

fn object(bucket: &S3Settings, digest: &Digest) -> object_store::path::Path {
    object_store::path::Path::from(format!("{}blobs/{}", bucket.prefix, digest.to_hex()))
}

fn held(bucket: &S3Settings) -> Vec<Digest> {
    S3Backend::open(bucket).unwrap().list().unwrap()
}

fn report(run: &crate::harness::Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", run.stdout, run.stderr))
}

#[test]
fn a_registry_on_a_bucket_publishes_serves_mirrors_imports_collects_and_scrubs() {
    let mut world = World::prepared(1, 1);
    let Some(bucket) = on_bucket(&world, "data", "e2e-primary") else { return };
    world.admin_token();
    world.server = Some(Server::start(world.config()));
    let url = world.url();

    // Publish: a blob of several multipart parts, and a small one.
    let big: Vec<u8> = (0..(20u32 << 20)).map(|i| (i.wrapping_mul(7) % 253) as u8).collect();
    let small = b"a small wheel kept in a bucket".to_vec();
    world.write("big.bin", &big);
    world.publish("big.bin", "big", "1.0").ok();
    world.write("small.bin", &small);
    world.publish("small.bin", "small", "1.0").ok();
    let (big_digest, small_digest) = (Digest::of(&big), Digest::of(&small));
    let mut want = vec![big_digest, small_digest];
    want.sort();
    assert_eq!(held(&bucket), want, "the blobs are in the bucket");
    assert!(crate::publish_pull::walk_files(&world.path("data/blobs")).is_empty(), "a blob on disk");

    // Served from the bucket: whole, a range, and a verified pull.
    let (status, body) = http_get(&url, &format!("/v1/blobs/blake3/{}", big_digest.to_hex()));
    assert_eq!(status, 200);
    assert!(body == big, "the served blob differs");
    world.cli(&["pull", "big==1.0", "--server", &url, "--root", "root.cbor", "-o", "pulled.bin"]).ok();
    assert!(std::fs::read(world.path("pulled.bin")).unwrap() == big);

    // A mirror on the bucket (its own prefix) syncs; a second one imports a bundle.
    let (mut config, mirror_admin) = mirror_config(&world, "site", &url);
    let Some(site_bucket) = on_bucket(&world, "site", "e2e-mirror") else { return };
    config.sync_interval = None;
    let mirror = Server::start(config);
    let synced = sync(&mirror, &mirror_admin);
    assert_eq!(synced["blobs_fetched"], 2, "{synced}");
    assert_eq!(held(&site_bucket), want);
    world.cli(&["export", "--server", &url, "--root", "root.cbor", "--all", "-o", "full.tar"]).ok();
    airlock_server::cli::init(&world.path("media")).unwrap();
    let Some(media_bucket) = on_bucket(&world, "media", "e2e-import") else { return };
    world.airlockd(&["import", "--data", "media", "--root", "root.cbor", "full.tar"]).ok();
    assert_eq!(held(&media_bucket), want);
    world.airlockd(&["verify-store", "--data", "media"]).ok().says("ok");

    // GC: an upload no release names goes after the grace period; logged blobs stay.
    let orphan = b"uploaded, never submitted";
    let path = format!("/v1/blobs/blake3/{}", Digest::of(orphan).to_hex());
    assert_eq!(http_request("PUT", &url, &path, Some(&world.publish_token), orphan).0, 201);
    let on_primary = ["--server", url.as_str(), "--admin-token-file", "admin.token"];
    let mut args = vec!["gc", "--grace", "0s", "--dry-run"];
    args.extend_from_slice(&on_primary);
    let dry = report(&world.airlockd(&args).ok());
    assert_eq!(dry["removed"][0]["digest"], Digest::of(orphan).to_string(), "{dry}");
    args.retain(|a| *a != "--dry-run");
    let collected = report(&world.airlockd(&args).ok());
    assert_eq!(collected["removed"], dry["removed"]);
    assert_eq!(held(&bucket), want, "GC removed a logged blob or left the orphan");

    // Scrub: the mirror's copy of the big blob flipped, the small one deleted, in the bucket;
    // both found, and repaired from the upstream.
    let (s3, runtime) = raw(&site_bucket);
    let mut flipped = big.clone();
    flipped[5 << 20] ^= 1;
    runtime.block_on(s3.put(&object(&site_bucket, &big_digest), flipped.into())).unwrap();
    runtime.block_on(s3.delete(&object(&site_bucket, &small_digest))).unwrap();
    world.write("site.token", mirror_admin.as_bytes());
    let on_mirror = ["--server", mirror.url.as_str(), "--admin-token-file", "site.token"];
    let mut args = vec!["scrub", "--repair"];
    args.extend_from_slice(&on_mirror);
    let scrubbed = report(&world.airlockd(&args).ok().says("2 repaired"));
    assert_eq!(scrubbed["repaired"].as_array().unwrap().len(), 2, "{scrubbed}");
    let (status, body) = http_get(&mirror.url, &format!("/v1/blobs/blake3/{}", big_digest.to_hex()));
    assert_eq!(status, 200);
    assert!(body == big, "the repaired blob differs");
    assert_eq!(http_get(&mirror.url, &format!("/v1/blobs/blake3/{}", small_digest.to_hex())).1, small);
}

#[test]
fn migrate_store_moves_a_filesystem_store_to_a_bucket_and_the_result_verifies() {
    let mut world = World::prepared(1, 1);
    world.server = Some(Server::start(world.config()));
    let blobs: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 1000 * usize::from(i + 1)]).collect();
    for (i, bytes) in blobs.iter().enumerate() {
        world.write(&format!("m{i}.bin"), bytes);
        world.publish(&format!("m{i}.bin"), &format!("m{i}"), "1.0").ok();
    }
    world.server = None;
    let Some(bucket) = blob_store::test_bucket("migrate") else { return };
    let credentials = format!(
        "{}\n{}\n",
        bucket.access_key_id.as_deref().unwrap_or_default(),
        bucket.secret_access_key.as_deref().unwrap_or_default()
    );
    world.write("s3.credentials", credentials.as_bytes());
    let migrate = [
        "migrate-store",
        "--data",
        "data",
        "--s3-endpoint",
        bucket.endpoint.as_str(),
        "--s3-bucket",
        bucket.bucket.as_str(),
        "--s3-prefix",
        bucket.prefix.as_str(),
        "--s3-credentials-file",
        "s3.credentials",
    ];
    let run = world.airlockd(&migrate).ok().says("now uses it");
    let moved = report(&run);
    assert_eq!(
        (moved["blobs"].as_u64(), moved["copied"].as_u64(), moved["verified"].as_u64()),
        (Some(3), Some(3), Some(3))
    );
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains(bucket.secret_access_key.as_deref().unwrap()), "the secret was printed");
    }
    let mut want: Vec<Digest> = blobs.iter().map(|b| Digest::of(b)).collect();
    want.sort();
    assert_eq!(held(&bucket), want);
    world.airlockd(&["verify-store", "--data", "data"]).ok().says("ok");
    // Run again: refused, the directory already uses the bucket.
    world.airlockd(&migrate).code(1).says("already keeps its blobs in a bucket");
    // The server serves from the bucket once the directory's own copies are gone.
    std::fs::remove_dir_all(world.path("data/blobs")).unwrap();
    world.server = Some(Server::start(world.config()));
    for bytes in &blobs {
        let (status, body) =
            http_get(&world.url(), &format!("/v1/blobs/blake3/{}", Digest::of(bytes).to_hex()));
        assert_eq!((status, &body), (200, bytes));
    }
}

/// A TCP relay to the bucket's store that the test can cut: cutting closes every open
/// connection and refuses new ones until it is restored.
struct Relay {
    url: String,
    cut: Arc<std::sync::atomic::AtomicBool>,
    open: Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    /// The first 64 KiB each connection sent towards the store.
    sent: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Relay {
    fn to(endpoint: &str) -> Self {
        use std::net::{TcpListener, TcpStream};
        let target = endpoint.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (cutting, opened, recorded) = (Arc::clone(&cut), Arc::clone(&open), Arc::clone(&sent));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if cutting.load(std::sync::atomic::Ordering::SeqCst) {
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else { continue };
                let mut open = opened.lock().unwrap();
                open.push(client.try_clone().unwrap());
                open.push(server.try_clone().unwrap());
                let directions = [
                    (client.try_clone().unwrap(), server.try_clone().unwrap(), true),
                    (server, client, false),
                ];
                for (mut from, mut to, towards_store) in directions {
                    let recorded = Arc::clone(&recorded);
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let (mut buf, mut seen) = (vec![0u8; 64 << 10], 0usize);
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            if towards_store && seen < 64 << 10 {
                                recorded.lock().unwrap().extend_from_slice(&buf[..n.min((64 << 10) - seen)]);
                                seen += n;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self { url, cut, open, sent }
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Sends a GET and reads the head and `first` bytes of the body; returns the stream.
fn start_get(url: &str, path: &str, first: usize) -> std::net::TcpStream {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head));
    let mut body = vec![0u8; first];
    stream.read_exact(&mut body).unwrap();
    stream
}

#[test]
fn the_store_going_away_gives_503_and_a_cut_transfer_leaves_nothing_partial_and_no_secret_is_logged() {
    use std::io::Read;
    let world = World::prepared(1, 1);
    let Some(mut bucket) = blob_store::test_bucket("store-gone") else { return };
    let relay = Relay::to(&bucket.endpoint);
    bucket.endpoint = relay.url.clone();
    blob_store::write(&world.path("data"), &bucket).unwrap();
    let port = crate::crash::free_port();
    let log = std::fs::File::create(world.path("airlockd.log")).unwrap();
    let mut child = crate::harness::spawn_airlockd(&world, "data", port, &[], Some(log));
    let url = format!("http://127.0.0.1:{port}");
    let big: Vec<u8> = (0..(24u32 << 20)).map(|i| (i % 241) as u8).collect();
    world.write("big.bin", &big);
    world.publish_to(&url, Some(&world.publish_token), "big.bin", "wheel", "big", "1.0", &[]).ok();
    let path = format!("/v1/blobs/blake3/{}", Digest::of(&big).to_hex());

    // Cut in the middle of a download: the body ends short, and the client can tell.
    let mut download = start_get(&url, &path, 1 << 20);
    relay.cut();
    let mut rest = Vec::new();
    let _ = download.read_to_end(&mut rest);
    assert!((1 << 20) + rest.len() < big.len(), "the whole blob came through a cut store");

    // While the store is away: 503 with a clear message, for reads and for uploads.
    let (status, body) = http_get(&url, &path);
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("the blob store is unavailable"));
    let fresh: Vec<u8> = (0..(12u32 << 20)).map(|i| (i % 239) as u8).collect();
    let upload = format!("/v1/blobs/blake3/{}", Digest::of(&fresh).to_hex());
    let (status, body) = http_request("PUT", &url, &upload, Some(&world.publish_token), &fresh);
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    world.cli(&["pull", "big==1.0", "--server", &url, "--root", "root.cbor", "-o", "big.out"]).code(1);
    assert!(!world.path("big.out").exists(), "a partial download was left");

    // Back: the failed upload left nothing, and the blob is whole.
    relay.restore();
    assert_eq!(http_get(&url, &upload).0, 404);
    bucket.endpoint = relay.url.clone();
    assert!(!held(&bucket).contains(&Digest::of(&fresh)), "the failed upload is visible in the bucket");
    let (status, body) = http_get(&url, &path);
    assert_eq!(status, 200);
    assert!(body == big);
    let _ = child.kill();
    let _ = child.wait();
    let logged = std::fs::read_to_string(world.path("airlockd.log")).unwrap();
    assert!(logged.contains("the blob store is unavailable"), "the outage was not logged:\n{logged}");
    let secret = bucket.secret_access_key.as_deref().unwrap();
    assert!(!logged.contains(secret), "the secret access key was logged");
}

#[test]
fn two_mirror_front_ends_over_one_bucket_serve_the_same_bytes_and_only_the_collector_collects() {
    use crate::metrics::{requests, scrape, value};
    let world = World::new(1, 1);
    let releases: Vec<Vec<u8>> = (0..3u8).map(|i| vec![b'a' + i; 3000 + usize::from(i)]).collect();
    for (i, bytes) in releases.iter().enumerate() {
        world.write(&format!("s{i}.bin"), bytes);
        world.publish(&format!("s{i}.bin"), &format!("s{i}"), "1.0").ok();
    }
    let url = world.url();
    let Some(mut bucket) = blob_store::test_bucket("shared") else { return };
    bucket.shared = true;
    let (config_a, admin_a) = mirror_config(&world, "front-a", &url);
    let (config_b, admin_b) = mirror_config(&world, "front-b", &url);
    blob_store::write(&world.path("front-a"), &S3Settings { collector: true, ..bucket.clone() }).unwrap();
    blob_store::write(&world.path("front-b"), &bucket).unwrap();
    let (front_a, front_b) = (Server::start(config_a), Server::start(config_b));
    let fetched_from_upstream = || value(&scrape(&url), &requests("blob", "GET", 200));
    // No blob was fetched yet: the series is not in the scrape.
    assert!(!scrape(&url).contains_key(&requests("blob", "GET", 200)));
    let before = 0.0;

    // The first front end fetches; the second finds every blob in the bucket and fetches none.
    let a = sync(&front_a, &admin_a);
    assert_eq!((a["blobs_fetched"].as_u64(), a["blobs_adopted"].as_u64()), (Some(3), Some(0)), "{a}");
    let b = sync(&front_b, &admin_b);
    assert_eq!((b["blobs_fetched"].as_u64(), b["blobs_adopted"].as_u64()), (Some(0), Some(3)), "{b}");
    assert_eq!(fetched_from_upstream() - before, 3.0, "the second front end fetched from the upstream");
    for bytes in &releases {
        let path = format!("/v1/blobs/blake3/{}", Digest::of(bytes).to_hex());
        assert_eq!(http_get(&front_a.url, &path), (200, bytes.clone()));
        assert_eq!(http_get(&front_b.url, &path), (200, bytes.clone()));
    }

    // A bad copy in the bucket is not taken in place: the sync fetches good bytes over it.
    // (A third front end, whose store has no record of anything yet.)
    let (s3, runtime) = raw(&bucket);
    let mut bad = releases[0].clone();
    bad[0] ^= 1;
    runtime.block_on(s3.put(&object(&bucket, &Digest::of(&releases[0])), bad.into())).unwrap();
    let (config_c, admin_c) = mirror_config(&world, "front-c", &url);
    blob_store::write(&world.path("front-c"), &bucket).unwrap();
    let front_c = Server::start(config_c);
    let c = sync(&front_c, &admin_c);
    assert_eq!((c["blobs_fetched"].as_u64(), c["blobs_adopted"].as_u64()), (Some(1), Some(2)), "{c}");
    let path = format!("/v1/blobs/blake3/{}", Digest::of(&releases[0]).to_hex());
    assert_eq!(http_get(&front_a.url, &path), (200, releases[0].clone()));

    // Garbage collection: only the collector, which syncs first; an object no one recorded is
    // kept while younger than the grace period, and collected after it; logged blobs stay.
    let orphan = b"an object no front end recorded".to_vec();
    runtime.block_on(s3.put(&object(&bucket, &Digest::of(&orphan)), orphan.clone().into())).unwrap();
    let gc = |front: &Server, admin: &str, grace: u64| {
        let body = format!(r#"{{"dry_run":false,"grace_secs":{grace}}}"#);
        http_request("POST", &front.url, "/v1/admin/gc", Some(admin), body.as_bytes())
    };
    let (status, body) = gc(&front_b, &admin_b, 0);
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("collector = true"));
    // Nor may it purge: it could be behind a front end that still serves the release.
    let purge = br#"{"kind":null,"name":"s0","version":"1.0"}"#;
    let (status, body) = http_request("POST", &front_b.url, "/v1/admin/purge", Some(&admin_b), purge);
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));
    let (status, body) = gc(&front_a, &admin_a, 3600);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let kept: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(kept["removed"].as_array().unwrap().is_empty(), "{kept}");
    assert!(held(&bucket).contains(&Digest::of(&orphan)));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (status, body) = gc(&front_a, &admin_a, 0);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let collected: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(collected["removed"][0]["digest"], Digest::of(&orphan).to_string(), "{collected}");
    assert_eq!(collected["removed"][0]["reason"], "unrecorded");
    let mut logged: Vec<Digest> = releases.iter().map(|b| Digest::of(b)).collect();
    logged.sort();
    assert_eq!(held(&bucket), logged);
    world.write("b.token", admin_b.as_bytes());
    let scrub = ["scrub", "--server", front_b.url.as_str(), "--admin-token-file", "b.token"];
    world.airlockd(&scrub).ok().says("0 repaired");
}

#[test]
fn the_redirect_option_sends_clients_to_the_store_and_a_pull_gets_the_same_verified_bytes() {
    let mut world = World::prepared(1, 1);
    let Some(mut bucket) = blob_store::test_bucket("redirect") else { return };
    // Through a relay that records what is sent to the store.
    let relay = Relay::to(&bucket.endpoint);
    bucket.endpoint = relay.url.clone();
    blob_store::write(&world.path("data"), &bucket).unwrap();
    let mut config = world.config();
    config.blob_redirect = Some(std::time::Duration::from_secs(300));
    world.server = Some(Server::start(config));
    let url = world.url();
    let bytes: Vec<u8> = (0..(10u32 << 20)).map(|i| (i % 233) as u8).collect();
    world.write("r.bin", &bytes);
    world.publish("r.bin", "r", "1.0").ok();
    let path = format!("/v1/blobs/blake3/{}", Digest::of(&bytes).to_hex());

    // A GET is answered with a short-lived signed URL of the object in the store.
    let (status, headers, _) = crate::harness::http_get_with(&url, &path, None);
    assert_eq!(status, 307);
    let location = headers.get("location").expect("a Location").clone();
    assert!(location.starts_with(&format!("{}/{}/", bucket.endpoint, bucket.bucket)), "{location}");
    assert!(location.contains("X-Amz-Signature=") && location.contains("X-Amz-Expires=300"), "{location}");
    assert!(!location.contains(bucket.secret_access_key.as_deref().unwrap()), "the secret is in the URL");
    assert_eq!(headers.get("cache-control").map(String::as_str), Some("no-store"));
    // A revalidation is answered here (304), not sent to the store.
    let etag = format!("If-None-Match: \"{}\"\r\n", Digest::of(&bytes));
    let revalidated = crate::publish_pull::raw_get(&url, &path, &etag);
    assert!(revalidated.0.starts_with("HTTP/1.1 304"), "{}", revalidated.0);
    // The URL answers with the blob's bytes, without any token.
    let (status, body) = http_get(&bucket.endpoint, location.trim_start_matches(&bucket.endpoint));
    assert_eq!(status, 200);
    assert!(body == bytes);

    // `airlock pull` (with a token) follows it and checks the bytes by digest; an unknown blob
    // is still a 404 from the registry, never a redirect.
    world
        .cli(&[
            "pull",
            "r==1.0",
            "--server",
            &url,
            "--root",
            "root.cbor",
            "-o",
            "pulled.bin",
            "--token",
            &world.publish_token,
        ])
        .ok();
    assert!(std::fs::read(world.path("pulled.bin")).unwrap() == bytes);
    let sent = String::from_utf8_lossy(&relay.sent.lock().unwrap()).into_owned();
    assert!(sent.contains("X-Amz-Signature="), "the pull did not go to the store");
    assert!(!sent.contains(&world.publish_token), "the client sent its token to the store");
    let unknown = format!("/v1/blobs/blake3/{}", Digest::of(b"never stored").to_hex());
    assert_eq!(http_get(&url, &unknown).0, 404);
}

#[test]
fn sigkill_during_a_large_multipart_upload_leaves_no_visible_object_and_gc_reclaims_the_parts() {
    use std::io::Write;
    let world = World::prepared(1, 1);
    let Some(bucket) = on_bucket(&world, "data", "sigkill-upload") else { return };
    let port = crate::crash::free_port();
    let mut child = crate::harness::spawn_airlockd(&world, "data", port, &[], None);
    let url = format!("http://127.0.0.1:{port}");
    let bytes: Vec<u8> = (0..(40u32 << 20)).map(|i| (i % 229) as u8).collect();
    let path = format!("/v1/blobs/blake3/{}", Digest::of(&bytes).to_hex());

    // Three parts of five sent, then the server dies.
    let mut upload = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        upload,
        "PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
        world.publish_token,
        bytes.len()
    )
    .unwrap();
    upload.write_all(&bytes[..24 << 20]).unwrap();
    let backend = S3Backend::open(&bucket).unwrap();
    let far =
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(airlock_proto::clock::system_now() + 3600);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while backend.collect_stages(far, false).unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the upload never started in the bucket");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(upload);

    // Nothing of it is visible, before or after a restart.
    assert!(held(&bucket).is_empty(), "a killed upload left a visible object");
    let mut child = crate::harness::spawn_airlockd(&world, "data", port, &[], None);
    assert_eq!(http_get(&url, &path).0, 404);
    let _ = child.kill();
    let _ = child.wait();

    // GC lists the interrupted upload (a dry run), then aborts it, freeing its parts.
    let dry = report(&world.airlockd(&["gc", "--data", "data", "--grace", "0s", "--dry-run"]).ok());
    let stages = dry["stages"].as_array().unwrap().clone();
    assert!(stages.iter().any(|s| s["name"].as_str().unwrap().ends_with(".upload")), "{dry}");
    let run = report(&world.airlockd(&["gc", "--data", "data", "--grace", "0s"]).ok());
    assert_eq!(run["stages"].as_array().unwrap(), &stages);
    assert!(backend.collect_stages(far, false).unwrap().is_empty(), "stages left after gc");
    assert!(held(&bucket).is_empty());
}

#[test]
fn a_bucket_that_refuses_the_credentials_is_named_in_the_error_and_the_secret_never_is() {
    let world = World::prepared(1, 1);
    let Some(bucket) = blob_store::test_bucket("refused") else { return };
    let secret = "not-the-secret-0123456789abcdef";
    world.write(
        "wrong.credentials",
        format!("{}\n{secret}\n", bucket.access_key_id.as_deref().unwrap()).as_bytes(),
    );
    let run = world
        .airlockd(&[
            "init",
            "--data",
            "refused",
            "--s3-endpoint",
            bucket.endpoint.as_str(),
            "--s3-bucket",
            bucket.bucket.as_str(),
            "--s3-credentials-file",
            "wrong.credentials",
        ])
        .code(1)
        .says("the bucket does not answer; nothing was written")
        .says(&bucket.endpoint);
    assert!(!run.stderr.contains(secret) && !run.stdout.contains(secret), "the secret was printed");
    assert!(!world.path("refused").exists(), "init wrote a directory for a bucket that refused it");
}
