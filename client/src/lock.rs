//! Locking requirements against the verified log: a complete resolver (PubGrub, with
//! backtracking) over the wheel releases the log holds, optionally within a channel, for a
//! target Python version and platform. Revoked releases are never candidates; a yanked one only
//! when some requirement on its project pins it exactly (PEP 592); pre-releases only when some
//! requirement on the project names one or no final release matches. The hashes of the result
//! come from the verified log, never from a server's pages.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use airlock_keys::{RegistryState, ReleaseRecord, ReleaseStatus};
use airlock_proto::{ChannelName, FileEntry, Kind, PackageName};
use pep440_rs::{Operator, Version, VersionSpecifiers};
use pep508_rs::{ExtraName, Requirement, VerbatimUrl, VersionOrUrl};
use pubgrub::{DefaultStringReporter, OfflineDependencyProvider, PubGrubError, Ranges, Reporter};

use crate::target::Target;
use crate::wheel::WheelName;

/// The root of the resolution (not a valid project name, so it cannot clash with one).
const ROOT: &str = "<requirements>";

/// One locked project: the version chosen and the wheels of it that install on the target.
#[derive(Debug, Clone)]
pub struct Locked {
    pub name: PackageName,
    pub version: airlock_proto::Version,
    pub wheels: Vec<FileEntry>,
    pub requires_python: Option<String>,
    pub published_at: u64,
}

/// Parses a requirements file: one PEP 508 requirement per line, `#` comments, `\` line
/// continuations. Options (`-r`, `--index-url`, ...) and URLs are refused: a lock is made from
/// the log alone.
pub fn parse_requirements(text: &str) -> Result<Vec<Requirement>, String> {
    let joined = text.replace("\r\n", "\n").replace("\\\n", " ");
    let mut out = Vec::new();
    for (number, line) in joined.lines().enumerate() {
        // A comment starts at `#` after whitespace, or at the start of the line (pip's rule).
        let line =
            line.split([' ', '\t']).take_while(|word| !word.starts_with('#')).collect::<Vec<_>>().join(" ");
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('-') {
            return Err(format!(
                "line {}: {line:?}: options are not supported in a requirements file airlock locks",
                number + 1
            ));
        }
        let requirement =
            Requirement::<VerbatimUrl>::from_str(line).map_err(|e| format!("line {}: {e}", number + 1))?;
        if matches!(requirement.version_or_url, Some(VersionOrUrl::Url(_))) {
            return Err(format!(
                "line {}: {line:?}: a URL requirement cannot be locked against the log",
                number + 1
            ));
        }
        out.push(requirement);
    }
    Ok(out)
}

/// A release the resolver may choose.
struct Candidate<'a> {
    version: Version,
    record: &'a ReleaseRecord,
    wheels: Vec<&'a FileEntry>,
    yanked: bool,
}

/// The releases of `name` offered (not revoked, in `channel` if given) whose Requires-Python
/// admits the target and that hold at least one wheel installing there.
fn candidates<'a>(
    state: &'a RegistryState,
    name: &PackageName,
    channel: Option<&ChannelName>,
    target: &Target,
) -> Vec<Candidate<'a>> {
    state
        .releases_of(Kind::Wheel, name)
        .filter(|r| !matches!(r.status, ReleaseStatus::Revoked { .. }))
        .filter(|r| {
            channel.is_none_or(|c| state.channel_holds(c, Kind::Wheel, &r.release.name, &r.release.version))
        })
        .filter(|r| target.admits(r.release.metadata.requires_python.as_deref()))
        .filter_map(|record| {
            let version = Version::from_str(record.release.version.as_str()).ok()?;
            let wheels: Vec<&FileEntry> = crate::wheel::wheels_of(&record.release)
                .filter(|f| WheelName::parse(f.filename.as_str()).is_ok_and(|w| target.installs(&w)))
                .collect();
            (!wheels.is_empty()).then_some(Candidate {
                version,
                record,
                wheels,
                yanked: matches!(record.status, ReleaseStatus::Yanked { .. }),
            })
        })
        .collect()
}

/// What every requirement on one project says together (as pip and uv decide it): which yanked
/// versions some requirement pins exactly, and whether pre-releases are in play.
#[derive(Default)]
struct Policy {
    pinned: BTreeSet<Version>,
    asks_pre: bool,
}

impl Policy {
    fn note(&mut self, specifiers: Option<&VersionSpecifiers>) {
        let Some(specifiers) = specifiers else { return };
        if !specifiers.is_empty()
            && specifiers.iter().all(|s| matches!(s.operator(), Operator::Equal | Operator::ExactEqual))
        {
            self.pinned.extend(specifiers.iter().map(|s| s.version().clone()));
        }
        self.asks_pre |= specifiers.iter().any(|s| s.version().any_prerelease());
    }
}

