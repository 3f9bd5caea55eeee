//! Ed25519 keys and key files.
//!
//! * [`PublicKey`] is validated on construction: invalid or non-canonical
//!   point encodings and weak (small-order) keys are rejected, and
//!   [`PublicKey::verify_strict`] rejects malleable signatures.
//! * [`SecretKey`] zeroizes itself on drop and never prints its material.
//! * [`KeyId`] is the BLAKE3 hash of the raw 32-byte public key.
//! * Keys are stored as PEM: secret keys as PKCS#8 (`PRIVATE KEY`), public keys
//!   as SubjectPublicKeyInfo (`PUBLIC KEY`). Keys of any other algorithm (RSA,
//!   ECDSA, ...) are rejected with an error that names the algorithm.
//!
//! The `write_*`/`read_*` functions at the bottom are the only file I/O in the
//! keys crate. Secret key files must not be accessible by group or others,
//! key files are capped at [`MAX_KEY_FILE_BYTES`], and secret material read
//! from disk only ever lives in [`Zeroizing`] buffers.

use std::fmt;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::{pem, Decode};
use ed25519_dalek::pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use ed25519_dalek::pkcs8::{self, PrivateKeyInfo};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

/// Key files larger than this are refused without being parsed.
pub const MAX_KEY_FILE_BYTES: usize = 16 * 1024;

const PUBLIC_KEY_LEN: usize = 32;
const SIGNATURE_LEN: usize = 64;

const PUBLIC_PEM_LABEL: &str = "PUBLIC KEY";
const PRIVATE_PEM_LABEL: &str = "PRIVATE KEY";

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4); the raw
/// 32-byte public key follows.
const SPKI_PREFIX: [u8; 12] = [
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

/// The Ed25519 group order l = 2^252 + 27742317777372353535851937790883648493,
/// little-endian.
const GROUP_ORDER_LE: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
];

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Everything that can go wrong with keys, signatures and key files.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The public key is a small-order point; signatures under it prove nothing.
    #[error("weak Ed25519 public key (small-order point) rejected")]
    WeakKey,
    /// A key or signature had the wrong number of bytes.
    #[error("{what}: expected {expected} bytes, got {got}")]
    BadLength { what: &'static str, expected: usize, got: usize },
    /// The signature does not verify (or is malleable / non-canonical).
    #[error("Ed25519 signature verification failed")]
    BadSignature,
    /// The bytes are not the canonical encoding of an Ed25519 curve point.
    #[error("invalid Ed25519 public key: not a canonical curve point encoding")]
    InvalidPoint,
    /// Not PEM, corrupt base64, the wrong PEM label, or malformed DER inside.
    #[error("malformed key: {what}")]
    Pem { what: String },
    /// A well-formed key of some algorithm other than Ed25519.
    #[error("unsupported key algorithm {found}; only Ed25519 (OID 1.3.101.112) keys are accepted")]
    WrongAlgorithm { found: String },
    /// The key file exceeds [`MAX_KEY_FILE_BYTES`].
    #[error("file is larger than the {limit}-byte limit for key files")]
    TooLarge { limit: usize },
    /// Reading, writing or syncing a file or directory failed.
    #[error("I/O error on {}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
    /// A key file's contents were rejected; `error` says why.
    #[error("key file {}: {error}", path.display())]
    InFile { path: PathBuf, error: Box<KeyError> },
    /// A secret key file is readable or writable by group or others.
    #[error(
        "secret key file {} has insecure permissions {mode:04o} (accessible by group/others); \
         run `chmod 600` on it",
        path.display()
    )]
    InsecurePermissions { path: PathBuf, mode: u32 },
    /// Refused to overwrite an existing key file.
    #[error("key file {} already exists; refusing to overwrite it", path.display())]
    Exists { path: PathBuf },
}

fn in_file(path: &Path, err: KeyError) -> KeyError {
    KeyError::InFile { path: path.to_path_buf(), error: Box::new(err) }
}

