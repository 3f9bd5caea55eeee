//! PEM encoding and decoding: SubjectPublicKeyInfo for public keys, PKCS#8 for secret keys,
//! and naming the algorithm of any key that is not Ed25519.

use ed25519_dalek::pkcs8::spki::der::{pem, Decode};
use ed25519_dalek::pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use ed25519_dalek::pkcs8::{self, PrivateKeyInfo};
use ed25519_dalek::SigningKey;
use zeroize::Zeroizing;

use super::key::PUBLIC_KEY_LEN;
use super::{KeyError, PublicKey, SecretKey};

pub(super) const PUBLIC_PEM_LABEL: &str = "PUBLIC KEY";
const PRIVATE_PEM_LABEL: &str = "PRIVATE KEY";

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4); the raw
/// 32-byte public key follows.
pub(super) const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, // SEQUENCE, 42 bytes
    0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, // AlgorithmIdentifier { 1.3.101.112 }
    0x03, 0x21, 0x00, // BIT STRING, 33 bytes, 0 unused bits
];

/// DER prefix of an Ed25519 PKCS#8 v1 OneAsymmetricKey (RFC 8410 §7), as
/// written by OpenSSL; the 32-byte seed follows.
const PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, // SEQUENCE, 46 bytes
    0x02, 0x01, 0x00, // version 0 (v1)
    0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, // AlgorithmIdentifier { 1.3.101.112 }
    0x04, 0x22, 0x04, 0x20, // OCTET STRING { OCTET STRING, 32 bytes }
];

impl PublicKey {
    /// SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`), as
    /// `openssl pkey -pubout` writes it.
    pub fn to_pem(&self) -> String {
        let mut der = [0u8; SPKI_PREFIX.len() + PUBLIC_KEY_LEN];
        der[..SPKI_PREFIX.len()].copy_from_slice(&SPKI_PREFIX);
        der[SPKI_PREFIX.len()..].copy_from_slice(self.0.as_bytes());
        let mut out = String::with_capacity(pem_capacity(PUBLIC_PEM_LABEL, der.len()));
        push_pem(&mut out, PUBLIC_PEM_LABEL, &der);
        out
    }

    /// Parses a SubjectPublicKeyInfo PEM holding an Ed25519 key.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let der = decode_pem(pem, PUBLIC_PEM_LABEL)?;
        let spki = SubjectPublicKeyInfoRef::from_der(&der)
            .map_err(|e| KeyError::Pem { what: format!("not a valid SubjectPublicKeyInfo: {e}") })?;
        check_algorithm(&spki.algorithm)?;
        if spki.algorithm.parameters.is_some() {
            return Err(KeyError::Pem {
                what: "Ed25519 public key has algorithm parameters (RFC 8410 forbids them)".into(),
            });
        }
        let raw = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| KeyError::Pem { what: "public key BIT STRING has unused bits".into() })?;
        PublicKey::from_bytes(raw)
    }
}

impl SecretKey {
    /// PKCS#8 v1 PEM (`-----BEGIN PRIVATE KEY-----`), byte-for-byte what
    /// `openssl genpkey -algorithm ED25519` writes.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        let mut der = Zeroizing::new([0u8; PKCS8_V1_PREFIX.len() + 32]);
        der[..PKCS8_V1_PREFIX.len()].copy_from_slice(&PKCS8_V1_PREFIX);
        der[PKCS8_V1_PREFIX.len()..].copy_from_slice(self.0.as_bytes());
        // Sized up front so the string never reallocates and leaves copies.
        let mut out = Zeroizing::new(String::with_capacity(pem_capacity(PRIVATE_PEM_LABEL, der.len())));
        push_pem(&mut out, PRIVATE_PEM_LABEL, &der[..]);
        out
    }

    /// Parses a PKCS#8 PEM holding an Ed25519 key (v1, or v2 with an embedded
    /// public key, which must match the secret).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        let der = decode_pem(pem, PRIVATE_PEM_LABEL)?;
        let info = PrivateKeyInfo::from_der(&der)
            .map_err(|e| KeyError::Pem { what: format!("not a valid PKCS#8 private key: {e}") })?;
        check_algorithm(&info.algorithm)?;
        let key = SigningKey::try_from(info)
            .map_err(|e| KeyError::Pem { what: format!("malformed Ed25519 PKCS#8 private key: {e}") })?;
        Ok(SecretKey(key))
    }
}

