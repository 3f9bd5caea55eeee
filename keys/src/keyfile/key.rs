//! The key types: validation (canonical encodings, weak keys), key ids, signing and strict
//! verification.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::{KeyError, KeyId};

pub(super) const PUBLIC_KEY_LEN: usize = 32;
pub(super) const SIGNATURE_LEN: usize = 64;

/// The Ed25519 group order l = 2^252 + 27742317777372353535851937790883648493,
/// little-endian.
const GROUP_ORDER_LE: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
];

/// An Ed25519 public key, validated on construction: the encoding is a
/// canonical curve point and the point is not of small order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub(super) VerifyingKey);

impl PublicKey {
    /// Parses a raw 32-byte public key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let bytes: &[u8; PUBLIC_KEY_LEN] = bytes.try_into().map_err(|_| KeyError::BadLength {
            what: "Ed25519 public key",
            expected: PUBLIC_KEY_LEN,
            got: bytes.len(),
        })?;
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::InvalidPoint)?;
        // Decompression tolerates a few non-canonical encodings (y >= p, or
        // x = 0 with the sign bit set); a key must have exactly one encoding.
        if key.to_edwards().compress().as_bytes() != bytes {
            return Err(KeyError::InvalidPoint);
        }
        // A key with a small-order component verifies differently one signature at a time and
        // in a batch; a key made from a secret scalar never has one.
        if key.is_weak() || !key.to_edwards().is_torsion_free() {
            return Err(KeyError::WeakKey);
        }
        Ok(PublicKey(key))
    }

    /// The raw 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.0.to_bytes()
    }

    /// BLAKE3 of the raw encoding.
    pub fn id(&self) -> KeyId {
        KeyId::of(&airlock_proto::PublicKeyBytes(self.to_bytes()))
    }

    /// Strict Ed25519 verification: the signature must be 64 bytes, its S
    /// must be reduced (S < l), and its R must not be a small-order point.
    pub fn verify_strict(&self, message: &[u8], signature: &[u8]) -> Result<(), KeyError> {
        let signature: &[u8; SIGNATURE_LEN] = signature.try_into().map_err(|_| KeyError::BadLength {
            what: "Ed25519 signature",
            expected: SIGNATURE_LEN,
            got: signature.len(),
        })?;
        // ed25519-dalek checks this too, unless some crate in the build turns
        // on its `legacy_compatibility` feature; check it here regardless.
        if !is_reduced_scalar(&signature[32..]) {
            return Err(KeyError::BadSignature);
        }
        self.0.verify_strict(message, &Signature::from_bytes(signature)).map_err(|_| KeyError::BadSignature)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id())
    }
}

/// Whether the little-endian 256-bit `s` is below the group order l.
/// Not constant time; signatures are public.
pub(super) fn is_reduced_scalar(s: &[u8]) -> bool {
    for (a, b) in s.iter().rev().zip(GROUP_ORDER_LE.iter().rev()) {
        if a != b {
            return a < b;
        }
    }
    false // s == l
}

/// S' = S + l (a little-endian 256-bit add): the same value mod l, which lax verifiers accept
/// as a second valid signature.
#[cfg(test)]
pub(super) fn malleate(signature: &mut [u8; SIGNATURE_LEN]) {
    let mut carry = 0u16;
    for (s, l) in signature[32..].iter_mut().zip(GROUP_ORDER_LE) {
        let sum = u16::from(*s) + u16::from(l) + carry;
        *s = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0, "S + l overflowed 256 bits");
}

/// An Ed25519 signing key. Zeroized on drop (by ed25519-dalek); its `Debug`
/// output shows only the key id. Deliberately has no `Display`, `Clone` or
/// serialization.
pub struct SecretKey(pub(super) SigningKey);

impl SecretKey {
    /// A fresh key from the operating system's RNG.
    pub fn generate() -> Self {
        SecretKey(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        // A key derived from a clamped scalar is never small-order, and the
        // compressed form is canonical, so no re-validation is needed.
        PublicKey(self.0.verifying_key())
    }

    /// Signs `message` (pure Ed25519, RFC 8032).
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.0.sign(message).to_bytes()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({}, redacted)", self.public().id())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn key_id_is_blake3_of_public_key_in_hex() {
        let key = SecretKey::generate().public();
        let id = key.id();
        assert_eq!(id.0, *blake3::hash(&key.to_bytes()).as_bytes());
        let hex = id.to_string();
        assert_eq!(hex, hex::encode(id.0));
        assert_eq!(hex.len(), 64);
        assert_eq!(format!("{id:?}"), format!("KeyId({hex})"));
        assert_eq!(format!("{key:?}"), format!("PublicKey({hex})"));
    }