fn io_error(path: &Path, error: io::Error) -> KeyError {
    KeyError::Io { path: path.to_path_buf(), error }
}

// ---------------------------------------------------------------------------
// KeyId
// ---------------------------------------------------------------------------

pub use airlock_proto::KeyId;

// ---------------------------------------------------------------------------
// PublicKey
// ---------------------------------------------------------------------------

/// An Ed25519 public key, validated on construction: the encoding is a
/// canonical curve point and the point is not of small order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses a raw 32-byte public key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let bytes: &[u8; PUBLIC_KEY_LEN] = bytes.try_into().map_err(|_| KeyError::BadLength {
            what: "Ed25519 public key",
            expected: PUBLIC_KEY_LEN,
            got: bytes.len(),
        })?;
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::InvalidPoint)?;
        if key.is_weak() {
            return Err(KeyError::WeakKey);
        }
        // Decompression tolerates a few non-canonical encodings (y >= p, or
        // x = 0 with the sign bit set); a key must have exactly one encoding.
        if key.to_edwards().compress().as_bytes() != bytes {
            return Err(KeyError::InvalidPoint);
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

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id())
    }
}

/// Whether the little-endian 256-bit `s` is below the group order l.
/// Not constant time; signatures are public.
fn is_reduced_scalar(s: &[u8]) -> bool {
    for (a, b) in s.iter().rev().zip(GROUP_ORDER_LE.iter().rev()) {
        if a != b {
            return a < b;
        }
    }
    false // s == l
}

// ---------------------------------------------------------------------------
// SecretKey
// ---------------------------------------------------------------------------

/// An Ed25519 signing key. Zeroized on drop (by ed25519-dalek); its `Debug`
/// output shows only the key id. Deliberately has no `Display`, `Clone` or
/// serialization.
pub struct SecretKey(SigningKey);

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

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({}, redacted)", self.public().id())
    }
}

// ---------------------------------------------------------------------------
// PEM and algorithm identification
// ---------------------------------------------------------------------------

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
fn push_pem(out: &mut String, label: &str, der: &[u8]) {
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

// ---------------------------------------------------------------------------
// Key files
// ---------------------------------------------------------------------------

/// Writes `key` as PKCS#8 PEM to a new file with mode 0600. Refuses to
/// overwrite (`KeyError::Exists`); fsyncs the file and its directory.
pub fn write_secret_key(path: &Path, key: &SecretKey) -> Result<(), KeyError> {
    write_new_file(path, key.to_pkcs8_pem().as_bytes(), 0o600)
}

/// Writes `key` as SubjectPublicKeyInfo PEM to a new file with mode 0644.
/// Refuses to overwrite (`KeyError::Exists`); fsyncs the file and its directory.
pub fn write_public_key(path: &Path, key: &PublicKey) -> Result<(), KeyError> {
    write_new_file(path, key.to_pem().as_bytes(), 0o644)
}

/// Reads a PKCS#8 PEM Ed25519 secret key. Refuses files accessible by group
/// or others (`KeyError::InsecurePermissions`). Problems with the contents
/// come back as `KeyError::InFile { path, .. }`; I/O errors as
/// `KeyError::Io { path, .. }`.
pub fn read_secret_key(path: &Path) -> Result<SecretKey, KeyError> {
    load_key_file(path, true, SecretKey::from_pkcs8_pem)
}

/// Reads a SubjectPublicKeyInfo PEM Ed25519 public key (not a secret key
/// file). Problems with the contents, including weak keys, come back as
/// `KeyError::InFile { path, .. }`; I/O errors as `KeyError::Io { path, .. }`.
pub fn read_public_key(path: &Path) -> Result<PublicKey, KeyError> {
    load_key_file(path, false, PublicKey::from_pem)
}

fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyError> {
    let mut file =
        OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(|e| {
            match e.kind() {
                io::ErrorKind::AlreadyExists => KeyError::Exists { path: path.to_path_buf() },
                _ => io_error(path, e),
            }
        })?;
    if let Err(e) = fill_new_file(&mut file, contents, mode) {
        // We created the file, so remove the partial one rather than leave
        // it to block a retry with `Exists`.
        drop(file);
        let _ = fs::remove_file(path);
        return Err(io_error(path, e));
    }
    drop(file);
    sync_parent_dir(path)
}

fn fill_new_file(file: &mut File, contents: &[u8], mode: u32) -> io::Result<()> {
    // The umask may have narrowed the creation mode; set it exactly.
    file.set_permissions(Permissions::from_mode(mode))?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Makes the new directory entry durable.
fn sync_parent_dir(path: &Path) -> Result<(), KeyError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error(dir, e))
}

