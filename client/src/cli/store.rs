//! `airlock verify-store`: checks a server's data directory. Only the server touches its store,
//! so this runs `airlockd verify-store` (installed beside `airlock`, or on PATH).

use std::path::PathBuf;

use super::Context;

#[derive(Debug, clap::Args)]
pub struct VerifyStoreArgs {
    /// The data directory (the server must be stopped).
    #[arg(long)]
    data: PathBuf,
}

/// Finds `airlockd` next to this executable, else on PATH.
fn airlockd() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("airlockd")))
        .filter(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from("airlockd"))
}

pub fn verify_store(args: VerifyStoreArgs, context: &Context) -> anyhow::Result<()> {
    let program = airlockd();
    let output = std::process::Command::new(&program)
        .arg("verify-store")
        .arg("--data")
        .arg(&args.data)
        .output()
        .map_err(|e| {
            anyhow::anyhow!("cannot run {}: {e} (install airlockd beside airlock)", program.display())
        })?;
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|_| anyhow::anyhow!("{}", String::from_utf8_lossy(&output.stderr).trim().to_owned()))?;
    let problems = report["problems"].as_array().map_or(0, Vec::len);
    let human = format!(
        "{}: log of {} leaves (root {}), {} blob(s), {problems} problem(s){}",
        args.data.display(),
        report["log_size"],
        report["root_hash"].as_str().unwrap_or(""),
        report["blobs"],
        report["problems"]
            .as_array()
            .map(|list| list
                .iter()
                .filter_map(|p| p.as_str())
                .map(|p| format!("\n  {p}"))
                .collect::<String>())
            .unwrap_or_default()
    );
    context.finish(&report, human);
    anyhow::ensure!(
        output.status.success() && problems == 0,
        "the store at {} has problems",
        args.data.display()
    );
    Ok(())
}
