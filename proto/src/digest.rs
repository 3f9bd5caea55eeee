//! The content address of a blob: BLAKE3-256, written `blake3:<64 lowercase hex>`.

use std::fmt;
use std::str::FromStr;

use serde::de::Visitor;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Prefix of the text form of a [`Digest`].
pub const DIGEST_PREFIX: &str = "blake3:";

/// A BLAKE3-256 digest. Text form `blake3:<64 lowercase hex>`; in CBOR a 32-byte byte string.
///
/// ```
/// use airlock_proto::Digest;
/// let d = Digest::of(b"hello");
/// assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
/// assert!("BLAKE3:00".parse::<Digest>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

/// Why a text digest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestParseError {
    #[error("digest must start with `blake3:`")]
    MissingPrefix,
    #[error("digest must have exactly 64 hex digits after `blake3:`, found {0} characters")]
    BadLength(usize),
    #[error("digest must be lowercase hex (0-9, a-f)")]
    BadHex,
}

impl Digest {
    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }

    /// Wraps 32 raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex digits, without prefix.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the bare 64-lowercase-hex form (as used in URL paths).
    pub fn from_hex(text: &str) -> Result<Self, DigestParseError> {
        if text.len() != 64 {
            return Err(DigestParseError::BadLength(text.len()));
        }
        if !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestParseError::BadHex);
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(|_| DigestParseError::BadHex)?;
        Ok(Self(out))
    }
}

impl From<blake3::Hash> for Digest {
    fn from(hash: blake3::Hash) -> Self {
        Self(*hash.as_bytes())
    }
}

impl FromStr for Digest {
    type Err = DigestParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let hex_part = text.strip_prefix(DIGEST_PREFIX).ok_or(DigestParseError::MissingPrefix)?;
        Self::from_hex(hex_part)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{DIGEST_PREFIX}{}", self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Digest;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 32-byte BLAKE3 digest")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Digest, E> {
                <[u8; 32]>::try_from(v).map(Digest).map_err(|_| E::invalid_length(v.len(), &self))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Digest, E> {
                v.parse().map_err(E::custom)
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(V)
        } else {
            deserializer.deserialize_bytes(V)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        let d = Digest::of(b"airlock");
        let text = d.to_string();
        assert!(text.starts_with("blake3:"));
        assert_eq!(text.len(), 7 + 64);
        assert_eq!(text.parse::<Digest>(), Ok(d));
    }

    #[test]
    fn parsing_rejects_anything_else() {
        let good = Digest::of(b"x").to_string();
        let upper = format!("blake3:{}", Digest::of(b"x").to_hex().to_uppercase());
        for bad in [
            "",
            "blake3:",
            &good[7..],
            &format!("sha256:{}", &good[7..]),
            &format!("BLAKE3:{}", &good[7..]),
            &upper,
            &format!("{good}0"),
            &good[..good.len() - 1],
            &format!(" {good}"),
            &format!("{}g", &good[..good.len() - 1]),
        ] {
            assert!(bad.parse::<Digest>().is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn empty_input_vector() {
        assert_eq!(
            Digest::of(b"").to_string(),
            "blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }
}
