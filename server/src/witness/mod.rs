//! A witness (c2sp.org/tlog-witness): it cosigns a log's checkpoint only after checking that it
//! extends the last checkpoint of that log it cosigned — by a consistency proof from the size it
//! holds — so that a log that shows two views to two sites cannot get both cosigned. Its state
//! (per log: the size and root hash it last cosigned) is written durably before any cosignature
//! leaves it; a request that contradicts it is kept as evidence.
//!
//! `POST /add-checkpoint` carries `old <size>`, the consistency proof from that size (one base64
//! hash per line), a blank line and the checkpoint note. Answers: 200 with the cosignature line;
//! 409 with the witness's size (`text/x.tlog.size`) when `old` is not what it holds; 422 when
//! the proof does not verify or the same size carries another root (kept as evidence); 404 for a
//! log it does not witness; 403 when the log's signature does not verify; 400 when malformed.

pub mod http;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use airlock_keys::{check_note_threshold, cosign, PublicKey, SecretKey};
use airlock_proto::merkle::{verify_consistency, MAX_PROOF_LEN};
use airlock_proto::note::MAX_NOTE_BYTES;
use airlock_proto::{Checkpoint, Clock, Hash32, Note, Role};
use anyhow::Context;
use base64::Engine as _;
use sha2::Digest as _;

/// Largest add-checkpoint request accepted.
pub const MAX_REQUEST_BYTES: usize = MAX_NOTE_BYTES + 8 * 1024;

/// Why a checkpoint was not cosigned. Each names what failed.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error("malformed add-checkpoint request: {0}")]
    Malformed(String),
    #[error("this witness does not witness the log {0:?}")]
    UnknownLog(String),
    #[error("the checkpoint is not signed by the log's key")]
    BadSignature,
    #[error("the witness holds size {held} of this log, not {old}")]
    Conflict { old: u64, held: u64 },
    #[error("the checkpoint does not extend what this witness cosigned: {0} (kept as evidence)")]
    Inconsistent(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// What a witness holds of one log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    size: u64,
    root_hash: Hash32,
}

/// A witness: its name and key, the logs it witnesses (origin → log key), and its state.
#[derive(Debug)]
pub struct Witness {
    name: String,
    key: SecretKey,
    logs: BTreeMap<String, PublicKey>,
    dir: PathBuf,
    clock: Clock,
    /// One request at a time: check, persist and cosign are one step.
    lock: Mutex<()>,
}

fn state_file(dir: &Path, origin: &str) -> PathBuf {
    dir.join("logs").join(hex::encode(sha2::Sha256::digest(origin.as_bytes())))
}

