//! Version order for resolving a name to its newest release: PEP 440 for wheels (as pip and uv
//! order them), semantic versioning for node packs. A version that does not parse under its
//! kind's scheme sorts below every one that does, and such versions order by their text.

use std::cmp::Ordering;
use std::str::FromStr;

use airlock_proto::{Kind, Version};

/// Orders two versions of one kind.
pub fn compare(kind: Kind, a: &Version, b: &Version) -> Ordering {
    match kind {
        Kind::Wheel => by(a, b, |v| pep440_rs::Version::from_str(v).ok()),
        Kind::Node => by(a, b, |v| semver::Version::parse(v.strip_prefix('v').unwrap_or(v)).ok()),
    }
}

fn by<T: Ord>(a: &Version, b: &Version, parse: impl Fn(&str) -> Option<T>) -> Ordering {
    match (parse(a.as_str()), parse(b.as_str())) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.as_str().cmp(b.as_str())),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => a.as_str().cmp(b.as_str()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sorted(kind: Kind, versions: &[&str]) -> Vec<String> {
        let mut versions: Vec<Version> = versions.iter().map(|v| Version::new(v).unwrap()).collect();
        versions.sort_by(|a, b| compare(kind, a, b));
        versions.iter().map(|v| v.as_str().to_owned()).collect()
    }

    #[test]
    fn wheels_follow_pep_440_and_node_packs_semver() {
        assert_eq!(
            sorted(
                Kind::Wheel,
                &["1.10", "1.9", "1.10rc1", "1.10.post1", "1.10.dev0", "2!0.1", "not_pep440"]
            ),
            ["not_pep440", "1.9", "1.10.dev0", "1.10rc1", "1.10", "1.10.post1", "2!0.1"]
        );
        assert_eq!(
            sorted(Kind::Node, &["1.10.0", "1.9.0", "1.10.0-beta.1", "v2.0.0", "nightly"]),
            ["nightly", "1.9.0", "1.10.0-beta.1", "1.10.0", "v2.0.0"]
        );
    }
}
