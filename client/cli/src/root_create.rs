//! `airlock root create`: the first root of a log, or with `--from` the next version of a root.
//! The next version starts from the current one's content and names its payload digest, so the
//! roots form a hash chain back to version 1.

use std::path::{Path, PathBuf};

use airlock_client::fsutil;
use airlock_client::statements::{self, RoleKeys, RootRoles, Witnesses, DEFAULT_MAX_CHECKPOINT_VALIDITY};
use airlock_keys::{read_public_key, RoleName, UnverifiedRoot};
use airlock_proto::clock::{format_duration, parse_duration};
use airlock_proto::{KeyId, KeyName, PublicKeyBytes};
use anyhow::Context as _;
use serde_json::json;

use crate::keys::{read_envelope, role_from, write_envelope};
use crate::Context;

const DAY: u64 = 86_400;

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Start from this root (version N) and write version N+1: the same origin, keys, key
    /// names, witnesses, thresholds, checkpoint validity and expiry unless changed by the flags
    /// below, and N's payload digest as the link of the hash chain.
    #[arg(long, value_name = "CURRENT_ROOT")]
    from: Option<PathBuf>,
    /// Log identity named by every checkpoint, e.g. "airlock.example.internal" (first root).
    #[arg(long, required_unless_present = "from", conflicts_with = "from")]
    origin: Option<String>,
    /// Root-role public key file (repeat); with --from, added to the role.
    #[arg(long = "root-key", value_name = "PUBFILE", required_unless_present = "from")]
    root_keys: Vec<PathBuf>,
    /// Signatures the root role needs (default 1; with --from, unchanged).
    #[arg(long)]
    root_threshold: Option<u32>,
    /// Publisher-role public key file (repeat); with --from, added to the role.
    #[arg(long = "publisher-key", value_name = "PUBFILE", required_unless_present = "from")]
    publisher_keys: Vec<PathBuf>,
    /// Signatures each release, status change and channel move needs (default 1; with --from,
    /// unchanged).
    #[arg(long)]
    publisher_threshold: Option<u32>,
    /// Log-role public key file: the server's log.pub, or log.next.pub from `airlockd key
    /// rotate` (repeat); with --from, added to the role.
    #[arg(long = "log-key", value_name = "PUBFILE", required_unless_present = "from")]
    log_keys: Vec<PathBuf>,
    /// Signatures each checkpoint needs (default 1; with --from, unchanged).
    #[arg(long)]
    log_threshold: Option<u32>,
    /// With --from: remove this key from every role, as a public key file or a key id (repeat).
    #[arg(long = "remove-key", value_name = "PUBFILE|KEY_ID", requires = "from")]
    remove_keys: Vec<String>,
    /// A witness that cosigns checkpoints: NAME=PUBLIC_KEY_FILE (repeat). With --from, the
    /// witness flags replace the current root's witness policy.
    #[arg(long = "witness", value_name = "NAME=PUBFILE")]
    witnesses: Vec<String>,
    /// How many of the witnesses must cosign a checkpoint before clients accept it (0: none).
    #[arg(long)]
    witness_quorum: Option<u32>,
    /// The witnesses, groups and quorum from a c2sp.org/tlog-policy file (`witness NAME VKEY`,
    /// `group NAME all|any|K MEMBER...`, `quorum NAME|none`), instead of --witness and
    /// --witness-quorum. Its `log` lines, if any, must name this root's log keys.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["witnesses", "witness_quorum"])]
    witness_policy: Option<PathBuf>,
    /// Days until the root expires, from now (default 365; with --from, unchanged).
    #[arg(long)]
    expires_in_days: Option<u64>,
    /// The longest validity any checkpoint may claim under this root, such as 45d: online
    /// checkpoints are short-lived, a bundle's lasts until the next delivery and never longer
    /// (default 45d; with --from, unchanged).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    max_checkpoint_validity: Option<u64>,
    #[arg(short = 'o', long)]
    output: PathBuf,
}

