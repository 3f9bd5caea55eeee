//! `airlock key`, `airlock root`, `airlock merge`, `airlock show`: keys and root ceremonies.

use std::path::{Path, PathBuf};

use airlock_client::fsutil;
use airlock_client::statements::{self, RoleKeys, RootRoles};
use airlock_keys::{
    read_public_key, read_secret_key, sign_envelope, write_public_key, write_secret_key, RoleName, SecretKey,
    UnverifiedRoot,
};
use airlock_proto::{Envelope, KeyId, PublicKeyBytes, Statement};
use anyhow::Context as _;
use clap::Subcommand;
use serde_json::json;

use super::Context;

/// Largest statement file accepted.
pub const MAX_STATEMENT_FILE: u64 = 1 << 20;

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate an ed25519 key pair: NAME.key (PKCS#8 PEM, mode 0600) and NAME.pub.
    Generate {
        /// Base name of the files.
        name: String,
        /// Directory to write them in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Print the signed-note verifier key (`name+id+key`) of a public key under a name: the log's
    /// (name = the root's origin, key = the server's log.pub), for `airlockd witness --log`.
    Verifier {
        /// The key name: the log's origin, or a witness's name.
        name: String,
        /// The public key file.
        public_key: PathBuf,
        /// Print the witness (cosignature, type 0x04) verifier key, the form policy files name
        /// witnesses with.
        #[arg(long)]
        witness: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RootCommand {
    /// Write an unsigned root statement.
    Create(CreateArgs),
    /// Add a signature to a root statement (in place unless -o is given).
    Sign {
        file: PathBuf,
        #[arg(long)]
        key: PathBuf,
        /// The previous root, when signing version N+1 with an old root key.
        #[arg(long)]
        previous: Option<PathBuf>,
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
    /// Print a root's log keys and witness policy as a c2sp.org/tlog-policy file.
    Policy { file: PathBuf },
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Log identity named by every checkpoint, e.g. "airlock.example.internal".
    #[arg(long)]
    origin: String,
    /// Root-role public key file (repeat).
    #[arg(long = "root-key", required = true)]
    root_keys: Vec<PathBuf>,
    #[arg(long, default_value_t = 1)]
    root_threshold: u32,
    /// Publisher-role public key file (repeat).
    #[arg(long = "publisher-key", required = true)]
    publisher_keys: Vec<PathBuf>,
    #[arg(long, default_value_t = 1)]
    publisher_threshold: u32,
    /// Log-role public key file: the server's log.pub (repeat for several servers' keys).
    #[arg(long = "log-key", required = true)]
    log_keys: Vec<PathBuf>,
    #[arg(long, default_value_t = 1)]
    log_threshold: u32,
    /// A witness that cosigns checkpoints: NAME=PUBLIC_KEY_FILE (repeat).
    #[arg(long = "witness", value_name = "NAME=PUBFILE")]
    witnesses: Vec<String>,
    /// How many of the witnesses must cosign a checkpoint before clients accept it (0: none).
    #[arg(long, default_value_t = 0)]
    witness_quorum: u32,
    /// The witnesses, groups and quorum from a c2sp.org/tlog-policy file (`witness NAME VKEY`,
    /// `group NAME all|any|K MEMBER...`, `quorum NAME|none`), instead of --witness and
    /// --witness-quorum. Its `log` lines, if any, must name log keys given with --log-key.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["witnesses", "witness_quorum"])]
    witness_policy: Option<PathBuf>,
    /// Days until the root expires.
    #[arg(long, default_value_t = 365)]
    expires_in_days: u64,
    #[arg(long, default_value_t = 1)]
    version: u64,
    #[arg(short = 'o', long)]
    output: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// Statement files carrying signatures over the same payload.
    #[arg(required = true, num_args = 2..)]
    files: Vec<PathBuf>,
    #[arg(short = 'o', long)]
    output: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    file: PathBuf,
}

/// Reads a statement or root file.
pub fn read_envelope(path: &Path) -> anyhow::Result<Envelope> {
    let bytes = fsutil::read_capped(path, MAX_STATEMENT_FILE)?;
    Envelope::from_bytes(&bytes).with_context(|| format!("{} is not a statement file", path.display()))
}

/// Writes a statement or root file atomically.
pub fn write_envelope(path: &Path, envelope: &Envelope) -> anyhow::Result<()> {
    fsutil::write_atomic(path, &envelope.to_bytes()?, 0o644)
        .with_context(|| format!("cannot write {}", path.display()))
}

pub fn key(command: KeyCommand, context: &Context) -> anyhow::Result<()> {
    let (name, dir) = match command {
        KeyCommand::Generate { name, dir } => (name, dir),
        KeyCommand::Verifier { name, public_key, witness } => {
            anyhow::ensure!(
                airlock_proto::note::is_key_name_valid(&name),
                "{name:?} is not a valid key name"
            );
            let key = read_public_key(&public_key)?;
            let vkey = if witness {
                airlock_keys::witness_verifier_key(&name, &key)
            } else {
                airlock_keys::verifier_key(&name, &key)
            };
            context.finish(&json!({ "verifier_key": vkey }), &vkey);
            return Ok(());
        }
    };
    anyhow::ensure!(
        !name.is_empty() && !name.contains('/') && !name.starts_with('.'),
        "key name {name:?} must be a plain file name"
    );
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let secret_path = dir.join(format!("{name}.key"));
    let public_path = dir.join(format!("{name}.pub"));
    let key = SecretKey::generate();
    write_secret_key(&secret_path, &key)?;
    write_public_key(&public_path, &key.public())?;
    let id = key.public().id();
    context.finish(
        &json!({ "key_id": id.to_string(), "secret_key": secret_path, "public_key": public_path }),
        format!(
            "key id {id}\nsecret key: {} (mode 0600)\npublic key: {}",
            secret_path.display(),
            public_path.display()
        ),
    );
    Ok(())
}

/// Reads the public key files of one role.
fn role_from(paths: &[PathBuf], threshold: u32) -> anyhow::Result<RoleKeys> {
    let mut ids: Vec<KeyId> = Vec::new();
    let mut keys = Vec::new();
    for path in paths {
        let key = read_public_key(path)?;
        anyhow::ensure!(!ids.contains(&key.id()), "{} is given twice for the same role", path.display());
        ids.push(key.id());
        keys.push(PublicKeyBytes(key.to_bytes()));
    }
    Ok(RoleKeys { keys, threshold })
}

pub fn root(command: RootCommand, context: &Context) -> anyhow::Result<()> {
    match command {
        RootCommand::Create(args) => {
            let roles = RootRoles {
                root: role_from(&args.root_keys, args.root_threshold)?,
                publisher: role_from(&args.publisher_keys, args.publisher_threshold)?,
                log: role_from(&args.log_keys, args.log_threshold)?,
            };
            let witnesses = witnesses_from(&args, &roles.log)?;
            let expires = context.clock.now().saturating_add(args.expires_in_days.saturating_mul(86_400));
            // The keys as read for the roles (paths and keys in the same order): no file is read twice.
            let paths = args.root_keys.iter().chain(&args.publisher_keys).chain(&args.log_keys);
            let keys = roles.root.keys.iter().chain(&roles.publisher.keys).chain(&roles.log.keys);
            let names = key_names(paths.zip(keys));
            let envelope =
                statements::root_named(&args.origin, args.version, &roles, &witnesses, &names, expires)?;
            write_envelope(&args.output, &envelope)?;
            context.finish(
                &json!({ "file": args.output, "payload": envelope.payload_digest().to_string() }),
                format!(
                    "wrote unsigned root {} (payload {})\nnext: each root key holder runs `airlock root sign {} --key KEY`",
                    args.output.display(),
                    envelope.payload_digest(),
                    args.output.display()
                ),
            );
            Ok(())
        }
        RootCommand::Policy { file } => {
            let bytes = read_envelope(&file)?.to_bytes()?;
            let root = UnverifiedRoot::parse(&bytes)?;
            let text = airlock_keys::format_policy(root.root());
            context.finish(&json!({ "policy": text }), text.trim_end());
            Ok(())
        }
        RootCommand::Sign { file, key, previous, output } => {
            let mut envelope = read_envelope(&file)?;
            let bytes = envelope.to_bytes()?;
            let candidate = UnverifiedRoot::parse(&bytes)?;
            let secret = read_secret_key(&key)?;
            let public = secret.public();
            let authorised = candidate.authorises(&public, RoleName::Root)
                || match &previous {
                    Some(path) => UnverifiedRoot::parse(&fsutil::read_capped(path, MAX_STATEMENT_FILE)?)?
                        .authorises(&public, RoleName::Root),
                    None => false,
                };
            anyhow::ensure!(
                authorised,
                "key {} is not a root key of this root{}; refusing to sign",
                public.id(),
                if previous.is_some() { " or of the previous root" } else { "" }
            );
            context.say(format!(
                "signing {} version {} payload {} with key {}",
                envelope.payload_type,
                candidate.root().version,
                envelope.payload_digest(),
                public.id()
            ));
            sign_envelope(&mut envelope, &secret);
            let out = output.unwrap_or(file);
            write_envelope(&out, &envelope)?;
            context.finish(
                &json!({ "file": out, "signatures": envelope.signatures.len() }),
                format!("{} now carries {} signature(s)", out.display(), envelope.signatures.len()),
            );
            Ok(())
        }
    }
}

/// Names for people for the root's keys: each key file's name without its extension
/// (`keys/alice.pub` is "alice"), the first one given for a key.
fn key_names<'a>(
    keys: impl Iterator<Item = (&'a PathBuf, &'a PublicKeyBytes)>,
) -> Vec<airlock_proto::KeyName> {
    let mut names: Vec<airlock_proto::KeyName> = Vec::new();
    for (path, key) in keys {
        let key = KeyId::of(key);
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let usable = !stem.is_empty()
            && stem.len() <= airlock_proto::statement::MAX_KEY_NAME_LEN
            && stem.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
        if usable && !names.iter().any(|n| n.key == key || n.name == stem) {
            names.push(airlock_proto::KeyName { key, name: stem.to_owned() });
        }
    }
    names
}

/// The witness policy `root create` was given: a policy file, or --witness keys with a k-of-all
/// quorum.
fn witnesses_from(args: &CreateArgs, log: &RoleKeys) -> anyhow::Result<statements::Witnesses> {
    if let Some(path) = &args.witness_policy {
        let bytes = fsutil::read_capped(path, airlock_keys::policy::MAX_POLICY_BYTES as u64)?;
        let text =
            String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", path.display()))?;
        let file = airlock_keys::parse_policy(&text)
            .with_context(|| format!("{} is not a policy file", path.display()))?;
        for (name, key) in &file.logs {
            anyhow::ensure!(
                name == &args.origin && log.keys.contains(&PublicKeyBytes(key.to_bytes())),
                "{}: its log line for {name} names a key that is not one of this root's --log-key keys under origin {}",
                path.display(),
                args.origin
            );
        }
        return Ok(statements::Witnesses { keys: file.witnesses, groups: file.groups, quorum: file.quorum });
    }
    let mut keys = Vec::new();
    for spec in &args.witnesses {
        let (name, path) = spec
            .split_once('=')
            .with_context(|| format!("--witness {spec:?}: expected NAME=PUBLIC_KEY_FILE"))?;
        let key = read_public_key(std::path::Path::new(path))?;
        keys.push(airlock_proto::WitnessKey { name: name.to_owned(), key: PublicKeyBytes(key.to_bytes()) });
    }
    Ok(statements::Witnesses::k_of_all(keys, args.witness_quorum))
}

pub fn merge(args: MergeArgs, context: &Context) -> anyhow::Result<()> {
    let mut merged = read_envelope(&args.files[0])?;
    for path in &args.files[1..] {
        let other = read_envelope(path)?;
        merged.merge(&other).with_context(|| format!("cannot merge {}", path.display()))?;
    }
    write_envelope(&args.output, &merged)?;
    context.finish(
        &json!({ "file": args.output, "signatures": merged.signatures.len(), "payload": merged.payload_digest().to_string() }),
        format!("wrote {} with {} signature(s) over payload {}", args.output.display(), merged.signatures.len(), merged.payload_digest()),
    );
    Ok(())
}

pub fn show(args: ShowArgs, context: &Context) -> anyhow::Result<()> {
    let envelope = read_envelope(&args.file)?;
    let statement = Statement::decode(&envelope.payload_type, &envelope.payload)?;
    let signers: Vec<String> = envelope.signatures.iter().map(|s| s.key_id.to_string()).collect();
    let content = format!("{statement:#?}");
    context.finish(
        &json!({
            "payload_type": envelope.payload_type,
            "payload": envelope.payload_digest().to_string(),
            "signatures": signers,
        }),
        format!(
            "type: {}\npayload: {}\nsignatures claimed by: {}\n{content}",
            envelope.payload_type,
            envelope.payload_digest(),
            if signers.is_empty() { "(none)".to_owned() } else { signers.join(", ") }
        ),
    );
    Ok(())
}