/// The versions among `candidates` a requirement allows: its specifiers; a yanked version only
/// when some requirement on the project pins it exactly; pre-releases only when some
/// requirement names one or no final release matches.
fn allowed(
    candidates: &[Candidate],
    specifiers: Option<&VersionSpecifiers>,
    policy: &Policy,
) -> Ranges<Version> {
    let matches = |c: &&Candidate| {
        specifiers.is_none_or(|s| s.contains(&c.version)) && (!c.yanked || policy.pinned.contains(&c.version))
    };
    let finals: Vec<&Candidate> =
        candidates.iter().filter(matches).filter(|c| !c.version.any_prerelease()).collect();
    let chosen: Vec<&Candidate> = if policy.asks_pre || finals.is_empty() {
        candidates.iter().filter(matches).collect()
    } else {
        finals
    };
    chosen.into_iter().fold(Ranges::empty(), |all, c| all.union(&Ranges::singleton(c.version.clone())))
}

/// One dependency edge, its range decided once every requirement is known.
enum Edge {
    /// A requirement on a project (or one of its extras' virtual packages).
    Spec { id: String, name: PackageName, specifiers: Option<VersionSpecifiers> },
    /// An extra's virtual package needs its own project at exactly its version.
    Exact { id: String, version: Version },
}

fn package_id(name: &str, extra: Option<&ExtraName>) -> String {
    extra.map_or_else(|| name.to_owned(), |extra| format!("{name}[{extra}]"))
}

/// A requirements file pinning each of `locked` with the SHA-256 of every wheel the log holds
/// for the target (`pip install --require-hashes -r`, `uv pip install --require-hashes -r`),
/// after `header` as comment lines.
pub fn requirements_text(header: &str, locked: &[Locked]) -> String {
    let mut out: String = header.lines().map(|line| format!("# {line}\n")).collect();
    for package in locked {
        out.push_str(&format!("{}=={}", package.name, package.version));
        for wheel in &package.wheels {
            out.push_str(&format!(" \\\n    --hash=sha256:{}", wheel.sha256.to_hex()));
        }
        out.push('\n');
    }
    out
}

/// Why a lock could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{0}")]
    Requirement(String),
    #[error("the requirements cannot be satisfied from the verified log:\n{explanation}\nwhat the log offers{scope}:\n{offers}")]
    Unsatisfiable { explanation: String, scope: String, offers: String },
}

