//! `airlock lock`: requirements resolved against the verified log (`airlock_client::lock`),
//! written as a pip `--require-hashes` file or a PEP 751 `pylock.toml`. Every hash comes from
//! the log this client verified, so pip and uv check each wheel against what the security team
//! approved even when the index serving it lies.

use std::fmt::Write as _;
use std::path::PathBuf;

use airlock_client::fsutil;
use airlock_client::lock::{parse_requirements, resolve, Locked};
use airlock_client::target::Target;
use airlock_proto::clock::rfc3339;
use airlock_proto::ChannelName;
use anyhow::Context as _;
use serde_json::json;

use super::{Context, ServerArgs};

/// The lock file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LockFormat {
    /// `name==version --hash=sha256:...` lines (pip and uv `--require-hashes`).
    Requirements,
    /// PEP 751 `pylock.toml` (`uv pip install -r pylock.toml`, `pip install -r pylock.toml`).
    Pylock,
}

#[derive(Debug, clap::Args)]
pub struct LockArgs {
    /// The requirements to lock: one PEP 508 requirement per line (or --comfyui).
    #[arg(required_unless_present = "comfyui", conflicts_with = "comfyui")]
    requirements: Option<PathBuf>,
    /// Lock a ComfyUI tree instead: every pack installed in DIR/custom_nodes and every wheel of
    /// its environment, by digest, as comfy.lock JSON (for airlock restore).
    #[arg(long, value_name = "DIR")]
    comfyui: Option<PathBuf>,
    /// With --comfyui: the environment's Python (default: DIR/.venv or DIR/venv, else python3).
    #[arg(long, value_name = "PATH", requires = "comfyui")]
    pub python: Option<PathBuf>,
    /// With --comfyui: also write ComfyUI-Manager's snapshot JSON of the environment here.
    #[arg(long, value_name = "FILE", requires = "comfyui")]
    pub manager_snapshot: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
    /// The pinned root the log is verified against.
    #[arg(long)]
    pub root: PathBuf,
    /// Resolve only within this channel.
    #[arg(long)]
    pub channel: Option<ChannelName>,
    /// The Python version the lock is for.
    #[arg(long, default_value = "3.12")]
    python_version: String,
    /// The platform tag the lock is for, such as manylinux_2_28_x86_64, linux_x86_64, win_amd64
    /// or macosx_14_0_arm64.
    #[arg(long, default_value = "manylinux_2_28_x86_64")]
    platform: String,
    #[arg(long, value_enum, default_value = "requirements")]
    format: LockFormat,
    /// Where the wheels are fetched from, for pylock.toml's URLs (default: --server).
    #[arg(long)]
    files_url: Option<String>,
    #[arg(short = 'o', long)]
    pub output: PathBuf,
}

pub async fn lock(args: LockArgs, context: &Context) -> anyhow::Result<()> {
    if let Some(dir) = &args.comfyui {
        return crate::comfy_lock::lock_tree(&args, dir, context).await;
    }
    let file = args.requirements.clone().unwrap_or_default();
    let text = String::from_utf8(fsutil::read_capped(&file, 1 << 20)?)
        .with_context(|| format!("{} is not UTF-8", file.display()))?;
    let requirements = parse_requirements(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let target = Target::new(&args.python_version, &args.platform).map_err(anyhow::Error::msg)?;
    let remote = context.remote(&args.server)?;
    let state = context.follow(&remote, &args.root).await?;
    let registry = state.log.registry();
    let locked = resolve(registry, &requirements, args.channel.as_ref(), &target)?;
    let scope = args.channel.as_ref().map(|c| format!(", channel {c}")).unwrap_or_default();
    let header = format!(
        "Locked by airlock from the verified log of {} at size {}, for Python {} on {}{scope}.",
        registry.root().origin(),
        state.log.size(),
        target.python_version(),
        target.platform
    );
    let files_url = args.files_url.clone().unwrap_or_else(|| args.server.server.clone());
    let index_url = match &args.channel {
        Some(channel) => format!("{}/channels/{channel}/simple/", files_url.trim_end_matches('/')),
        None => format!("{}/simple/", files_url.trim_end_matches('/')),
    };
    let body = match args.format {
        LockFormat::Requirements => airlock_client::lock::requirements_text(
            &format!(
                "{header}\npip install --require-hashes -r FILE, or uv pip install --require-hashes -r FILE"
            ),
            &locked,
        ),
        LockFormat::Pylock => pylock(&header, &locked, &target, files_url.trim_end_matches('/'), &index_url),
    };
    fsutil::write_atomic(&args.output, body.as_bytes(), 0o644)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    let summary: Vec<String> = locked.iter().map(|l| format!("{}=={}", l.name, l.version)).collect();
    context.finish(
        &json!({ "file": args.output, "locked": summary, "log_size": state.log.size() }),
        format!("wrote {} ({} packages): {}", args.output.display(), locked.len(), summary.join(" ")),
    );
    Ok(())
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn pylock(header: &str, locked: &[Locked], target: &Target, files_url: &str, index_url: &str) -> String {
    let mut out = format!("# {header}\n");
    out.push_str("lock-version = \"1.0\"\n");
    let _ = writeln!(out, "requires-python = {}", toml_string(&format!("=={}.*", target.python_version())));
    out.push_str("created-by = \"airlock\"\n");
    for package in locked {
        out.push_str("\n[[packages]]\n");
        let _ = writeln!(out, "name = {}", toml_string(package.name.as_str()));
        let _ = writeln!(out, "version = {}", toml_string(package.version.as_str()));
        let _ = writeln!(out, "index = {}", toml_string(index_url));
        if let Some(requires) = &package.requires_python {
            let _ = writeln!(out, "requires-python = {}", toml_string(requires));
        }
        for wheel in &package.wheels {
            out.push_str("\n[[packages.wheels]]\n");
            let _ = writeln!(out, "name = {}", toml_string(wheel.filename.as_str()));
            let _ = writeln!(
                out,
                "url = {}",
                toml_string(&format!(
                    "{files_url}/files/blake3/{}/{}",
                    wheel.blake3.to_hex(),
                    wheel.filename
                ))
            );
            let _ = writeln!(out, "size = {}", wheel.size);
            let _ = writeln!(out, "upload-time = {}", rfc3339(package.published_at));
            let _ = writeln!(out, "hashes = {{ sha256 = {} }}", toml_string(&wheel.sha256.to_hex()));
        }
    }
    out
}
