//! Signed notes (c2sp.org/signed-note): a UTF-8 text followed by a blank line and one signature
//! line per signature, `— <key name> <base64(4-byte key id ‖ signature)>`. Verifiers skip the
//! lines of keys they do not know, which is what lets witnesses add cosignatures to a checkpoint
//! note without changing it. This module only parses and formats; `airlock-keys` says whether a
//! signature is valid.

use base64::Engine as _;

/// Largest note accepted (a checkpoint and a few dozen cosignatures fit many times over).
pub const MAX_NOTE_BYTES: usize = 16 * 1024;
/// Most signature lines accepted on one note.
pub const MAX_NOTE_SIGNATURES: usize = 100;
/// The prefix of a signature line: an em dash and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Why a note was refused. Each names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("note is {len} bytes, over the {MAX_NOTE_BYTES}-byte cap")]
    TooLarge { len: usize },
    #[error("note is not UTF-8")]
    NotUtf8,
    #[error("note text {0}")]
    BadText(&'static str),
    #[error("note has no signature block (a blank line, then signature lines)")]
    NoSignatures,
    #[error("note carries more than {MAX_NOTE_SIGNATURES} signatures")]
    TooManySignatures,
    #[error("malformed signature line {0:?}")]
    BadSignatureLine(String),
    #[error("invalid key name {0:?}: it must be non-empty, without spaces or '+'")]
    BadKeyName(String),
}

/// One signature line: the key's name, its 4-byte key id, and the signature bytes after the id
/// (64 bytes for Ed25519; 8 bytes of timestamp and 64 of signature for a cosignature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: [u8; 4],
    pub signature: Vec<u8>,
}

/// A note: its text (ending in a newline) and its signatures, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

/// Whether `name` may name a key: non-empty, no Unicode white space, no `+`.
pub fn is_key_name_valid(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if text.is_empty() || !text.ends_with('\n') {
        return Err(NoteError::BadText("must end in a newline"));
    }
    if text.contains("\n\n") {
        return Err(NoteError::BadText("must not contain a blank line"));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::BadText("must not contain control characters"));
    }
    Ok(())
}

impl Note {
    /// A note of `text` with no signatures yet.
    pub fn new(text: impl Into<String>) -> Result<Self, NoteError> {
        let text = text.into();
        check_text(&text)?;
        Ok(Self { text, signatures: Vec::new() })
    }

    /// Parses a signed note: at least one well-formed signature line, every line well formed.
    pub fn parse(bytes: &[u8]) -> Result<Self, NoteError> {
        if bytes.len() > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge { len: bytes.len() });
        }
        let all = std::str::from_utf8(bytes).map_err(|_| NoteError::NotUtf8)?;
        let split = all.rfind("\n\n").ok_or(NoteError::NoSignatures)?;
        let text = &all[..=split];
        let block = &all[split + 2..];
        check_text(text)?;
        if !block.ends_with('\n') {
            return Err(NoteError::NoSignatures);
        }
        let lines: Vec<&str> = block[..block.len() - 1].split('\n').collect();
        if lines.len() > MAX_NOTE_SIGNATURES {
            return Err(NoteError::TooManySignatures);
        }
        let signatures = lines.into_iter().map(parse_signature_line).collect::<Result<Vec<_>, _>>()?;
        if signatures.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        Ok(Self { text: text.to_owned(), signatures })
    }

    /// The signed text (ending in a newline).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines, in order.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Appends a signature line; one already present for the same name and key id is kept
    /// instead.
    pub fn add_signature(&mut self, signature: NoteSignature) -> Result<(), NoteError> {
        if !is_key_name_valid(&signature.name) {
            return Err(NoteError::BadKeyName(signature.name));
        }
        let present =
            self.signatures.iter().any(|s| s.name == signature.name && s.key_id == signature.key_id);
        if !present {
            if self.signatures.len() == MAX_NOTE_SIGNATURES {
                return Err(NoteError::TooManySignatures);
            }
            self.signatures.push(signature);
        }
        Ok(())
    }

    /// The note's bytes: text, a blank line, one line per signature.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.text.clone();
        out.push('\n');
        for signature in &self.signatures {
            out.push_str(&signature.to_line());
        }
        out.into_bytes()
    }
}

impl NoteSignature {
    /// The signature line, newline included: `— <name> <base64(key id ‖ signature)>`.
    pub fn to_line(&self) -> String {
        let mut raw = self.key_id.to_vec();
        raw.extend_from_slice(&self.signature);
        format!("{SIGNATURE_PREFIX}{} {}\n", self.name, base64::engine::general_purpose::STANDARD.encode(raw))
    }
}

fn parse_signature_line(line: &str) -> Result<NoteSignature, NoteError> {
    let bad = || NoteError::BadSignatureLine(line.chars().take(80).collect());
    let rest = line.strip_prefix(SIGNATURE_PREFIX).ok_or_else(bad)?;
    let (name, encoded) = rest.split_once(' ').ok_or_else(bad)?;
    if !is_key_name_valid(name) {
        return Err(NoteError::BadKeyName(name.to_owned()));
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|_| bad())?;
    if raw.len() < 5 {
        return Err(bad());
    }
    let key_id = [raw[0], raw[1], raw[2], raw[3]];
    Ok(NoteSignature { name: name.to_owned(), key_id, signature: raw[4..].to_vec() })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn signed() -> Note {
        let mut note = Note::new("example.com/log\n2\nAAAA\n").unwrap();
        note.add_signature(NoteSignature {
            name: "example.com/log".into(),
            key_id: [1, 2, 3, 4],
            signature: vec![9; 64],
        })
        .unwrap();
        note
    }

    #[test]
    fn formats_and_parses_back() {
        let note = signed();
        let bytes = note.to_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("example.com/log\n2\nAAAA\n\n\u{2014} example.com/log AQIDBAkJ"), "{text}");
        assert_eq!(Note::parse(&bytes).unwrap(), note);
    }

    #[test]
    fn malformed_notes_are_refused_with_the_reason() {
        let good = String::from_utf8(signed().to_bytes()).unwrap();
        let cases: Vec<(String, &str)> = vec![
            ("example.com/log\n2\n".to_owned(), "signature block"),
            (good.replace('\u{2014}', "-"), "malformed signature line"),
            (good.replace("AQID", "!!!!"), "malformed signature line"),
            (good.replacen("2\n", "2\r\n", 1), "control characters"),
            (format!("{good}junk"), "signature block"),
            (good.replace("example.com/log AQ", "example.com/log+x AQ"), "invalid key name"),
        ];
        for (bytes, reason) in cases {
            let err = Note::parse(bytes.as_bytes()).unwrap_err();
            assert!(err.to_string().contains(reason), "{bytes:?}: {err}");
        }
        assert!(matches!(Note::parse(&vec![b'a'; MAX_NOTE_BYTES + 1]), Err(NoteError::TooLarge { .. })));
        assert!(matches!(Note::parse(&[0xff, 0xfe]), Err(NoteError::NotUtf8)));
    }

    #[test]
    fn a_signature_for_the_same_key_is_added_once() {
        let mut note = signed();
        let again = note.signatures()[0].clone();
        note.add_signature(again).unwrap();
        assert_eq!(note.signatures().len(), 1);
    }
}
