//! Checkpoints in the C2SP tlog-checkpoint form: the text of a signed note,
//!
//! ```text
//! <origin>
//! <tree size, decimal>
//! <root hash, base64>
//! issued-at <integer seconds>
//! expires-at <integer seconds>
//! ```
//!
//! The first three lines are the standard body any tlog verifier and witness reads; the two
//! extension lines carry the signed freshness window (standard verifiers ignore them; the log
//! signs them and witnesses cosign them with the body).

use base64::Engine as _;

use crate::statement::{check_origin, StatementError};
use crate::{Hash32, Timestamp};

/// A log's signed statement of its size and root hash at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root_hash: Hash32,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
}

fn invalid(detail: impl Into<String>) -> StatementError {
    StatementError::Invalid { what: "checkpoint", detail: detail.into() }
}

fn number(line: &str, what: &str) -> Result<u64, StatementError> {
    let canonical = !line.is_empty()
        && line.bytes().all(|b| b.is_ascii_digit())
        && (line == "0" || !line.starts_with('0'));
    if !canonical {
        return Err(invalid(format!("{what} {line:?} is not a decimal number without leading zeros")));
    }
    line.parse().map_err(|_| invalid(format!("{what} {line:?} is out of range")))
}

impl Checkpoint {
    /// Reads the checkpoint a signed note carries without checking any signature: for callers
    /// that signed or verified the note before, or that only need the size to know what to fetch
    /// before the verifier checks everything.
    pub fn from_note_unverified(bytes: &[u8]) -> Result<Self, StatementError> {
        let note = crate::Note::parse(bytes).map_err(|e| invalid(e.to_string()))?;
        Self::from_text(note.text())
    }

    /// The note text of this checkpoint.
    pub fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}\nissued-at {}\nexpires-at {}\n",
            self.origin,
            self.size,
            base64::engine::general_purpose::STANDARD.encode(self.root_hash.0),
            self.issued_at,
            self.expires_at
        )
    }

    /// Parses a checkpoint note's text; every line must be exactly as `to_text` writes it.
    pub fn from_text(text: &str) -> Result<Self, StatementError> {
        let body = text.strip_suffix('\n').ok_or_else(|| invalid("text must end in a newline"))?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [origin, size, root, issued, expires] = lines.as_slice() else {
            return Err(invalid(format!("has {} lines, expected 5", lines.len())));
        };
        check_origin(origin)?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(root)
            .map_err(|_| invalid(format!("root hash {root:?} is not base64")))?;
        let root_hash = Hash32::from_slice(&raw).ok_or_else(|| invalid("root hash is not 32 bytes"))?;
        let issued_at = number(
            issued
                .strip_prefix("issued-at ")
                .ok_or_else(|| invalid("fourth line must be `issued-at <seconds>`"))?,
            "issued-at",
        )?;
        let expires_at = number(
            expires
                .strip_prefix("expires-at ")
                .ok_or_else(|| invalid("fifth line must be `expires-at <seconds>`"))?,
            "expires-at",
        )?;
        if expires_at < issued_at {
            return Err(invalid("expires before it is issued"));
        }
        let checkpoint = Self {
            origin: (*origin).to_owned(),
            size: number(size, "size")?,
            root_hash,
            issued_at,
            expires_at,
        };
        if checkpoint.to_text() != text {
            return Err(invalid("is not in canonical form"));
        }
        Ok(checkpoint)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn demo() -> Checkpoint {
        Checkpoint {
            origin: "demo.airlock".into(),
            size: 5,
            root_hash: Hash32([7; 32]),
            issued_at: 1_700_000_000,
            expires_at: 1_700_086_400,
        }
    }

    #[test]
    fn text_round_trips() {
        let text = demo().to_text();
        assert_eq!(
            text,
            "demo.airlock\n5\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\nissued-at 1700000000\nexpires-at 1700086400\n"
        );
        assert_eq!(Checkpoint::from_text(&text).unwrap(), demo());
    }

    #[test]
    fn non_canonical_or_malformed_text_is_refused() {
        let good = demo().to_text();
        for bad in [
            good.replace("\n5\n", "\n05\n"),
            good.replace("\n5\n", "\n+5\n"),
            good.replace("issued-at", "issued_at"),
            good.replace("BwcHBwcH", "!!!!!!!!"),
            good.trim_end().to_owned(),
            format!("{good}extra\n"),
            good.replace("expires-at 1700086400", "expires-at 1699999999"),
            good.replace("demo.airlock", "demo airlock"),
        ] {
            assert!(Checkpoint::from_text(&bad).is_err(), "{bad:?}");
        }
    }
}