    #[test]
    fn secret_key_debug_is_redacted() {
        let key = SecretKey::generate();
        let debug = format!("{key:?}");
        let alt_debug = format!("{key:#?}");
        assert_eq!(debug, format!("SecretKey({}, redacted)", key.public().id()));

        let seed = key.0.to_bytes();
        let pem = key.to_pkcs8_pem();
        let pem_body = pem.lines().nth(1).unwrap();
        for shown in [&debug, &alt_debug] {
            assert!(!shown.contains(&hex::encode(seed)));
            assert!(!shown.contains(&hex::encode_upper(seed)));
            assert!(!shown.contains(pem_body));
            // Not even a 4-byte window of the seed, in hex or as decimals.
            for w in seed.windows(4) {
                assert!(!shown.contains(&hex::encode(w)), "{shown}");
                assert!(!shown.contains(&format!("{}, {}, {}, {}", w[0], w[1], w[2], w[3])));
            }
        }
    }

    #[test]
    fn invalid_and_non_canonical_points_rejected() {
        // y = 2 is not the y-coordinate of any curve point.
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        assert!(matches!(PublicKey::from_bytes(&off_curve), Err(KeyError::InvalidPoint)));

        // A valid key with y replaced by y + p (still < 2^255) decodes to the
        // same point through a second encoding; find such a key (y < 19).
        let p_minus_1 = {
            let mut b = [0xffu8; 32];
            b[0] = 0xec;
            b[31] = 0x7f;
            b
        };
        let mut found = false;
        for y in 2u8..19 {
            let mut canonical = [0u8; 32];
            canonical[0] = y;
            // On the curve (whether or not the point would pass as a key).
            if VerifyingKey::from_bytes(&canonical).is_err() {
                continue;
            }
            // y + p = (p - 1) + (y + 1), with no carry out of byte 0.
            let mut alias = p_minus_1;
            alias[0] = p_minus_1[0] + y + 1;
            assert!(matches!(PublicKey::from_bytes(&alias), Err(KeyError::InvalidPoint)));
            found = true;
        }
        assert!(found, "no small canonical y to alias");

        let err = PublicKey::from_bytes(&[7u8; 31]).unwrap_err();
        assert!(matches!(err, KeyError::BadLength { expected: 32, got: 31, .. }), "{err:?}");
    }

    #[test]
    fn a_key_with_a_small_order_component_is_weak() {
        let honest = SecretKey::generate().public();
        for torsion in &curve25519_dalek::constants::EIGHT_TORSION[1..] {
            let mixed = (honest.0.to_edwards() + torsion).compress().to_bytes();
            assert!(matches!(PublicKey::from_bytes(&mixed), Err(KeyError::WeakKey)));
        }
        assert_eq!(PublicKey::from_bytes(&honest.to_bytes()).unwrap(), honest);
    }

    #[test]
    fn malleable_signature_rejected() {
        let key = SecretKey::generate();
        let msg = b"release v1.2.3";
        let sig = key.sign(msg);
        key.public().verify_strict(msg, &sig).unwrap();

        // S' = S + l (little-endian 256-bit add): same value mod l, so
        // lax verifiers accept it, giving a second valid signature.
        let mut malleated = sig;
        malleate(&mut malleated);
        assert_ne!(malleated, sig);
        let err = key.public().verify_strict(msg, &malleated).unwrap_err();
        assert!(matches!(err, KeyError::BadSignature), "{err:?}");
    }

    #[test]
    fn wrong_key_signature_rejected() {
        let a = SecretKey::generate();
        let b = SecretKey::generate();
        let msg = b"artifact digest";
        let sig = a.sign(msg);
        a.public().verify_strict(msg, &sig).unwrap();
        assert!(matches!(b.public().verify_strict(msg, &sig), Err(KeyError::BadSignature)));
        // Also: wrong message, tampered signature, wrong length.
        assert!(matches!(a.public().verify_strict(b"other", &sig), Err(KeyError::BadSignature)));
        let mut tampered = sig;
        tampered[5] ^= 1;
        assert!(matches!(a.public().verify_strict(msg, &tampered), Err(KeyError::BadSignature)));
        let err = a.public().verify_strict(msg, &sig[..63]).unwrap_err();
        assert!(matches!(err, KeyError::BadLength { expected: 64, got: 63, .. }), "{err:?}");
    }
}
