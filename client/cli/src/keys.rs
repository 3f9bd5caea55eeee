//! `airlock key`, `airlock root`, `airlock merge`, `airlock show`: keys and root ceremonies.

use std::path::{Path, PathBuf};

use airlock_client::fsutil;
use airlock_client::statements::RoleKeys;
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
    /// Write an unsigned root statement: version 1, or with --from the next version of a root.
    Create(crate::root_create::CreateArgs),
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
pub(crate) fn role_from(paths: &[PathBuf], threshold: u32) -> anyhow::Result<RoleKeys> {
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
        RootCommand::Create(args) => crate::root_create::create(&args, context),
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