/// Resolves `requirements` against the log for `target`, within `channel` if given.
pub fn resolve<'a>(
    state: &'a RegistryState,
    requirements: &[Requirement],
    channel: Option<&ChannelName>,
    target: &Target,
) -> Result<Vec<Locked>, LockError> {
    let mut provider = OfflineDependencyProvider::<String, Ranges<Version>>::new();
    let mut cache: BTreeMap<PackageName, Vec<Candidate<'a>>> = BTreeMap::new();
    let mut queue: Vec<(PackageName, Option<ExtraName>)> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut policies: BTreeMap<PackageName, Policy> = BTreeMap::new();
    // Every (package, version) with its edges; ranges follow once all requirements are known.
    let mut graph: Vec<(String, Version, Vec<Edge>)> = Vec::new();
    let mut edges_of = |requirement: &Requirement,
                        cache: &mut BTreeMap<PackageName, Vec<Candidate<'a>>>,
                        queue: &mut Vec<(PackageName, Option<ExtraName>)>|
     -> Result<Vec<Edge>, LockError> {
        let name = PackageName::normalize(Kind::Wheel, requirement.name.as_ref())
            .map_err(|e| LockError::Requirement(format!("{}: {e}", requirement.name)))?;
        let specifiers = match &requirement.version_or_url {
            Some(VersionOrUrl::VersionSpecifier(s)) => Some(s.clone()),
            _ => None,
        };
        policies.entry(name.clone()).or_default().note(specifiers.as_ref());
        cache.entry(name.clone()).or_insert_with(|| candidates(state, &name, channel, target));
        let mut out = vec![Edge::Spec {
            id: package_id(name.as_str(), None),
            name: name.clone(),
            specifiers: specifiers.clone(),
        }];
        queue.push((name.clone(), None));
        for extra in &requirement.extras {
            out.push(Edge::Spec {
                id: package_id(name.as_str(), Some(extra)),
                name: name.clone(),
                specifiers: specifiers.clone(),
            });
            queue.push((name.clone(), Some(extra.clone())));
        }
        Ok(out)
    };
    let root_version = Version::from_str("0").map_err(|e| LockError::Requirement(e.to_string()))?;
    let mut root_edges = Vec::new();
    for requirement in requirements.iter().filter(|r| r.evaluate_markers(target.markers(), &[])) {
        root_edges.extend(edges_of(requirement, &mut cache, &mut queue)?);
    }
    graph.push((ROOT.to_owned(), root_version.clone(), root_edges));
    while let Some((name, extra)) = queue.pop() {
        let id = package_id(name.as_str(), extra.as_ref());
        if !seen.insert(id.clone()) {
            continue;
        }
        let versions: Vec<(Version, Vec<String>)> = cache
            .entry(name.clone())
            .or_insert_with(|| candidates(state, &name, channel, target))
            .iter()
            .map(|c| (c.version.clone(), c.record.release.metadata.dependencies.clone()))
            .collect();
        for (version, dependencies) in versions {
            let mut edges = Vec::new();
            if extra.is_some() {
                edges.push(Edge::Exact { id: name.as_str().to_owned(), version: version.clone() });
            }
            let extras: Vec<ExtraName> = extra.iter().cloned().collect();
            for line in &dependencies {
                let requirement = Requirement::<VerbatimUrl>::from_str(line).map_err(|e| {
                    LockError::Requirement(format!("{name}=={version} declares {line:?}: {e}"))
                })?;
                if requirement.evaluate_markers(target.markers(), &extras) {
                    edges.extend(edges_of(&requirement, &mut cache, &mut queue)?);
                }
            }
            graph.push((id.clone(), version, edges));
        }
    }
    let no_policy = Policy::default();
    for (id, version, edges) in graph {
        let deps: Vec<(String, Ranges<Version>)> = edges
            .into_iter()
            .map(|edge| match edge {
                Edge::Exact { id, version } => (id, Ranges::singleton(version)),
                Edge::Spec { id, name, specifiers } => {
                    let found = cache.get(&name).map_or(&[][..], Vec::as_slice);
                    let range =
                        allowed(found, specifiers.as_ref(), policies.get(&name).unwrap_or(&no_policy));
                    (id, range)
                }
            })
            .collect();
        provider.add_dependencies(id, version, deps);
    }
    let solution = match pubgrub::resolve(&provider, ROOT.to_owned(), root_version) {
        Ok(solution) => solution,
        Err(PubGrubError::NoSolution(tree)) => {
            let mut tree = tree;
            tree.collapse_no_versions();
            return Err(unsatisfiable(&DefaultStringReporter::report(&tree), requirements, &cache, channel));
        }
        Err(other) => return Err(LockError::Requirement(other.to_string())),
    };
    let mut locked = Vec::new();
    for (id, version) in solution {
        if id == ROOT || id.contains('[') {
            continue;
        }
        let Ok(name) = PackageName::new(Kind::Wheel, &id) else { continue };
        let Some(candidate) = cache.get(&name).and_then(|cs| cs.iter().find(|c| c.version == version)) else {
            continue;
        };
        let release = &candidate.record.release;
        locked.push(Locked {
            name,
            version: release.version.clone(),
            wheels: candidate.wheels.iter().map(|w| (*w).clone()).collect(),
            requires_python: release.metadata.requires_python.clone(),
            published_at: release.published_at,
        });
    }
    locked.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(locked)
}

fn unsatisfiable(
    explanation: &str,
    requirements: &[Requirement],
    cache: &BTreeMap<PackageName, Vec<Candidate>>,
    channel: Option<&ChannelName>,
) -> LockError {
    let mut names: BTreeSet<String> = requirements.iter().map(|r| r.name.to_string()).collect();
    names.extend(cache.keys().map(|n| n.to_string()));
    let offers = names
        .iter()
        .filter_map(|name| {
            let normalized = PackageName::normalize(Kind::Wheel, name).ok()?;
            let line = match cache.get(&normalized) {
                Some(candidates) if !candidates.is_empty() => candidates
                    .iter()
                    .map(|c| if c.yanked { format!("{} (yanked)", c.version) } else { c.version.to_string() })
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => "nothing installable on this target".to_owned(),
            };
            Some(format!("  {normalized}: {line}"))
        })
        .collect::<Vec<_>>()
        .join("\n");
    LockError::Unsatisfiable {
        explanation: explanation.trim_end().to_owned(),
        scope: channel.map(|c| format!(" in channel {c}")).unwrap_or_default(),
        offers,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn requirements_files_follow_pip_line_rules() {
        let parsed =
            super::parse_requirements("alpha \\\r\n  >=1.0\t# why\r\n# only a comment\r\nbeta==2 #pin\n")
                .unwrap();
        let names: Vec<String> = parsed.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["alpha>=1.0", "beta==2"]);
        assert!(super::parse_requirements("--index-url https://x\n").is_err());
        assert!(super::parse_requirements("x @ https://example.invalid/x.whl\n").is_err());
    }
}
