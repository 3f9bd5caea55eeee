//! Fixed-size byte newtypes used on the wire: key ids, public keys, signatures, hashes.
//!
//! Each one is a CBOR byte string of an exact length; a byte string of any other length is a
//! decode error, so once you hold one its length is right.

use std::fmt;

use serde::de::Visitor;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! fixed_bytes {
    ($(#[$meta:meta])* $name:ident, $len:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// Builds one from a slice of exactly the right length.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; $len]>::try_from(bytes).ok().map(Self)
            }

            /// Lowercase hex form.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses exactly `2 * LEN` lowercase hex digits.
            pub fn from_hex(text: &str) -> Option<Self> {
                if text.len() != 2 * $len || text.bytes().any(|b| b.is_ascii_uppercase()) {
                    return None;
                }
                let mut out = [0u8; $len];
                hex::decode_to_slice(text, &mut out).ok()?;
                Some(Self(out))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if serializer.is_human_readable() {
                    serializer.serialize_str(&self.to_hex())
                } else {
                    serializer.serialize_bytes(&self.0)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "a byte string of {} bytes", $len)
                    }
                    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<$name, E> {
                        $name::from_slice(v).ok_or_else(|| E::invalid_length(v.len(), &self))
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        $name::from_hex(v).ok_or_else(|| E::custom(concat!("bad hex for ", stringify!($name))))
                    }
                }
                if deserializer.is_human_readable() {
                    deserializer.deserialize_str(V)
                } else {
                    deserializer.deserialize_bytes(V)
                }
            }
        }
    };
}

fixed_bytes!(
    /// Key id: BLAKE3-256 of the raw 32-byte ed25519 public key. Computed by the verifier,
    /// never trusted from an envelope.
    KeyId,
    32
);
fixed_bytes!(
    /// A raw ed25519 public key as listed in a root. Validated (weak keys refused) by
    /// `airlock-keys` when a root is loaded.
    PublicKeyBytes,
    32
);
fixed_bytes!(
    /// A raw ed25519 signature.
    SignatureBytes,
    64
);
fixed_bytes!(
    /// A SHA-256 digest (recorded beside BLAKE3 because pip and uv verify only SHA-2).
    Sha256,
    32
);
fixed_bytes!(
    /// A Merkle tree hash (BLAKE3-256 with domain-separation prefixes, see `merkle`).
    Hash32,
    32
);

impl KeyId {
    /// The key id of a raw public key: BLAKE3-256 of its 32 bytes.
    pub fn of(public_key: &PublicKeyBytes) -> Self {
        Self(*blake3::hash(&public_key.0).as_bytes())
    }
}