/// `airlock root create`.
pub fn create(args: &CreateArgs, context: &Context) -> anyhow::Result<()> {
    let (envelope, summary) = match &args.from {
        None => first(args, context)?,
        Some(current) => next(args, current, context)?,
    };
    write_envelope(&args.output, &envelope)?;
    let out = args.output.display();
    let root = UnverifiedRoot::parse(&envelope.to_bytes()?)?;
    let version = root.root().version;
    let signers = if version == 1 {
        format!("each root key holder runs `airlock root sign {out} --key KEY`")
    } else {
        format!(
            "the root key holders of version {} and of version {version} run `airlock root sign {out} --key KEY --previous {}`",
            version - 1,
            args.from.as_deref().map_or_else(String::new, |p| p.display().to_string())
        )
    };
    context.finish(
        &json!({
            "file": args.output,
            "version": version,
            "payload": envelope.payload_digest().to_string(),
            "previous": root.root().previous.map(|d| d.to_string()),
            "max_checkpoint_validity": root.root().max_checkpoint_validity,
            "expires": root.root().expires,
        }),
        format!(
            "wrote unsigned root {out} version {version} (payload {}){summary}\nnext: {signers}",
            envelope.payload_digest()
        ),
    );
    Ok(())
}

/// Version 1, from the flags alone.
fn first(args: &CreateArgs, context: &Context) -> anyhow::Result<(airlock_proto::Envelope, String)> {
    let origin = args.origin.as_deref().context("--origin is required for a first root")?;
    let roles = RootRoles {
        root: role_from(&args.root_keys, args.root_threshold.unwrap_or(1))?,
        publisher: role_from(&args.publisher_keys, args.publisher_threshold.unwrap_or(1))?,
        log: role_from(&args.log_keys, args.log_threshold.unwrap_or(1))?,
    };
    let witnesses = witnesses_from(args, origin, &roles.log)?.unwrap_or_default();
    let expires = context.clock.now().saturating_add(args.expires_in_days.unwrap_or(365).saturating_mul(DAY));
    // The keys as read for the roles (paths and keys in the same order): no file is read twice.
    let paths = args.root_keys.iter().chain(&args.publisher_keys).chain(&args.log_keys);
    let keys = roles.root.keys.iter().chain(&roles.publisher.keys).chain(&roles.log.keys);
    let names = key_names(paths.zip(keys));
    let validity = args.max_checkpoint_validity.unwrap_or(DEFAULT_MAX_CHECKPOINT_VALIDITY);
    let envelope = statements::root_named(origin, &roles, &witnesses, &names, expires, validity)?;
    Ok((envelope, String::new()))
}

/// Version N+1 from root N's content, changed as the flags say.
fn next(
    args: &CreateArgs,
    current_path: &Path,
    context: &Context,
) -> anyhow::Result<(airlock_proto::Envelope, String)> {
    let current_envelope = read_envelope(current_path)?;
    let current = UnverifiedRoot::parse(&current_envelope.to_bytes()?)
        .with_context(|| format!("{} is not a root", current_path.display()))?;
    let origin = current.root().origin.clone();
    let mut next = statements::next_root(&current_envelope)?;
    let mut changes = Vec::new();
    for spec in &args.remove_keys {
        let id = key_id_from(spec)?;
        anyhow::ensure!(
            next.remove_key(&id),
            "--remove-key {spec}: no role of root version {} holds key {id}",
            current.root().version
        );
        changes.push(format!("removed key {id}"));
    }
    let mut names = Vec::new();
    for (role, paths) in [
        (RoleName::Root, &args.root_keys),
        (RoleName::Publisher, &args.publisher_keys),
        (RoleName::Log, &args.log_keys),
    ] {
        let added = role_from(paths, 1)?;
        for (path, key) in paths.iter().zip(&added.keys) {
            next = next.add_key(role, *key);
            changes.push(format!("{} key {} added", role.as_str(), KeyId::of(key)));
            names.extend(key_names(std::iter::once((path, key))));
        }
    }
    next = next.names(&names);
    for (role, threshold) in [
        (RoleName::Root, args.root_threshold),
        (RoleName::Publisher, args.publisher_threshold),
        (RoleName::Log, args.log_threshold),
    ] {
        if let Some(threshold) = threshold {
            next = next.threshold(role, threshold);
            changes.push(format!("{} threshold {threshold}", role.as_str()));
        }
    }
    if let Some(witnesses) = witnesses_from(args, &origin, &next.roles().log)? {
        next = next.witnesses(witnesses);
        changes.push("witness policy replaced".to_owned());
    }
    if let Some(days) = args.expires_in_days {
        next = next.expires(context.clock.now().saturating_add(days.saturating_mul(DAY)));
        changes.push(format!("expires in {days} days"));
    }
    if let Some(secs) = args.max_checkpoint_validity {
        next = next.max_checkpoint_validity(secs);
        changes.push(format!("checkpoints valid at most {}", format_duration(secs)));
    }
    let envelope =
        next.build().with_context(|| format!("cannot make the root after {}", current_path.display()))?;
    let summary = if changes.is_empty() {
        String::from("; nothing changed but the version")
    } else {
        format!("; {}", changes.join(", "))
    };
    Ok((envelope, summary))
}

