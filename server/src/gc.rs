//! Garbage collection: removes blobs that no logged release references and that nothing in
//! progress may still need (`airlockd gc`, on a stopped data directory or through
//! `POST /v1/admin/gc` on a running server).
//!
//! What goes: uploads that no logged release references, stored before the grace period
//! (default seven days, so the blobs of a release awaiting approval survive a slow review), and
//! bytes without a record (a commit cut short by a crash), and on a running partial mirror the
//! blobs its carry filter no longer takes (changed since they were fetched). Staging files of killed uploads,
//! syncs and imports are removed when the store opens. What never goes: a blob a logged release
//! references, revoked releases included.
//!
//! Each blob is judged and removed while no statement can be logged (`Registry::holding_appends`)
//! and under the store's removal lock (`store/removal.rs`), so neither a submit nor a commit can
//! come between the judgement and the removal. A dry run judges the same way and removes
//! nothing.

use std::time::Duration;

use airlock_proto::api::{GcRemoved, GcReport, GcStage};

use crate::config::CarryFilter;
use crate::registry::Registry;
use crate::store::blob_store::Sharing;
use crate::store::{Removable, Store};

/// Why a front end of a shared bucket that is not its collector collects nothing.
pub const NOT_THE_COLLECTOR: &str = "this front end shares its bucket with others; only the one whose \
     blob-store.toml says collector = true removes blobs (gc, purge)";

/// The grace period when none is configured.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

/// What to collect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcOptions {
    /// Judge and list, remove nothing.
    pub dry_run: bool,
    /// Unreferenced uploads younger than this are kept.
    pub grace: Duration,
}

/// Collects garbage in `store`. With `registry` (a running server), each removal waits until no
/// statement is being logged; without it the store must be closed to every other process (which
/// RocksDB's lock on the data directory ensures). Blocking.
/// `carry`: a partial mirror's filter; the blobs that no release holding them passes go too.
pub fn collect(
    store: &Store,
    registry: Option<&Registry>,
    carry: Option<&CarryFilter>,
    options: GcOptions,
) -> anyhow::Result<GcReport> {
    anyhow::ensure!(store.sharing() != Sharing::Member, "{NOT_THE_COLLECTOR}");
    let cutoff = store.now().saturating_sub(options.grace.as_secs());
    let mut report = GcReport {
        dry_run: options.dry_run,
        grace_secs: options.grace.as_secs(),
        removed: Vec::new(),
        bytes_freed: 0,
        kept_in_grace: 0,
        stages: Vec::new(),
    };
    for digest in store.blob_candidates()? {
        let judge = |uncarried: bool| store.collect_blob(&digest, cutoff, uncarried, !options.dry_run);
        let judged = match registry {
            Some(registry) => registry.holding_appends(|state| {
                let uncarried = carry.is_some_and(|carry| {
                    let mut holders = state.holders(&digest).peekable();
                    holders.peek().is_some() && holders.all(|r| !carry.carries(&r.release, state))
                });
                judge(uncarried)
            }),
            None => judge(false),
        }?;
        match judged {
            Removable::Keep => {}
            Removable::InGrace => report.kept_in_grace += 1,
            Removable::Yes { bytes, reason } => {
                if !options.dry_run {
                    tracing::info!(target: crate::audit::TARGET, %digest, bytes, ?reason, "blob removed by gc");
                }
                report.bytes_freed += bytes;
                report.removed.push(GcRemoved { digest, bytes, reason });
            }
        }
    }
    let stage_cutoff = std::time::UNIX_EPOCH + std::time::Duration::from_secs(cutoff);
    for (name, bytes) in store.collect_stages(stage_cutoff, !options.dry_run)? {
        if !options.dry_run {
            tracing::info!(target: crate::audit::TARGET, name, bytes, "temporary object removed by gc");
        }
        report.bytes_freed += bytes;
        report.stages.push(GcStage { name, bytes });
    }
    Ok(report)
}