fn load_key_file<T>(
    path: &Path,
    secret: bool,
    parse: fn(&str) -> Result<T, KeyError>,
) -> Result<T, KeyError> {
    let contents = read_key_file(path, secret)?;
    let text = std::str::from_utf8(&contents)
        .map_err(|_| in_file(path, KeyError::Pem { what: "not a text (PEM) file".into() }))?;
    parse(text).map_err(|e| in_file(path, e))
}

/// Reads a whole key file of at most `MAX_KEY_FILE_BYTES` into a zeroizing
/// buffer that is never reallocated. With `secret`, first checks that group
/// and others have no access.
fn read_key_file(path: &Path, secret: bool) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    // Check before opening: opening a FIFO would block.
    let is_file = fs::metadata(path).map_err(|e| io_error(path, e))?.is_file();
    if !is_file {
        return Err(io_error(path, io::Error::other("not a regular file")));
    }
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    // Judge the file actually opened, not whatever the path names now.
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    if !meta.is_file() {
        return Err(io_error(path, io::Error::other("not a regular file")));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if secret && mode & 0o077 != 0 {
        return Err(KeyError::InsecurePermissions { path: path.to_path_buf(), mode });
    }
    let too_large = || in_file(path, KeyError::TooLarge { limit: MAX_KEY_FILE_BYTES });
    if meta.len() > MAX_KEY_FILE_BYTES as u64 {
        return Err(too_large());
    }

    // One byte of slack to detect files that grew past the limit.
    let mut buf = Zeroizing::new(vec![0u8; MAX_KEY_FILE_BYTES + 1]);
    let mut len = 0;
    loop {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if len > MAX_KEY_FILE_BYTES {
                    return Err(too_large());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(path, e)),
        }
    }
    buf.truncate(len);
    Ok(buf)
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024`
    const RSA_PKCS8_PEM: &str = "\
-----BEGIN PRIVATE KEY-----
MIICdwIBADANBgkqhkiG9w0BAQEFAASCAmEwggJdAgEAAoGBAK2Fmd7PihAKptOx
/xYtflLRrGJErtaDP/vuGvinT3Y4SOnZ9PzZ28gK5l2mBzzKpFU1yION922GlmPr
lw6243/esn5+EO73Qy2ldifD9CatATD27YcDZJtlP6ZLuT/4YiknU/Hb1xYb8MV1
xHR4T7rQOTwBMPpFOVY/w7mMx7XdAgMBAAECgYEAnxFwYs7Cc74v/LSZcQ03Vlib
vGHWHROonhxCYVuO/oLOZIHHkdttHM7RK1w+Gj5xsyNgsyh7f833I5YengCOP3Aq
fI02ISnOfZttboGmhNwJx4jGLfkLwkOO8CVER1fnszRv5I1PDjqWXyR26LZiuUQN
El9Ft3NE/cJs6iqk40ECQQDnD3VGBN5nIbnOMujmZ2tAZ7UAIIqLebbwTabVQAef
huNTePyceNn5y7PqNXbDRB0M3ev936uYXkBT1P2He8PlAkEAwEBEv4fxTbw6SCtq
6Y/OdeczU5ed3b4aNadnZAvtmP2WT6dGW3Na4hj1pfOmoTvJGHECJvURYQOuZ35s
+Fr6mQJAL0EXD9HRFjBsioIY5X4DDjHnb3Y4P1wOEMkgtH4a0QJKHXkh2HJSyeZi
DiUO+9JDSq1cJRiIRGoKJ9roWrvyDQJAVktC0JoLlTH9EzHx7l6vdLrPjiELKmJP
T3AR95VnE/oXwy85ZIk17TD46oGgdNTqIf9v0N7F6z8ExM25ygzEWQJBALS5vLES
4wm4HNHlJaHkThV+KAlwGWV2d7pEfeiXDcu1aV3i8v5xVkEC4kb7QJEg25IQwJ/q
Eh27HzAd2t7IKmE=
-----END PRIVATE KEY-----
";

    /// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`
    const P256_PKCS8_PEM: &str = "\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgCw4xamMCIa86frKd
