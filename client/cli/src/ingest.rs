//! `airlock ingest CATALOG`: the security team's intake of a node catalog (YAML, JSON or TOML;
//! one entry per node: `name`, `version`, `source_url`, `dependencies`, `offline_package`,
//! `security_level`, `compatibility`). For each entry it builds the deterministic pack from the
//! checkout or archive, scans it, checks the declared dependencies against the pack's own
//! requirements, and writes the release statement signed for approval with its report beside
//! it; given a `pip download` folder, the wheels' statements too. A summary table says what
//! passed, what needs acknowledgement and what was refused.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use airlock_client::fsutil;
use airlock_client::pack::{pack_dir, repack};
use airlock_client::publish::hash_file;
use airlock_client::scan::Severity;
use airlock_client::statements;
use airlock_proto::{Kind, Metadata};
use anyhow::Context as _;
use serde::Deserialize;
use serde_json::json;

use super::keys::write_envelope;
use super::publish::{in_force_root, load_root, sign_as_publisher};
use super::Context;

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// The catalog: .yaml/.yml, .json or .toml (a list of entries, or `nodes:` holding one).
    catalog: PathBuf,
    /// Where the packs, reports and statements go.
    #[arg(short = 'o', long)]
    output: PathBuf,
    /// A `pip download` folder holding the wheels the packs' requirements need: each project
    /// version gets a statement too (under OUTPUT/wheels).
    #[arg(long, value_name = "DIR")]
    wheels: Option<PathBuf>,
    /// Your publisher secret key (the statements are signed for approval).
    #[arg(long)]
    key: PathBuf,
    /// The root file: the key must be one of its publisher keys.
    #[arg(long)]
    root: PathBuf,
    /// A registry: scan with its policy, and upload the packs, reports and wheels.
    #[arg(long, env = "AIRLOCK_SERVER")]
    server: Option<String>,
    #[arg(long, env = "AIRLOCK_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// Largest catalog read.
const MAX_CATALOG_BYTES: u64 = 4 << 20;

