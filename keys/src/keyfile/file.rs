//! Reading and writing key files: new files only, exact modes (0600 for secret keys), size caps,
//! and errors that name the file.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use zeroize::Zeroizing;

use super::{KeyError, PublicKey, SecretKey};

/// Key files larger than this are refused without being parsed.
pub const MAX_KEY_FILE_BYTES: usize = 16 * 1024;

fn in_file(path: &Path, err: KeyError) -> KeyError {
    KeyError::InFile { path: path.to_path_buf(), error: Box::new(err) }
}

fn io_error(path: &Path, error: io::Error) -> KeyError {
    KeyError::Io { path: path.to_path_buf(), error }
}

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn file_mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
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