/// Decodes one PEM block with label `expected` into DER. The buffer is
/// zeroizing because it may hold a secret key.
fn decode_pem(pem_text: &str, expected: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let bytes = pem_text.trim().as_bytes();
    let label = pem::decode_label(bytes)
        .map_err(|e| KeyError::Pem { what: format!("not a PEM \"{expected}\" document ({e})") })?;
    if label != expected {
        return Err(wrong_label(label, expected));
    }
    let (_, der) = pem::decode_vec(bytes)
        .map_err(|e| KeyError::Pem { what: format!("corrupt PEM \"{expected}\" block ({e})") })?;
    Ok(Zeroizing::new(der))
}

fn wrong_label(found: &str, expected: &str) -> KeyError {
    let algorithm = |found: &str| KeyError::WrongAlgorithm { found: found.to_owned() };
    let pem = |what: String| KeyError::Pem { what };
    match found {
        "RSA PRIVATE KEY" | "RSA PUBLIC KEY" => algorithm("RSA (PKCS#1)"),
        "EC PRIVATE KEY" => algorithm("ECDSA/EC (SEC1)"),
        "DSA PRIVATE KEY" => algorithm("DSA"),
        "ENCRYPTED PRIVATE KEY" => {
            pem("encrypted PKCS#8 keys are not supported; decrypt the key first".into())
        }
        "OPENSSH PRIVATE KEY" => {
            pem("OpenSSH private key format is not supported; expected PKCS#8 PEM".into())
        }
        _ => pem(format!("expected a PEM \"{expected}\" block, found \"{found}\"")),
    }
}

/// Accepts only the Ed25519 OID; otherwise names the algorithm found.
fn check_algorithm(algorithm: &AlgorithmIdentifierRef<'_>) -> Result<(), KeyError> {
    if algorithm.oid == pkcs8::ALGORITHM_OID {
        return Ok(());
    }
    let oid = algorithm.oid.to_string();
    let name = match oid.as_str() {
        "1.2.840.113549.1.1.1" => "RSA".to_owned(),
        "1.2.840.113549.1.1.10" => "RSA-PSS".to_owned(),
        "1.2.840.10040.4.1" => "DSA".to_owned(),
        "1.2.840.10045.2.1" => match algorithm.parameters_oid().map(|c| c.to_string()) {
            Ok(curve) => match curve.as_str() {
                "1.2.840.10045.3.1.7" => "ECDSA P-256".to_owned(),
                "1.3.132.0.34" => "ECDSA P-384".to_owned(),
                "1.3.132.0.35" => "ECDSA P-521".to_owned(),
                "1.3.132.0.10" => "ECDSA secp256k1".to_owned(),
                _ => format!("EC (curve {curve})"),
            },
            Err(_) => "EC (unknown curve)".to_owned(),
        },
        "1.3.101.110" => "X25519".to_owned(),
        "1.3.101.111" => "X448".to_owned(),
        "1.3.101.113" => "Ed448".to_owned(),
        _ => return Err(KeyError::WrongAlgorithm { found: format!("with OID {oid}") }),
    };
    Err(KeyError::WrongAlgorithm { found: format!("{name} (OID {oid})") })
}

/// An upper bound on the length of the PEM encoding of `der_len` bytes.
fn pem_capacity(label: &str, der_len: usize) -> usize {
    let lines = der_len / 48 + 1;
    2 * label.len() + 32 + lines * 65
}

