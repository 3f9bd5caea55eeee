//! Envelope signatures checked ahead of the fold, in batches and in parallel across cores. A page
//! of leaves is scanned for signatures by keys the root in force lists; they are checked in
//! batches (`keyfile::verify_batch`) on the machine's cores, and the ones that verify are
//! remembered. A batch that fails is checked one signature at a time with `verify_strict`, so
//! one bad signature costs its batch the fast path and nothing else. The one threshold
//! function then asks `verify`, which answers from that memory or checks the signature itself:
//! the fold still decides every leaf and names the leaf whose signature fails. `pipelined` folds
//! a long run of leaves chunk by chunk while the next chunk's signatures are checked. Only accepted
//! signatures are remembered, each under a BLAKE3 over the key, the signature and the signed
//! bytes, so a remembered answer is for exactly those bytes. What counts (roles, thresholds,
//! duplicates) stays in `check_threshold`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use crate::keyfile::{KeyError, PublicKey};
use crate::trust::TrustedRoot;

/// Most signatures remembered at once (32 bytes each); the memory is emptied when full.
const MAX_REMEMBERED: usize = 1 << 18;

/// Below this many leaves a page's signatures are checked in the fold, one at a time.
const MIN_AHEAD: usize = 16;

/// Signatures checked together: past a hundred or so, a larger batch saves little more.
const BATCH: usize = 512;

fn accepted() -> &'static Mutex<HashSet<[u8; 32]>> {
    static ACCEPTED: OnceLock<Mutex<HashSet<[u8; 32]>>> = OnceLock::new();
    ACCEPTED.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Identifies one (key, signature, signed bytes) triple.
fn triple(key: &PublicKey, message: &[u8], signature: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key("airlock preverified ed25519 signature v1");
    hasher.update(&key.to_bytes());
    hasher.update(&(signature.len() as u64).to_le_bytes());
    hasher.update(signature);
    hasher.update(message);
    *hasher.finalize().as_bytes()
}

/// One signature job: the key the signature names, the signed bytes, the signature.
#[derive(Debug)]
struct Job {
    key: PublicKey,
    message: Arc<Vec<u8>>,
    signature: Vec<u8>,
}

/// Checks the signatures of `leaves` by keys `root` lists (the root in force where the page
/// starts) across the machine's cores, ahead of a fold that still decides every leaf. Each core
/// decodes its part of the leaves as well as checking their signatures.
pub fn page(root: &TrustedRoot, leaves: &[Vec<u8>]) {
    if leaves.len() < MIN_AHEAD {
        return;
    }
    remember(airlock_proto::parallel::map_parts(leaves, |part| checked(&jobs(root, part))));
}

/// The signature jobs of `leaves` by keys `root` lists.
fn jobs(root: &TrustedRoot, leaves: &[Vec<u8>]) -> Vec<Job> {
    let mut jobs = Vec::with_capacity(leaves.len());
    for leaf in leaves {
        let Ok(envelope) = airlock_proto::Envelope::from_bytes(leaf) else { continue };
        let message = Arc::new(envelope.signed_bytes());
        for signature in &envelope.signatures {
            if let Some(key) = root.key(&signature.key_id) {
                jobs.push(Job { key: *key, message: message.clone(), signature: signature.sig.0.to_vec() });
            }
        }
    }
    jobs
}

/// Leaves whose signatures are checked together while the chunk before them is folded.
const PIPELINE_CHUNK: usize = 1024;

/// Folds `leaves` with `fold`, chunk by chunk, while the signatures of the next chunk are checked
/// (`page`) on the other cores. The root given (the one in force where the leaves start) picks
/// the keys, as for one page; a signature by a key a later root adds is checked in the fold. The
/// first error of `fold` stops it.
pub fn pipelined<E>(
    root: &TrustedRoot,
    leaves: &[Vec<u8>],
    mut fold: impl FnMut(&[Vec<u8>]) -> Result<(), E>,
) -> Result<(), E> {
    let mut chunks = leaves.chunks(PIPELINE_CHUNK);
    let mut current = chunks.next();
    if let Some(first) = current {
        page(root, first);
    }
    std::thread::scope(|scope| {
        while let Some(chunk) = current {
            let next = chunks.next();
            let ahead = next.map(|next| scope.spawn(move || page(root, next)));
            fold(chunk)?;
            if let Some(ahead) = ahead {
                // A panic there only costs the fast path: the fold checks every signature.
                let _ = ahead.join();
            }
            current = next;
        }
        Ok(())
    })
}

/// The triples of `jobs` that verify, checked in batches. Those that do not are left out: the
/// fold checks them again and names the leaf.
fn checked(jobs: &[Job]) -> Vec<[u8; 32]> {
    jobs.chunks(BATCH).flat_map(verified).collect()
}

/// Remembers the triples the parts found verified.
fn remember(found: Vec<Option<Vec<[u8; 32]>>>) {
    let mut memory = accepted().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // A part whose thread panicked is forgotten: the fold checks those signatures itself.
    for id in found.into_iter().flatten().flatten() {
        if memory.len() >= MAX_REMEMBERED {
            memory.clear();
        }
        memory.insert(id);
    }
}

/// The triples of `batch` that verify: every one when the batch passes, else those that pass
/// `verify_strict` one at a time.
fn verified(batch: &[Job]) -> Vec<[u8; 32]> {
    let items: Vec<(&PublicKey, &[u8], &[u8])> =
        batch.iter().map(|job| (&job.key, job.message.as_slice(), job.signature.as_slice())).collect();
    let all = crate::keyfile::verify_batch(&items);
    batch
        .iter()
        .filter(|job| all || job.key.verify_strict(&job.message, &job.signature).is_ok())
        .map(|job| triple(&job.key, &job.message, &job.signature))
        .collect()
}

/// `key.verify_strict(message, signature)`, answered from what `ahead` remembered when it can.
/// With nothing remembered (a statement submitted alone, a short page) it verifies at once,
/// without hashing the triple.
pub fn verify(key: &PublicKey, message: &[u8], signature: &[u8]) -> Result<(), KeyError> {
    let memory = || accepted().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // One lock at a time: the guard of the emptiness check is gone before the lookup locks.
    let empty = memory().is_empty();
    if !empty {
        let id = triple(key, message, signature);
        if memory().remove(&id) {
            return Ok(());
        }
    }
    key.verify_strict(message, signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyfile::SecretKey;

    #[test]
    fn only_signatures_that_verify_are_remembered() {
        let key = SecretKey::generate();
        let jobs: Vec<Job> = (0..MIN_AHEAD as u32 * 20)
            .map(|i| {
                let message = Arc::new(format!("message {i}").into_bytes());
                let mut signature = key.sign(&message).to_vec();
                if i == 7 || i == 200 {
                    signature[0] ^= 1;
                }
                Job { key: key.public(), message, signature }
            })
            .collect();
        remember(vec![Some(checked(&jobs))]);
        for (i, job) in jobs.iter().enumerate() {
            let id = triple(&job.key, &job.message, &job.signature);
            let remembered = accepted().lock().unwrap().contains(&id);
            assert_eq!(remembered, i != 7 && i != 200, "job {i}");
            assert_eq!(verify(&job.key, &job.message, &job.signature).is_ok(), i != 7 && i != 200, "job {i}");
        }
        // A remembered answer is for those exact bytes: another message is checked afresh.
        assert!(verify(&jobs[0].key, b"other", &jobs[0].signature).is_err());
    }
}