/// A key given as a public key file or as a key id (64 hex digits).
fn key_id_from(spec: &str) -> anyhow::Result<KeyId> {
    let path = Path::new(spec);
    if path.exists() {
        return Ok(read_public_key(path)?.id());
    }
    KeyId::from_hex(spec)
        .with_context(|| format!("--remove-key {spec:?} is neither a public key file nor a key id"))
}

/// Names for people for the root's keys: each key file's name without its extension
/// (`keys/alice.pub` is "alice"), the first one given for a key.
fn key_names<'a>(keys: impl Iterator<Item = (&'a PathBuf, &'a PublicKeyBytes)>) -> Vec<KeyName> {
    let mut names: Vec<KeyName> = Vec::new();
    for (path, key) in keys {
        let key = KeyId::of(key);
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let usable = !stem.is_empty()
            && stem.len() <= airlock_proto::statement::MAX_KEY_NAME_LEN
            && stem.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
        if usable && !names.iter().any(|n| n.key == key || n.name == stem) {
            names.push(KeyName { key, name: stem.to_owned() });
        }
    }
    names
}

/// The witness policy the flags give: a policy file, or --witness keys with a k-of-all quorum;
/// `None` when no witness flag is given.
fn witnesses_from(args: &CreateArgs, origin: &str, log: &RoleKeys) -> anyhow::Result<Option<Witnesses>> {
    if let Some(path) = &args.witness_policy {
        let bytes = fsutil::read_capped(path, airlock_keys::policy::MAX_POLICY_BYTES as u64)?;
        let text =
            String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", path.display()))?;
        let file = airlock_keys::parse_policy(&text)
            .with_context(|| format!("{} is not a policy file", path.display()))?;
        for (name, key) in &file.logs {
            anyhow::ensure!(
                name == origin && log.keys.contains(&PublicKeyBytes(key.to_bytes())),
                "{}: its log line for {name} names a key that is not one of this root's log keys under origin {origin}",
                path.display(),
            );
        }
        return Ok(Some(Witnesses { keys: file.witnesses, groups: file.groups, quorum: file.quorum }));
    }
    if args.witnesses.is_empty() && args.witness_quorum.is_none() {
        return Ok(None);
    }
    let mut keys = Vec::new();
    for spec in &args.witnesses {
        let (name, path) = spec
            .split_once('=')
            .with_context(|| format!("--witness {spec:?}: expected NAME=PUBLIC_KEY_FILE"))?;
        let key = read_public_key(Path::new(path))?;
        keys.push(airlock_proto::WitnessKey { name: name.to_owned(), key: PublicKeyBytes(key.to_bytes()) });
    }
    Ok(Some(Witnesses::k_of_all(keys, args.witness_quorum.unwrap_or(0))))
}