/// Appends `der` as PEM (base64 in 64-character lines, LF line endings).
/// The base64 is computed without secret-dependent branches or table lookups.
pub(super) fn push_pem(out: &mut String, label: &str, der: &[u8]) {
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    // 48 input bytes = one 64-character line; 48 is a multiple of 3, so each
    // line can be encoded on its own and only the last one may need padding.
    for line in der.chunks(48) {
        for group in line.chunks(3) {
            let b = [group[0], group.get(1).copied().unwrap_or(0), group.get(2).copied().unwrap_or(0)];
            let sextets = [b[0] >> 2, (b[0] << 4 | b[1] >> 4) & 63, (b[1] << 2 | b[2] >> 6) & 63, b[2] & 63];
            for (i, &sextet) in sextets.iter().enumerate() {
                out.push(if i <= group.len() { base64_digit(sextet) } else { '=' });
            }
        }
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
}

/// The standard base64 digit for `v` (0..64), computed arithmetically.
fn base64_digit(v: u8) -> char {
    let v = i16::from(v);
    // `(k - v) >> 8` is all ones when v > k, zero otherwise.
    let mut c = v + i16::from(b'A');
    c += ((25 - v) >> 8) & 6; // 26..=51 -> 'a'..='z'
    c -= ((51 - v) >> 8) & 75; // 52..=61 -> '0'..='9'
    c -= ((61 - v) >> 8) & 15; // 62 -> '+'
    c += ((62 - v) >> 8) & 3; // 63 -> '/'
    char::from(c as u8)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pem_roundtrip_in_memory() {
        let key = SecretKey::generate();
        let pem = key.to_pkcs8_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert_eq!(SecretKey::from_pkcs8_pem(&pem).unwrap().public(), key.public());

        let public_pem = key.public().to_pem();
        assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(PublicKey::from_pem(&public_pem).unwrap(), key.public());
        assert_eq!(PublicKey::from_bytes(&key.public().to_bytes()).unwrap(), key.public());
    }

    #[test]
    fn ed25519_dalek_pem_encodings_interoperate() {
        use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
        use pem::LineEnding;

        let key = SecretKey::generate();
        // ed25519-dalek writes PKCS#8 v2 (with the public key); accept it.
        let v2 = key.0.to_pkcs8_pem(LineEnding::LF).unwrap();
        assert_eq!(SecretKey::from_pkcs8_pem(&v2).unwrap().public(), key.public());
        // ... and it reads what we write.
        let ours = SigningKey::from_pkcs8_pem(&key.to_pkcs8_pem()).unwrap();
        assert_eq!(ours.verifying_key(), key.public().0);
        assert_eq!(key.public().0.to_public_key_pem(LineEnding::LF).unwrap(), key.public().to_pem());
    }

    #[test]
    fn pkcs8_v2_with_mismatched_public_key_rejected() {
        use ed25519_dalek::pkcs8::{EncodePrivateKey, KeypairBytes, PublicKeyBytes};

        let key = SecretKey::generate();
        let other = SecretKey::generate();
        let forged = KeypairBytes {
            secret_key: key.0.to_bytes(),
            public_key: Some(PublicKeyBytes(other.public().to_bytes())),
        };
        let pem = forged.to_pkcs8_pem(pem::LineEnding::LF).unwrap();
        let err = SecretKey::from_pkcs8_pem(&pem).unwrap_err();
        assert!(matches!(err, KeyError::Pem { .. }), "{err:?}");
    }

    #[test]
    fn base64_digits_match_alphabet() {
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (v, expected) in alphabet.chars().enumerate() {
            assert_eq!(base64_digit(v as u8), expected, "digit {v}");
        }
    }

    #[test]
    fn pem_padding_and_line_wrapping() {
        // 1, 2 and 3 trailing bytes, and a body longer than one line.
        for len in [1usize, 2, 3, 47, 48, 49, 100] {
            let der: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let mut out = String::new();
            push_pem(&mut out, "TEST", &der);
            assert!(out.len() <= pem_capacity("TEST", len));
            let (label, decoded) = pem::decode_vec(out.as_bytes()).unwrap();
            assert_eq!(label, "TEST");
            assert_eq!(decoded, der, "len {len}");
        }
    }

    #[test]
    fn pem_with_crlf_and_surrounding_whitespace_accepted() {
        let key = SecretKey::generate();
        let crlf = format!("\n  {}\n\n", key.to_pkcs8_pem().replace('\n', "\r\n"));
        assert_eq!(SecretKey::from_pkcs8_pem(&crlf).unwrap().public(), key.public());
    }
}