impl Witness {
    /// A witness with its state under `dir`.
    pub fn open(
        dir: &Path,
        name: &str,
        key: SecretKey,
        logs: BTreeMap<String, PublicKey>,
        clock: Clock,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            airlock_proto::note::is_key_name_valid(name),
            "witness name {name:?} is not a valid key name"
        );
        std::fs::create_dir_all(dir.join("logs"))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::create_dir_all(dir.join("evidence"))?;
        Ok(Self { name: name.to_owned(), key, logs, dir: dir.to_owned(), clock, lock: Mutex::new(()) })
    }

    fn held(&self, origin: &str) -> anyhow::Result<Held> {
        let path = state_file(&self.dir, origin);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Held { size: 0, root_hash: Hash32(airlock_proto::merkle::empty_root()) })
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let (size, root) = text.trim_end().split_once(' ').context("witness state is corrupt")?;
        let root =
            base64::engine::general_purpose::STANDARD.decode(root).context("witness state is corrupt")?;
        Ok(Held {
            size: size.parse().context("witness state is corrupt")?,
            root_hash: Hash32::from_slice(&root).context("witness state is corrupt")?,
        })
    }

    fn hold(&self, origin: &str, held: Held) -> anyhow::Result<()> {
        let text =
            format!("{} {}\n", held.size, base64::engine::general_purpose::STANDARD.encode(held.root_hash.0));
        let path = state_file(&self.dir, origin);
        airlock_client::fsutil::write_atomic(&path, text.as_bytes(), 0o600)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    fn keep_evidence(&self, origin: &str, held: Held, request: &[u8]) {
        let name = format!(
            "{}-{}-{}.txt",
            &hex::encode(sha2::Sha256::digest(origin.as_bytes()))[..16],
            held.size,
            self.clock.now()
        );
        let mut record = format!(
            "witness {} held size {} root {} of {origin}; it refused this request:\n\n",
            self.name, held.size, held.root_hash
        )
        .into_bytes();
        record.extend_from_slice(request);
        if let Err(e) =
            airlock_client::fsutil::write_atomic(&self.dir.join("evidence").join(name), &record, 0o600)
        {
            tracing::error!(error = %e, "cannot keep evidence of a conflicting checkpoint");
        }
        tracing::warn!(
            origin,
            held = held.size,
            "refused a checkpoint that does not extend what was cosigned; evidence kept"
        );
    }

    /// Handles one add-checkpoint request and returns the cosignature line to add to the note.
    pub fn add_checkpoint(&self, request: &[u8]) -> Result<Vec<u8>, AddError> {
        let (old, proof, note_bytes) = parse_request(request)?;
        let note = Note::parse(note_bytes).map_err(|e| AddError::Malformed(e.to_string()))?;
        let checkpoint =
            Checkpoint::from_text(note.text()).map_err(|e| AddError::Malformed(e.to_string()))?;
        let origin = checkpoint.origin.clone();
        let log_key = self.logs.get(&origin).ok_or_else(|| AddError::UnknownLog(origin.clone()))?;
        let role = Role { keys: vec![log_key.id()], threshold: 1 };
        check_note_threshold(&note, &origin, "log", &role, &BTreeMap::from([(log_key.id(), *log_key)]))
            .map_err(|_| AddError::BadSignature)?;
        let _one_at_a_time = self.lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let held = self.held(&origin)?;
        if old != held.size {
            return Err(AddError::Conflict { old, held: held.size });
        }
        if checkpoint.size < held.size {
            return Err(AddError::Malformed(format!("size {} is below old size {old}", checkpoint.size)));
        }
        let hashes: Vec<[u8; 32]> = proof.iter().map(|h| h.0).collect();
        let consistent = if held.size == 0 {
            hashes.is_empty().then_some(()).ok_or_else(|| "a proof from size 0 must be empty".to_owned())
        } else {
            verify_consistency(
                held.size,
                checkpoint.size,
                &held.root_hash.0,
                &checkpoint.root_hash.0,
                &hashes,
            )
            .map_err(|e| e.to_string())
        };
        if let Err(detail) = consistent {
            self.keep_evidence(&origin, held, request);
            return Err(AddError::Inconsistent(detail));
        }
        // Durable before the cosignature leaves: a crash can lose a cosignature, never the
        // record of what was cosigned.
        self.hold(&origin, Held { size: checkpoint.size, root_hash: checkpoint.root_hash })?;
        let mut cosigned = Note::new(note.text()).map_err(|e| AddError::Malformed(e.to_string()))?;
        cosign(&mut cosigned, &self.name, &self.key, self.clock.now())
            .map_err(|e| AddError::Internal(e.into()))?;
        let line = cosigned.signatures().first().context("cosignature missing")?;
        Ok(line.to_line().into_bytes())
    }
}

/// Splits a request into `old`, the proof hashes and the checkpoint note.
fn parse_request(request: &[u8]) -> Result<(u64, Vec<Hash32>, &[u8]), AddError> {
    let malformed = |detail: &str| AddError::Malformed(detail.to_owned());
    if request.len() > MAX_REQUEST_BYTES {
        return Err(malformed("request is too large"));
    }
    let split = request.windows(2).position(|w| w == b"\n\n").ok_or_else(|| malformed("no blank line"))?;
    let head = std::str::from_utf8(&request[..split]).map_err(|_| malformed("not UTF-8"))?;
    let mut lines = head.split('\n');
    let old_text =
        lines.next().and_then(|l| l.strip_prefix("old ")).ok_or_else(|| malformed("no old line"))?;
    let old: u64 = old_text.parse().map_err(|_| malformed("old is not a number"))?;
    let proof = lines
        .map(|line| {
            base64::engine::general_purpose::STANDARD
                .decode(line)
                .ok()
                .and_then(|raw| Hash32::from_slice(&raw))
                .ok_or_else(|| malformed("a proof line is not a base64 hash"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if proof.len() > MAX_PROOF_LEN {
        return Err(malformed("the proof is too long"));
    }
    Ok((old, proof, &request[split + 2..]))
}

/// The body of an add-checkpoint request: `old`, the proof, and the checkpoint note.
pub fn request_body(old: u64, proof: &[Hash32], note: &[u8]) -> Vec<u8> {
    let mut out = format!("old {old}\n");
    for hash in proof {
        out.push_str(&base64::engine::general_purpose::STANDARD.encode(hash.0));
        out.push('\n');
    }
    out.push('\n');
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(note);
    bytes
}