kFeUP0IlDbDtGIXjcfVE0hvj58mhRANCAATkc+wOXNJtIJs9YRGD/NKCQNAzaCEt
nrHUM+YmcHxs0BnkMkx66j0yYMR8lm5hZV6EUTEjai78WWyb44vQwqYh
-----END PRIVATE KEY-----
";

    /// `openssl pkey -pubout` of [`P256_PKCS8_PEM`].
    const P256_SPKI_PEM: &str = "\
-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE5HPsDlzSbSCbPWERg/zSgkDQM2gh
LZ6x1DPmJnB8bNAZ5DJMeuo9MmDEfJZuYWVehFExI2ou/Flsm+OL0MKmIQ==
-----END PUBLIC KEY-----
";

    /// `openssl genpkey -algorithm ED25519`
    const OPENSSL_ED25519_PKCS8_PEM: &str = "\
-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIHtf+VlwOEiTDcwc6d5I/NxOskBueQUA/S8wmJC+VeNx
-----END PRIVATE KEY-----
";

    /// `openssl pkey -pubout` of [`OPENSSL_ED25519_PKCS8_PEM`].
    const OPENSSL_ED25519_SPKI_PEM: &str = "\
-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAhhQ2n9IqAeVbo2BDm85c5aSmRnOQLyZlMO5f8QC1qc0=
-----END PUBLIC KEY-----
";

    fn write_file(path: &Path, contents: &[u8], mode: u32) {
        fs::write(path, contents).unwrap();
        fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
    }

    fn file_mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    /// Asserts `err` is `InFile` for `path` and its message names the file
    /// and contains every one of `needles`; returns the inner error.
    fn assert_in_file<'e>(err: &'e KeyError, path: &Path, needles: &[&str]) -> &'e KeyError {
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        for needle in needles {
            assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
        }
        match err {
            KeyError::InFile { path: p, error: source } => {
                assert_eq!(p, path);
                source
            }
            other => panic!("expected InFile, got {other:?}"),
        }
    }

    #[test]
    fn roundtrip_through_files() {
        let dir = tempfile::tempdir().unwrap();
        let secret_path = dir.path().join("signer.key");
        let public_path = dir.path().join("signer.pub");
        let key = SecretKey::generate();

        write_secret_key(&secret_path, &key).unwrap();
        write_public_key(&public_path, &key.public()).unwrap();
        assert_eq!(file_mode(&secret_path), 0o600);
        assert_eq!(file_mode(&public_path), 0o644);

        let secret = read_secret_key(&secret_path).unwrap();
        let public = read_public_key(&public_path).unwrap();
        assert_eq!(secret.public(), key.public());
        assert_eq!(public, key.public());
        assert_eq!(public.id(), key.public().id());
        let sig = secret.sign(b"artifact");
        public.verify_strict(b"artifact", &sig).unwrap();
    }

    #[test]
    fn write_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let first = SecretKey::generate();
        write_secret_key(&path, &first).unwrap();
        let before = fs::read(&path).unwrap();

        let err = write_secret_key(&path, &SecretKey::generate()).unwrap_err();
        assert!(matches!(err, KeyError::Exists { .. }), "{err:?}");
        assert!(err.to_string().contains(&path.display().to_string()));
        let err = write_public_key(&path, &first.public()).unwrap_err();
        assert!(matches!(err, KeyError::Exists { .. }), "{err:?}");
        assert_eq!(fs::read(&path).unwrap(), before);
    }

    #[test]
    fn write_into_missing_directory_names_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("k");
        let err = write_secret_key(&path, &SecretKey::generate()).unwrap_err();
        assert!(matches!(err, KeyError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains(&path.display().to_string()));
    }

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
    fn openssl_ed25519_keys_interoperate() {
        let key = SecretKey::from_pkcs8_pem(OPENSSL_ED25519_PKCS8_PEM).unwrap();
        assert_eq!(key.public().to_pem(), OPENSSL_ED25519_SPKI_PEM);
        assert_eq!(key.to_pkcs8_pem().as_str(), OPENSSL_ED25519_PKCS8_PEM);
        assert_eq!(PublicKey::from_pem(OPENSSL_ED25519_SPKI_PEM).unwrap(), key.public());
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
    fn weak_public_key_rejected() {
        // The identity point (0, 1), (sqrt(-1), 0) of order 4, and the
        // order-2 point (0, -1).
        let identity = {
            let mut b = [0u8; 32];
            b[0] = 1;
            b
        };
        let order_2 = {
            let mut b = [0xffu8; 32];
            b[0] = 0xec;
            b[31] = 0x7f;
            b
        };
        for bytes in [identity, [0u8; 32], order_2] {
            let err = PublicKey::from_bytes(&bytes).unwrap_err();
            assert!(matches!(err, KeyError::WeakKey), "{bytes:?}: {err:?}");
        }

        // The same through a PEM public key file.
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&identity);
        let mut pem_text = String::new();
        push_pem(&mut pem_text, PUBLIC_PEM_LABEL, &der);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weak.pub");
        write_file(&path, pem_text.as_bytes(), 0o644);
        let err = read_public_key(&path).unwrap_err();
        let inner = assert_in_file(&err, &path, &["weak"]);
        assert!(matches!(inner, KeyError::WeakKey), "{inner:?}");
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
            if PublicKey::from_bytes(&canonical).is_err() {
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
    fn malleable_signature_rejected() {
        let key = SecretKey::generate();
        let msg = b"release v1.2.3";
        let sig = key.sign(msg);
        key.public().verify_strict(msg, &sig).unwrap();

        // S' = S + l (little-endian 256-bit add): same value mod l, so
        // lax verifiers accept it, giving a second valid signature.
        let mut malleated = sig;
        let mut carry = 0u16;
        for (s, l) in malleated[32..].iter_mut().zip(GROUP_ORDER_LE) {
            let sum = u16::from(*s) + u16::from(l) + carry;
            *s = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0);
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

    #[test]
    fn rsa_key_file_rejected_with_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rsa.key");
        write_file(&path, RSA_PKCS8_PEM.as_bytes(), 0o600);
        let err = read_secret_key(&path).unwrap_err();
        let inner = assert_in_file(&err, &path, &["RSA", "1.2.840.113549.1.1.1", "Ed25519"]);
        assert!(matches!(inner, KeyError::WrongAlgorithm { .. }), "{inner:?}");

        // Traditional PKCS#1 framing is named too.
        let pkcs1 = "-----BEGIN RSA PRIVATE KEY-----\nMAA=\n-----END RSA PRIVATE KEY-----\n";
        let err = SecretKey::from_pkcs8_pem(pkcs1).unwrap_err();
        assert!(matches!(err, KeyError::WrongAlgorithm { .. }), "{err:?}");
        assert!(err.to_string().contains("RSA"));
    }

    #[test]
    fn p256_key_file_rejected_with_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p256.key");
        write_file(&path, P256_PKCS8_PEM.as_bytes(), 0o600);
        let err = read_secret_key(&path).unwrap_err();
        let inner = assert_in_file(&err, &path, &["ECDSA P-256", "1.2.840.10045.2.1"]);
        assert!(matches!(inner, KeyError::WrongAlgorithm { .. }), "{inner:?}");

        let pub_path = dir.path().join("p256.pub");
        write_file(&pub_path, P256_SPKI_PEM.as_bytes(), 0o644);
        let err = read_public_key(&pub_path).unwrap_err();
        let inner = assert_in_file(&err, &pub_path, &["ECDSA P-256"]);
        assert!(matches!(inner, KeyError::WrongAlgorithm { .. }), "{inner:?}");
    }

    #[test]
    fn corrupt_key_file_rejected_naming_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::generate();
        let pem = key.to_pkcs8_pem();

        let bad_base64 = pem.replacen("MC4CAQAw", "MC4CAQ!w", 1);
        let truncated = pem[..pem.len() - 10].to_owned();
        let body_mangled = pem.replacen("MC4CAQAw", "MC4CAQEw", 1); // version 1
        let cases: [(&str, &[u8]); 6] = [
            ("bad-base64", bad_base64.as_bytes()),
            ("truncated", truncated.as_bytes()),
            ("bad-der", body_mangled.as_bytes()),
            ("empty", b""),
            ("binary", &[0xff, 0xfe, 0x00, 0x80]),
            ("public-key-instead", OPENSSL_ED25519_SPKI_PEM.as_bytes()),
        ];
        for (name, contents) in cases {
            let path = dir.path().join(name);
            write_file(&path, contents, 0o600);
            let err = read_secret_key(&path).unwrap_err();
            let inner = assert_in_file(&err, &path, &["key file"]);
            assert!(matches!(inner, KeyError::Pem { .. }), "{name}: {inner:?}");
        }

        // A secret key is not accepted as a public key file.
        let path = dir.path().join("secret-as-public");
        write_file(&path, pem.as_bytes(), 0o600);
        let err = read_public_key(&path).unwrap_err();
        assert_in_file(&err, &path, &["PUBLIC KEY", "PRIVATE KEY"]);

        // Oversized files are refused before parsing.
        let path = dir.path().join("huge");
        let mut huge = pem.as_bytes().to_vec();
        huge.resize(MAX_KEY_FILE_BYTES + 1, b'\n');
        write_file(&path, &huge, 0o600);
        let err = read_secret_key(&path).unwrap_err();
        let inner = assert_in_file(&err, &path, &["limit"]);
        assert!(matches!(inner, KeyError::TooLarge { .. }), "{inner:?}");

        // Missing files and directories are I/O errors naming the path.
        for path in [dir.path().join("absent"), dir.path().to_path_buf()] {
            let err = read_secret_key(&path).unwrap_err();
            assert!(matches!(err, KeyError::Io { .. }), "{err:?}");
            assert!(err.to_string().contains(&path.display().to_string()));
        }
    }

    #[test]
    fn pem_with_crlf_and_surrounding_whitespace_accepted() {
        let key = SecretKey::generate();
        let crlf = format!("\n  {}\n\n", key.to_pkcs8_pem().replace('\n', "\r\n"));
        assert_eq!(SecretKey::from_pkcs8_pem(&crlf).unwrap().public(), key.public());
    }

    #[test]
    fn secret_key_with_loose_permissions_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loose.key");
        write_secret_key(&path, &SecretKey::generate()).unwrap();
        for mode in [0o640, 0o604, 0o644, 0o660, 0o610] {
            fs::set_permissions(&path, Permissions::from_mode(mode)).unwrap();
            let err = read_secret_key(&path).unwrap_err();
            match &err {
                KeyError::InsecurePermissions { path: p, mode: m } => {
                    assert_eq!(p, &path);
                    assert_eq!(*m, mode);
                }
                other => panic!("expected InsecurePermissions, got {other:?}"),
            }
            let msg = err.to_string();
            assert!(msg.contains(&path.display().to_string()) && msg.contains("chmod 600"), "{msg}");
        }
        fs::set_permissions(&path, Permissions::from_mode(0o400)).unwrap();
        read_secret_key(&path).unwrap();
    }
}
