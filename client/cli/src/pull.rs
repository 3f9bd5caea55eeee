//! `airlock pull` and `airlock verify`.

use std::path::PathBuf;

use airlock_client::follow;
use airlock_client::index::IndexDamaged;
use airlock_client::progress::Reporter;
use airlock_client::publish::hash_file;
use airlock_client::pull::{check_status, download_verified, output_paths, resolve, Target, VerifyError};
use airlock_client::state::StateStore;
use airlock_keys::ReleaseRecord;
use airlock_proto::{Digest, FileEntry, Kind};
use serde_json::json;

use super::{Context, ServerArgs};

#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// NAME (the newest release that is neither yanked nor revoked), NAME==VERSION (a yanked one
    /// with a warning) or blake3:<hex>. A revoked release is refused.
    target: String,
    #[command(flatten)]
    server: ServerArgs,
    /// The pinned root file; everything is verified against it.
    #[arg(long)]
    root: PathBuf,
    /// Output file (or directory, for a release of several files).
    #[arg(short = 'o', long)]
    output: PathBuf,
    /// Restrict NAME or NAME==VERSION to one kind.
    #[arg(long)]
    kind: Option<Kind>,
    /// Resolve within this channel: only releases the channel holds.
    #[arg(long)]
    channel: Option<airlock_proto::ChannelName>,
    /// UNSAFE: accept an expired checkpoint while the server declares an operator's extension
    /// (freeze protection is off until the extension ends).
    #[arg(long)]
    unsafe_accept_server_extension: bool,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    path: PathBuf,
    #[arg(long)]
    digest: Digest,
}

pub async fn pull(args: PullArgs, context: &Context) -> anyhow::Result<()> {
    let target = Target::parse(&args.target, args.kind)?;
    let store = StateStore::open(&context.state_dir, &args.root)?;
    let remote = context.remote(&args.server)?;
    let policy = if args.unsafe_accept_server_extension {
        follow::ServerExtension::UnsafeAccept
    } else {
        follow::ServerExtension::Refuse
    };
    // The registry brought no new leaf: the head and the index answer, the fold stays unread.
    let mut offered = None;
    if let Some(warm) = store.load_warm() {
        match follow::confirm(&remote, warm, &context.clock, policy).await? {
            follow::Confirmed::Warm { warm, notices, changed } => {
                warn_expired(notices);
                match resolve(&warm.index, &target, args.channel.as_ref()) {
                    Ok(resolved) => {
                        if changed {
                            store.save_warm(&warm)?;
                        }
                        return deliver(&remote, &args, context, resolved, warm.head.size()).await;
                    }
                    // The fold answers instead, and the save below writes the index again.
                    Err(e) if e.is::<IndexDamaged>() => store.forget_index()?,
                    Err(e) => return Err(e),
                }
            }
            follow::Confirmed::Fold(checkpoint) => offered = Some(checkpoint),
        }
    }
    let before = context.load(&store)?;
    let started = std::time::Instant::now();
    let (after, notices) = match offered {
        Some(offered) => {
            follow::update_offered(&remote, &before, &context.clock, &context.bars, offered, policy).await?
        }
        None => follow::update_with(&remote, &before, &context.clock, &context.bars, policy).await?,
    };
    let verified = started.elapsed();
    warn_expired(notices);
    let saving = std::time::Instant::now();
    store.save(&after)?;
    if after.log.size() > before.log.size() {
        let leaves = after.log.size() - before.log.size();
        context.say(format!(
            "verified log leaves {}..{} against the pinned root: fetched and verified in {:.1} s ({:.0} leaves/s), state saved in {:.1} s",
            before.log.size(),
            after.log.size(),
            verified.as_secs_f64(),
            leaves as f64 / verified.as_secs_f64().max(1e-6),
            saving.elapsed().as_secs_f64(),
        ));
    }
    let resolved = resolve(after.log.registry(), &target, args.channel.as_ref())?;
    deliver(&remote, &args, context, resolved, after.log.size()).await
}

fn warn_expired(notices: follow::Notices) {
    if notices.accepted_expired {
        eprintln!(
            "WARNING: accepted an EXPIRED checkpoint under the server's unsafe extension (until {}); freeze protection is off",
            notices.extension_until.unwrap_or(0)
        );
    }
}

/// Downloads and verifies the files of a resolved release, then reports them.
async fn deliver(
    remote: &airlock_client::Remote,
    args: &PullArgs,
    context: &Context,
    resolved: (ReleaseRecord, Vec<FileEntry>),
    log_size: u64,
) -> anyhow::Result<()> {
    let (record, files) = resolved;
    if let Some(warning) = check_status(&record)? {
        context.say(format!("warning: {warning}"));
    }
    let files: Vec<&FileEntry> = files.iter().collect();
    let paths = output_paths(&args.output, &files)?;
    let mut written = Vec::new();
    for (file, path) in files.iter().zip(&paths) {
        let progress = context.bars.bytes("downloading", file.size);
        download_verified(remote, file, path, progress.as_ref()).await?;
        progress.finish();
        written.push(json!({
            "path": path, "filename": file.filename, "size": file.size,
            "blake3": file.blake3.to_string(), "sha256": file.sha256.to_hex(),
        }));
    }
    let r = &record.release;
    context.finish(
        &json!({
            "kind": r.kind, "name": r.name, "version": r.version, "leaf_index": record.leaf_index,
            "log_size": log_size, "files": written,
        }),
        paths
            .iter()
            .zip(&files)
            .map(|(p, f)| {
                format!("verified {} {}=={} {} -> {}", r.kind, r.name, r.version, f.blake3, p.display())
            })
            .collect::<Vec<_>>()
            .join("\n"),
    );
    Ok(())
}

pub fn verify(args: VerifyArgs, context: &Context) -> anyhow::Result<()> {
    let digests = hash_file(&args.path)?;
    if digests.blake3 != args.digest {
        return Err(VerifyError::Blake3 {
            what: args.path.display().to_string(),
            expected: args.digest,
            actual: digests.blake3,
        }
        .into());
    }
    context.finish(
        &json!({ "path": args.path, "blake3": digests.blake3.to_string(), "sha256": digests.sha256.to_hex(), "size": digests.size, "ok": true }),
        format!("{}: OK ({})", args.path.display(), digests.blake3),
    );
    Ok(())
}
