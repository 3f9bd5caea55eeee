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
}

impl Relay {
    fn to(endpoint: &str) -> Self {
        use std::net::{TcpListener, TcpStream};
        let target = endpoint.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (cutting, opened) = (Arc::clone(&cut), Arc::clone(&open));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if cutting.load(std::sync::atomic::Ordering::SeqCst) {
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else { continue };
                let mut open = opened.lock().unwrap();
                open.push(client.try_clone().unwrap());
                open.push(server.try_clone().unwrap());
                for (mut from, mut to) in
                    [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self { url, cut, open }
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
