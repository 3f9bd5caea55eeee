//! `airlock doctor --comfyui DIR`: checks an installed ComfyUI tree against the verified log.
//! Each pack folder's files are compared with the pack the log names (downloaded from the
//! mirror and verified by digest, never trusted from the folder): added, changed and missing
//! files; yanked and revoked packs and wheels; requirements missing or not met; folders and
//! wheels that did not come from the mirror. `--repair` re-installs damaged packs from the
//! mirror and installs missing requirements. Exit 3 when anything is wrong.

use airlock_client::comfy::extract;
use airlock_client::comfy::tree::{self, Marker};
use airlock_keys::ReleaseStatus;
use serde::Serialize;
use serde_json::json;

use super::comfy::{self, Site, SiteArgs};
use super::Context;

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    site: SiteArgs,
    /// Re-install damaged packs from the mirror, and install missing requirements.
    #[arg(long)]
    repair: bool,
}

/// What doctor found about one pack folder.
#[derive(Debug, Default, Serialize)]
struct PackReport {
    folder: String,
    id: Option<String>,
    version: Option<String>,
    blake3: Option<String>,
    /// `ok`, `damaged`, `yanked`, `revoked`, `unknown` (not a logged pack), `unmanaged` (not
    /// installed by airlock).
    state: String,
    added: Vec<String>,
    changed: Vec<String>,
    missing: Vec<String>,
    problems: Vec<String>,
    repaired: bool,
}

/// What doctor found about one wheel.
#[derive(Debug, Serialize)]
struct WheelReport {
    name: String,
    version: String,
    problem: String,
}

/// Exit status for a tree with problems.
#[derive(Debug)]
pub struct Unhealthy(pub usize);

impl std::fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "doctor found {} problem(s) in the ComfyUI tree", self.0)
    }
}

impl std::error::Error for Unhealthy {}

pub async fn doctor(args: DoctorArgs, context: &Context) -> anyhow::Result<()> {
    let site = Site::open(&args.site, context).await?;
    let state = site.registry();
    let target = site.env.target()?;
    let scratch = tempfile::tempdir()?;
    let mut packs = Vec::new();
    // The requirement lines of each pack (a revoked pack's are not its site's to keep: they are
    // neither checked nor repaired).
    let mut requirements: Vec<(String, Vec<String>)> = Vec::new();
    for entry in site.tree.entries()? {
        let mut report = PackReport { folder: entry.name.clone(), ..PackReport::default() };
        let Some(marker) = entry.marker.clone() else {
            if entry.path.is_dir() || entry.path.extension().is_some_and(|e| e == "py") {
                report.state = "unmanaged".to_owned();
                report.problems.push(entry.marker_error.clone().unwrap_or_else(|| {
                    "not installed by airlock: it did not come from the mirror".to_owned()
                }));
                packs.push(report);
            }
            continue;
        };
        report.id = Some(marker.id.clone());
        report.version = Some(marker.version.clone());
        report.blake3 = Some(marker.blake3.clone());
        let record = match comfy::release_of(state, &marker) {
            Ok(record) => record,
            Err(e) => {
                report.state = "unknown".to_owned();
                report.problems.push(format!("{e:#}"));
                packs.push(report);
                continue;
            }
        };
        if !comfy::is_revoked(record) {
            requirements.push((marker.id.clone(), record.release.metadata.dependencies.clone()));
        }
        let file = comfy::pack_file(record)?;
        let zip = site.fetch_pack(file, scratch.path(), context).await?;
        let files = extract::pack_files(&zip)?;
        let (added, changed, missing) = tree::compare(&entry.path, &files)?;
        let damaged = !(added.is_empty() && changed.is_empty() && missing.is_empty());
        report.state = match &record.status {
            ReleaseStatus::Revoked { reason } => {
                report.problems.push(format!("revoked: {reason}"));
                "revoked"
            }
            _ if damaged => "damaged",
            ReleaseStatus::Yanked { reason } => {
                report.problems.push(format!("yanked: {reason}"));
                "yanked"
            }
            ReleaseStatus::Active => "ok",
        }
        .to_owned();
        if damaged {
            report.problems.push(format!(
                "{} added, {} changed, {} missing file(s) since install",
                added.len(),
                changed.len(),
                missing.len()
            ));
        }
        (report.added, report.changed, report.missing) = (added, changed, missing);
        if damaged && args.repair && !comfy::is_revoked(record) {
            site.tree.stage(&zip, &Marker::of(record, file))?.swap()?;
            report.repaired = true;
        }
        packs.push(report);
    }
    // Wheels: each installed distribution against the log.
    let mut wheels = Vec::new();
    for (name, version) in site.env.packages() {
        let problem = match comfy::installed_release(state, name, version).map(|r| &r.status) {
            None => Some("not in the log: it did not come from the mirror".to_owned()),
            Some(ReleaseStatus::Revoked { reason }) => Some(format!("revoked: {reason}")),
            Some(ReleaseStatus::Yanked { reason }) => Some(format!("yanked: {reason}")),
            Some(ReleaseStatus::Active) => None,
        };
        if let Some(problem) = problem {
            wheels.push(WheelReport { name: name.to_string(), version: version.clone(), problem });
        }
    }
    // Requirements of the packs, against what is installed.
    let mut unmet = Vec::new();
    for (pack, lines) in &requirements {
        for line in lines {
            if let Some(problem) =
                comfy::requirement_problem(line, &target, |name| site.env.installed.get(name).cloned())
            {
                unmet.push(json!({ "pack": pack, "requirement": line, "problem": problem }));
            }
        }
    }
    let mut repaired_requirements = false;
    if args.repair && !unmet.is_empty() {
        let locked = comfy::resolve_packs(state, &requirements, site.channel.as_ref(), &target)?;
        site.install_wheels(&locked)?;
        repaired_requirements = true;
    }
    let problems = packs.iter().filter(|p| p.state != "ok" && !p.repaired).count()
        + wheels.len()
        + if repaired_requirements { 0 } else { unmet.len() };
    let report = json!({
        "comfyui": site.tree.root(), "log_size": site.log.log.size(), "ok": problems == 0,
        "packs": packs, "wheels": wheels, "requirements": unmet, "repaired_requirements": repaired_requirements,
    });
    let mut human = Vec::new();
    for pack in &packs {
        let name = match (&pack.id, &pack.version) {
            (Some(id), Some(version)) => format!("{id}=={version}"),
            _ => pack.folder.clone(),
        };
        human.push(format!("{:<9} {name}{}", pack.state, if pack.repaired { " (repaired)" } else { "" }));
        for (what, files) in [("added", &pack.added), ("changed", &pack.changed), ("missing", &pack.missing)]
        {
            for file in files {
                human.push(format!("          {what}: {file}"));
            }
        }
        for problem in &pack.problems {
            human.push(format!("          {problem}"));
        }
    }
    for wheel in &wheels {
        human.push(format!("wheel     {}=={}: {}", wheel.name, wheel.version, wheel.problem));
    }
    for item in &unmet {
        human.push(format!("requires  {} {}: {}", item["pack"], item["requirement"], item["problem"]));
    }
    human.push(if problems == 0 { "no problems found".to_owned() } else { format!("{problems} problem(s)") });
    context.finish(&report, human.join("\n"));
    if problems > 0 {
        return Err(Unhealthy(problems).into());
    }
    Ok(())
}
