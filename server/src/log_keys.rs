//! The primary's log keys in its data directory: `log.key` signs checkpoints; `airlockd key
//! rotate` writes the next one beside it (`log.next.key`, `log.next.pub`). The server switches
//! to the next key at the root leaf whose log role lists it (and not the current one), then
//! moves it into `log.key`, replacing (and so destroying) the retired key. A crash between the
//! append and the move is repaired on start: the root in force decides which key signs.

use std::fs::File;
use std::path::{Path, PathBuf};

use airlock_keys::{read_secret_key, write_public_key, write_secret_key, PublicKey, SecretKey};
use anyhow::Context;

/// The log's secret key (mode 0600).
pub const LOG_KEY_FILE: &str = "log.key";
/// The log's public key, to put in the root's log role.
pub const LOG_PUB_FILE: &str = "log.pub";
/// The next log key, written by `airlockd key rotate`.
pub const LOG_NEXT_KEY_FILE: &str = "log.next.key";
/// The next log key's public half, for `airlock root create --from ... --log-key`.
pub const LOG_NEXT_PUB_FILE: &str = "log.next.pub";

/// The key that signs checkpoints, and where the next one waits.
#[derive(Debug)]
pub struct LogKeys {
    dir: PathBuf,
    current: SecretKey,
}

impl LogKeys {
    /// Loads `log.key` from the data directory.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let current = read_secret_key(&dir.join(LOG_KEY_FILE)).with_context(|| {
            format!("cannot load the log key; run `airlockd init --data {}` first", dir.display())
        })?;
        Ok(Self { dir: dir.to_path_buf(), current })
    }

    /// The key that signs checkpoints now.
    pub fn current(&self) -> &SecretKey {
        &self.current
    }

    /// The next key, if `airlockd key rotate` wrote one.
    pub fn next(&self) -> anyhow::Result<Option<SecretKey>> {
        let path = self.dir.join(LOG_NEXT_KEY_FILE);
        if !path.exists() {
            return Ok(None);
        }
        Ok(Some(
            read_secret_key(&path)
                .with_context(|| format!("cannot load the next log key {}", path.display()))?,
        ))
    }

    /// The key a root's log role authorises (`in_log_role` says whether it lists a key): the
    /// current one, or else the next one (which becomes current: see [`LogKeys::promote`]).
    /// `None` when it authorises neither.
    pub fn for_root(&self, in_log_role: impl Fn(&PublicKey) -> bool) -> anyhow::Result<Option<KeyChoice>> {
        if in_log_role(&self.current.public()) {
            return Ok(Some(KeyChoice::Current));
        }
        Ok(self
            .next()?
            .filter(|next| in_log_role(&next.public()))
            .map(|next| KeyChoice::Next(Box::new(next))))
    }

    /// Makes `next` the current key: `log.next.key` replaces `log.key` (the retired key is gone
    /// from disk), `log.next.pub` replaces `log.pub`, and the directory is synced.
    pub fn promote(&mut self, next: SecretKey) -> anyhow::Result<()> {
        let rename = |from: &str, to: &str| {
            std::fs::rename(self.dir.join(from), self.dir.join(to))
                .with_context(|| format!("cannot move {from} to {to} in {}", self.dir.display()))
        };
        rename(LOG_NEXT_KEY_FILE, LOG_KEY_FILE)?;
        if self.dir.join(LOG_NEXT_PUB_FILE).exists() {
            rename(LOG_NEXT_PUB_FILE, LOG_PUB_FILE)?;
        }
        File::open(&self.dir)?.sync_all()?;
        tracing::info!(retired = %self.current.public().id(), current = %next.public().id(), "log key rotated");
        self.current = next;
        Ok(())
    }

    /// `airlockd key rotate`: writes the next key pair beside the current one. Refuses when one
    /// is already waiting (it would be lost).
    pub fn rotate(dir: &Path) -> anyhow::Result<PublicKey> {
        anyhow::ensure!(
            dir.join(LOG_KEY_FILE).exists(),
            "{} holds no log key; run `airlockd init --data {}` first",
            dir.display(),
            dir.display()
        );
        let path = dir.join(LOG_NEXT_KEY_FILE);
        anyhow::ensure!(
            !path.exists(),
            "a next log key is already waiting in {} (its public key is {}); put it in the next root",
            path.display(),
            dir.join(LOG_NEXT_PUB_FILE).display()
        );
        let key = SecretKey::generate();
        write_secret_key(&path, &key)?;
        let public = key.public();
        let pub_path = dir.join(LOG_NEXT_PUB_FILE);
        if pub_path.exists() {
            std::fs::remove_file(&pub_path)?;
        }
        write_public_key(&pub_path, &public)?;
        Ok(public)
    }
}

/// Which key signs the checkpoint after a root leaf.
#[derive(Debug)]
pub enum KeyChoice {
    /// The current key: the root keeps it.
    Current,
    /// The next key: the root lists it in place of the current one.
    Next(Box<SecretKey>),
}
