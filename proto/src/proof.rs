//! Offline proofs in the C2SP tlog-proof form: one text file that shows an entry is in a log,
//! checkable without the log.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 of the entry: the statement's exact envelope bytes>
//! index <leaf index>
//! <inclusion proof hash, base64>        one line per hash
//!
//! <the checkpoint note, signatures and cosignatures included>
//! ```

use base64::Engine as _;

use crate::merkle::MAX_PROOF_LEN;
use crate::note::MAX_NOTE_BYTES;
use crate::Hash32;

/// The first line of a tlog-proof file.
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";
/// Largest proof file accepted: a 64 KiB entry in base64, 64 hashes and a checkpoint note.
pub const MAX_PROOF_FILE_BYTES: usize = 96 * 1024 + MAX_NOTE_BYTES;

/// Why a proof file was refused. Each names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofFileError {
    #[error("proof file is {len} bytes, over the {MAX_PROOF_FILE_BYTES}-byte cap")]
    TooLarge { len: usize },
    #[error("not a tlog-proof file: {0}")]
    Malformed(String),
}

/// An offline proof: the entry (as `extra`), its index, the inclusion proof, and the
/// checkpoint note that commits to the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    pub extra: Option<Vec<u8>>,
    pub index: u64,
    pub hashes: Vec<Hash32>,
    pub checkpoint: Vec<u8>,
}

fn malformed(detail: impl Into<String>) -> ProofFileError {
    ProofFileError::Malformed(detail.into())
}

impl TlogProof {
    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let b64 = &base64::engine::general_purpose::STANDARD;
        let mut out = format!("{TLOG_PROOF_HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {}\n", b64.encode(extra)));
        }
        out.push_str(&format!("index {}\n", self.index));
        for hash in &self.hashes {
            out.push_str(&b64.encode(hash.0));
            out.push('\n');
        }
        out.push('\n');
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.checkpoint);
        bytes
    }

    /// Parses a proof file; the checkpoint is returned as bytes for the verifier to check.
    pub fn parse(bytes: &[u8]) -> Result<Self, ProofFileError> {
        if bytes.len() > MAX_PROOF_FILE_BYTES {
            return Err(ProofFileError::TooLarge { len: bytes.len() });
        }
        let split = bytes
            .windows(2)
            .position(|w| w == b"\n\n")
            .ok_or_else(|| malformed("no blank line before the checkpoint"))?;
        let head = std::str::from_utf8(&bytes[..split]).map_err(|_| malformed("the header is not UTF-8"))?;
        let checkpoint = bytes[split + 2..].to_vec();
        let mut lines = head.split('\n');
        if lines.next() != Some(TLOG_PROOF_HEADER) {
            return Err(malformed(format!("the first line must be {TLOG_PROOF_HEADER}")));
        }
        let b64 = &base64::engine::general_purpose::STANDARD;
        let mut line = lines.next().ok_or_else(|| malformed("no index line"))?;
        let extra = match line.strip_prefix("extra ") {
            Some(encoded) => {
                let extra = b64.decode(encoded).map_err(|_| malformed("the extra line is not base64"))?;
                line = lines.next().ok_or_else(|| malformed("no index line"))?;
                Some(extra)
            }
            None => None,
        };
        let index_text = line.strip_prefix("index ").ok_or_else(|| malformed("no index line"))?;
        let index: u64 =
            index_text.parse().map_err(|_| malformed(format!("invalid index {index_text:?}")))?;
        if index.to_string() != index_text {
            return Err(malformed(format!("invalid index {index_text:?}")));
        }
        let hashes = lines
            .map(|line| {
                b64.decode(line)
                    .ok()
                    .and_then(|raw| Hash32::from_slice(&raw))
                    .ok_or_else(|| malformed(format!("proof line {line:?} is not a base64 hash")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if hashes.len() > MAX_PROOF_LEN {
            return Err(malformed(format!("{} proof hashes, over the cap of {MAX_PROOF_LEN}", hashes.len())));
        }
        Ok(Self { extra, index, hashes, checkpoint })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_malformed_files() {
        let proof = TlogProof {
            extra: Some(b"entry".to_vec()),
            index: 73_894,
            hashes: vec![Hash32([1; 32]), Hash32([2; 32])],
            checkpoint: b"log\n1\nAAAA\n\n\xe2\x80\x94 log abcd\n".to_vec(),
        };
        let bytes = proof.to_bytes();
        assert!(bytes.starts_with(b"c2sp.org/tlog-proof@v1\nextra ZW50cnk=\nindex 73894\nAQEB"));
        assert_eq!(TlogProof::parse(&bytes).unwrap(), proof);
        let text = String::from_utf8(bytes).unwrap();
        for bad in [
            text.replacen("c2sp.org/tlog-proof@v1", "tlog-proof", 1),
            text.replacen("index 73894", "index 073894", 1),
            text.replacen("index 73894", "position 73894", 1),
            text.replacen("AQEB", "!!!!", 1),
            text.replacen("\n\n", "\n", 1),
        ] {
            assert!(TlogProof::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
