//! The short fuzz run of the ordinary (stable) test suite: for every target, replay each file of
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`, then run a bounded, deterministic
//! mutation loop over them (a xorshift PRNG with a constant seed: bit flips, byte inserts and
//! deletes, truncation, splicing). A panic fails the test, names the input and saves it where
//! it can be copied into `fuzz/regressions/<target>/`.

#![allow(clippy::unwrap_used)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use airlock_fuzz_targets::{seeds, Target, TARGETS};

/// Mutated inputs run per target.
const MUTATIONS_PER_TARGET: usize = 5000;
/// Longest mutated input.
const MAX_INPUT: usize = 64 * 1024;
/// Seed of the PRNG (each target mixes in its name, so runs do not depend on test order).
const PRNG_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The files of `dir`, sorted by name, skipping `README*`; none when `dir` does not exist.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<(String, Vec<u8>)> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with("README"))
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    out
}

struct XorShift(u64);

impl XorShift {
    fn new(name: &str) -> Self {
        let mixed =
            name.bytes().fold(PRNG_SEED, |acc, b| (acc ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        Self(mixed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Bytes that matter to the formats under test: CBOR heads of each major type and length size,
/// digits, separators, and boundary values.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1f, 0x40, 0x5f, 0x60, 0x7f, 0x80, 0x9f, 0xa0, 0xbf, 0xc0,
    0xf4, 0xf6, 0xf9, 0xff, b'0', b'9', b'\n', b' ', b'\t', b'=', b'-', b'+', b'&', b',', b'/', b'.',
];

fn mutate(rng: &mut XorShift, input: &mut Vec<u8>, pool: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(10) {
            0 if len > 0 => {
                let at = rng.below(len);
                input[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                input[at] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let at = rng.below(len + 1);
                let byte = if rng.below(2) == 0 {
                    rng.next() as u8
                } else {
                    INTERESTING[rng.below(INTERESTING.len())]
                };
                input.insert(at, byte);
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(16));
                input.drain(at..at + n);
            }
            4 => input.truncate(rng.below(len + 1)),
            5 => {
                // Splice: our head, another seed's tail.
                let other = &pool[rng.below(pool.len())];
                let at = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            6 => {
                // Insert a chunk of another seed.
                let other = &pool[rng.below(pool.len())];
                let from = rng.below(other.len() + 1);
                let n = rng.below((other.len() - from).min(64) + 1);
                let at = rng.below(len + 1);
                input.splice(at..at, other[from..from + n].iter().copied());
            }
            7 if len > 0 => {
                // Duplicate a chunk in place.
                let from = rng.below(len);
                let n = 1 + rng.below((len - from).min(32));
                let chunk = input[from..from + n].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, chunk);
            }
            8 if len > 0 => {
                let at = rng.below(len);
                let delta = 1 + rng.below(4) as u8;
                input[at] = if rng.below(2) == 0 {
                    input[at].wrapping_add(delta)
                } else {
                    input[at].wrapping_sub(delta)
                };
            }
            9 if len >= 2 => {
                // Swap two bytes.
                let (a, b) = (rng.below(len), rng.below(len));
                input.swap(a, b);
            }
            _ => {}
        }
    }
    input.truncate(MAX_INPUT);
}

/// Runs `target` on `input`; on a panic, saves the input and fails naming it.
fn run_one(name: &str, target: Target, input: &[u8], what: &str) {
    if catch_unwind(AssertUnwindSafe(|| target(input))).is_ok() {
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("short-run-crashes").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("crash-{:016x}", fnv(input)));
    std::fs::write(&path, input).unwrap();
    panic!(
        "target {name} panicked on {what} ({} bytes); the input is saved at {}: copy it into \
         fuzz/regressions/{name}/ and commit it with the fix",
        input.len(),
        path.display()
    );
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |acc, &b| (acc ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn short_run(name: &str) {
    let target = TARGETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t).unwrap();
    let fuzz = fuzz_dir();
    let corpus = files(&fuzz.join("corpus").join(name));
    let regressions = files(&fuzz.join("regressions").join(name));
    assert!(!corpus.is_empty(), "fuzz/corpus/{name}/ is empty: run the write_corpus example");
    for (path, bytes) in corpus.iter().chain(&regressions) {
        run_one(name, target, bytes, path);
    }
    let pool: Vec<Vec<u8>> = corpus.iter().chain(&regressions).map(|(_, b)| b.clone()).collect();
    let mut rng = XorShift::new(name);
    for i in 0..MUTATIONS_PER_TARGET {
        let mut input = pool[rng.below(pool.len())].clone();
        mutate(&mut rng, &mut input, &pool);
        run_one(name, target, &input, &format!("mutation {i}"));
    }
}

macro_rules! short_runs {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                short_run(stringify!($name));
            }
        )*

        #[test]
        fn every_target_has_a_short_run() {
            let tested = [$(stringify!($name)),*];
            let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
            assert_eq!(names, tested);
        }
    };
}

short_runs!(envelope, statement, checkpoint, proof, bodies, bundle, request, policy);

#[test]
fn every_target_has_a_cargo_fuzz_binary_and_a_regressions_directory() {
    let fuzz = fuzz_dir();
    let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).unwrap();
    for (name, _) in TARGETS {
        let source = fuzz.join("fuzz_targets").join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        assert!(
            text.contains(&format!("airlock_fuzz_targets::{name}(")),
            "{} calls another target",
            source.display()
        );
        assert!(
            manifest.contains(&format!("path = \"fuzz_targets/{name}.rs\"")),
            "fuzz/Cargo.toml lacks {name}"
        );
        assert!(fuzz.join("regressions").join(name).is_dir(), "fuzz/regressions/{name}/ is missing");
    }
}

/// The committed corpus is what `seeds::all()` builds today: valid inputs, which the decoders
/// accept. When a wire format changes, this fails: rerun
/// `cargo run -p airlock-fuzz-targets --example write_corpus` and commit the new seeds.
#[test]
fn committed_corpus_holds_the_current_valid_seeds() {
    let fuzz = fuzz_dir();
    let mut total = 0;
    for seed in seeds::all().unwrap() {
        let path = fuzz.join("corpus").join(seed.target).join(&seed.name);
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            committed == seed.bytes,
            "{} differs from the seed built today: run `cargo run -p airlock-fuzz-targets --example \
             write_corpus` and commit the corpus",
            path.display()
        );
        total += committed.len();
        assert_accepted(seed.target, &seed.name, &seed.bytes);
    }
    assert!(total < 200 * 1024, "the seed corpus is {total} bytes: keep it small");
}

/// Each seed takes the decoder's success path (the targets only say nothing panicked).
fn assert_accepted(target: &str, name: &str, bytes: &[u8]) {
    use airlock_proto::api::query::parse_range;
    use airlock_proto::api::{BundleManifest, ClientFold, LeavesPage, Proof};
    use airlock_proto::{codec, Checkpoint, Envelope, PayloadType, Statement};

    let what = format!("{target}/{name}");
    match target {
        "envelope" => {
            let envelope = Envelope::from_bytes(bytes).unwrap();
            Statement::decode(&envelope.payload_type, &envelope.payload).unwrap();
        }
        "statement" => {
            let ty = PayloadType::ALL[usize::from(bytes[0])];
            Statement::decode(ty.as_str(), &bytes[1..]).unwrap();
        }
        "checkpoint" => {
            Checkpoint::from_note_unverified(bytes).unwrap();
        }
        "proof" => {
            let proof = airlock_proto::proof::TlogProof::parse(bytes).unwrap();
            let checkpoint = Checkpoint::from_note_unverified(&proof.checkpoint).unwrap();
            let entry = proof.extra.as_deref().unwrap_or_default();
            if !entry.is_empty() {
                let hashes: Vec<_> = proof.hashes.iter().map(|h| h.0).collect();
                airlock_proto::merkle::verify_inclusion(
                    &airlock_proto::merkle::leaf_hash(entry),
                    proof.index,
                    checkpoint.size,
                    &hashes,
                    &checkpoint.root_hash.0,
                )
                .unwrap();
            }
        }
        "bodies" => {
            let body = &bytes[1..];
            let cap = usize::MAX;
            let ok = match bytes[0] {
                0 => codec::decode::<LeavesPage>("x", body, cap).is_ok(),
                1 => codec::decode::<Proof>("x", body, cap).is_ok(),
                2 => codec::decode::<ClientFold>("x", body, cap).is_ok(),
                3 => codec::decode::<BundleManifest>("x", body, cap).is_ok(),
                4 => airlock_proto::api::decode_name_bucket(body).is_ok_and(|b| !b.is_empty()),
                _ => airlock_proto::api::decode_digest_bucket(body).is_ok_and(|b| !b.is_empty()),
            };
            assert!(ok, "{what} does not decode");
        }
        "bundle" => {
            let blobs = airlock_client::bundle_reader::read_bundle(
                bytes,
                |manifest| Ok::<_, ()>((manifest.blobs.len(), 0)),
                |(_, read), digest, member| {
                    let mut data = Vec::new();
                    member.read_to_end(&mut data).map_err(|_| ())?;
                    assert_eq!(airlock_proto::Digest::of(&data), digest);
                    *read += 1;
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(blobs.0, blobs.1, "{what}: blobs listed and carried differ");
        }
        "request" if name.starts_with("range-") => {
            let size = u64::from_be_bytes(bytes[..8].try_into().unwrap());
            let value = std::str::from_utf8(&bytes[8..]).unwrap();
            let _ = parse_range(value, size);
        }
        "request" => {
            airlock_proto::api::query::Query::parse(Some(std::str::from_utf8(bytes).unwrap())).unwrap();
        }
        "policy" if name.ends_with(".policy") => {
            airlock_keys::parse_policy(std::str::from_utf8(bytes).unwrap()).unwrap();
        }
        "policy" => {
            let text = std::str::from_utf8(bytes).unwrap();
            let mut words = text.split_whitespace();
            airlock_keys::parse_verifier_key(words.next().unwrap()).unwrap();
            airlock_keys::parse_witness_verifier_key(words.next().unwrap()).unwrap();
        }
        other => panic!("seed for unknown target {other}"),
    }
}
