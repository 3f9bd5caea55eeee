//! Tests that go through more than one part: OpenSSL-made key files, foreign algorithms, and
//! bad contents read from disk.

use std::fs::{self, Permissions};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::pem::{push_pem, PUBLIC_PEM_LABEL, SPKI_PREFIX};
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
fn openssl_ed25519_keys_interoperate() {
    let key = SecretKey::from_pkcs8_pem(OPENSSL_ED25519_PKCS8_PEM).unwrap();
    assert_eq!(key.public().to_pem(), OPENSSL_ED25519_SPKI_PEM);
    assert_eq!(key.to_pkcs8_pem().as_str(), OPENSSL_ED25519_PKCS8_PEM);
    assert_eq!(PublicKey::from_pem(OPENSSL_ED25519_SPKI_PEM).unwrap(), key.public());
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