/// One catalog entry.
#[derive(Debug, Deserialize)]
struct Entry {
    name: String,
    version: String,
    source_url: Option<String>,
    #[serde(default)]
    dependencies: Vec<String>,
    /// A checkout folder, a .zip or a .tar.gz, relative to the catalog.
    offline_package: Option<PathBuf>,
    security_level: Option<String>,
    compatibility: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Catalog {
    List(Vec<Entry>),
    Nodes { nodes: Vec<Entry> },
}

fn read_catalog(path: &Path) -> anyhow::Result<Vec<Entry>> {
    let bytes = fsutil::read_capped(path, MAX_CATALOG_BYTES)?;
    let text = String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", path.display()))?;
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
    let catalog: Catalog = match extension {
        "json" => serde_json::from_str(&text).map_err(anyhow::Error::from),
        "toml" => toml::from_str(&text).map_err(anyhow::Error::from),
        "yaml" | "yml" => serde_yaml_ng::from_str(&text).map_err(anyhow::Error::from),
        _ => anyhow::bail!("{}: a catalog is .yaml, .yml, .json or .toml", path.display()),
    }
    .with_context(|| {
        format!("{} is not a node catalog (entries of name, version, offline_package...)", path.display())
    })?;
    Ok(match catalog {
        Catalog::List(entries) | Catalog::Nodes { nodes: entries } => entries,
    })
}

/// What became of one entry.
struct Outcome {
    name: String,
    version: String,
    status: &'static str,
    note: String,
    statement: Option<PathBuf>,
}

pub async fn ingest(args: IngestArgs, context: &Context) -> anyhow::Result<()> {
    let entries = read_catalog(&args.catalog)?;
    let base = args.catalog.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    let root = load_root(&args.root)?;
    let remote = args
        .server
        .as_deref()
        .map(|s| airlock_client::Remote::new(s, args.token.clone(), &context.tls))
        .transpose()?;
    let in_force = in_force_root(&root, remote.as_ref()).await?;
    let acknowledge_at = match &remote {
        Some(remote) => remote.scan_policy().await?.acknowledge.and_then(|s| Severity::from_str(&s).ok()),
        None => Some(Severity::High),
    };
    let wheels = match &args.wheels {
        Some(dir) => crate::wheels::group(&fsutil::files_with_extension(dir, "whl")?)?,
        None => Vec::new(),
    };
    let mut outcomes = Vec::new();
    for entry in &entries {
        let outcome = match ingest_one(
            entry,
            base,
            &args,
            &in_force,
            remote.as_ref(),
            acknowledge_at,
            &wheels,
            context,
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(e) => Outcome {
                name: entry.name.clone(),
                version: entry.version.clone(),
                status: "refused",
                note: format!("{e:#}"),
                statement: None,
            },
        };
        outcomes.push(outcome);
    }
    let wheel_statements = sign_wheels(&wheels, &args, &in_force, remote.as_ref(), context).await?;
    let refused = outcomes.iter().filter(|o| o.status == "refused").count();
    let mut human = format!("{:<28} {:<10} {:<22} note", "node", "version", "status");
    for o in &outcomes {
        human.push_str(&format!("\n{:<28} {:<10} {:<22} {}", o.name, o.version, o.status, o.note));
    }
    if !wheel_statements.is_empty() {
        human.push_str(&format!(
            "\n{} wheel statement(s) under {}",
            wheel_statements.len(),
            args.output.join("wheels").display()
        ));
    }
    human.push_str(&format!(
        "\nnext: `airlock approve {dir}` by the other approvers, then `airlock submit {dir}`",
        dir = args.output.display()
    ));
    let rows: Vec<_> = outcomes
        .iter()
        .map(|o| json!({ "name": o.name, "version": o.version, "status": o.status, "note": o.note, "statement": o.statement }))
        .collect();
    context.finish(&json!({ "nodes": rows, "wheels": wheel_statements }), human);
    anyhow::ensure!(refused == 0, "{refused} of {} catalog entries refused", outcomes.len());
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn ingest_one(
    entry: &Entry,
    base: &Path,
    args: &IngestArgs,
    in_force: &airlock_keys::Verified<airlock_keys::TrustedRoot>,
    remote: Option<&airlock_client::Remote>,
    acknowledge_at: Option<Severity>,
    wheels: &[crate::wheels::Group],
    context: &Context,
) -> anyhow::Result<Outcome> {
    let source =
        base.join(entry.offline_package.as_deref().context("no offline_package to build the pack from")?);
    let stem = format!("{}-{}", entry.name.to_lowercase(), entry.version);
    let pack = args.output.join(format!("{stem}.zip"));
    let info = if source.is_dir() { pack_dir(&source, &pack)? } else { repack(&source, &pack)? };
    anyhow::ensure!(
        info.id.as_str() == entry.name.to_lowercase() && info.version.as_str() == entry.version,
        "the catalog says {}=={} but the pack's pyproject.toml says {}=={}",
        entry.name,
        entry.version,
        info.id,
        info.version
    );
    let mut notes = Vec::new();
    let declared = names(&entry.dependencies);
    let required = names(&info.requirements);
    if declared != required {
        notes.push(format!(
            "declared dependencies {:?} differ from the pack's requirements {:?}",
            declared, required
        ));
    }
    for requirement in &info.requirements {
        if !wheels.is_empty() && !satisfied_by(requirement, wheels) {
            notes.push(format!("no wheel in the download folder satisfies {requirement:?}"));
        }
    }
    let scanned = crate::review::scan_pack(&pack, remote, &[], context).await?;
    let digests = hash_file(&pack)?;
    if let Some(remote) = remote {
        remote.upload_blob(&pack, &digests.blake3, &airlock_client::NoProgress).await?;
        crate::review::upload_report(remote, &scanned.bytes, &scanned.digest).await?;
    }
    let needing: Vec<String> = match acknowledge_at {
        Some(severity) => scanned.report.at_least(severity).map(|f| f.reference().to_string()).collect(),
        None => Vec::new(),
    };
    let metadata = Metadata {
        summary: info.description.clone(),
        dependencies: info.requirements.clone(),
        comfyui: entry.compatibility.clone(),
        source_url: entry.source_url.clone().or(info.repository.clone()),
        license: info.license.clone(),
        scan_report: Some(scanned.digest),
        ..Metadata::default()
    };
    let mut envelope = statements::release(
        Kind::Node,
        info.id.clone(),
        info.version.clone(),
        vec![statements::file_entry(airlock_client::publish::file_name_of(&pack)?, digests)],
        metadata,
        context.clock.now(),
    )?;
    sign_as_publisher(&mut envelope, &args.key, in_force, context)?;
    let statement = args.output.join(format!("{stem}.cbor"));
    write_envelope(&statement, &envelope)?;
    fsutil::write_atomic(&crate::review::report_path(&statement), &scanned.bytes, 0o644)?;
    if let Some(level) = &entry.security_level {
        notes.push(format!("security level {level}"));
    }
    let status = if needing.is_empty() { "passed" } else { "needs acknowledgement" };
    if !needing.is_empty() {
        notes.insert(0, needing.join("; "));
    }
    Ok(Outcome {
        name: info.id.to_string(),
        version: info.version.to_string(),
        status,
        note: notes.join("; "),
        statement: Some(statement),
    })
}

/// The normalised project names of requirement lines.
fn names(lines: &[String]) -> BTreeSet<String> {
    lines
        .iter()
        .filter_map(|line| pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(line).ok())
        .map(|r| r.name.to_string())
        .collect()
}

fn satisfied_by(line: &str, wheels: &[crate::wheels::Group]) -> bool {
    let Ok(requirement) = pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(line) else {
        return false;
    };
    wheels.iter().any(|group| {
        group.name.as_str() == requirement.name.to_string()
            && airlock_client::scan::admits(&requirement, group.version.as_str())
    })
}

/// Statements for the download folder's wheels, under OUTPUT/wheels.
async fn sign_wheels(
    wheels: &[crate::wheels::Group],
    args: &IngestArgs,
    in_force: &airlock_keys::Verified<airlock_keys::TrustedRoot>,
    remote: Option<&airlock_client::Remote>,
    context: &Context,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    if wheels.is_empty() {
        return Ok(written);
    }
    let dir = args.output.join("wheels");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for group in wheels {
        let mut envelope = crate::wheels::build(group, remote, context).await?;
        sign_as_publisher(&mut envelope, &args.key, in_force, context)?;
        let path = dir.join(format!("{}-{}.cbor", group.name, group.version));
        write_envelope(&path, &envelope)?;
        written.push(path);
    }
    Ok(written)
}
