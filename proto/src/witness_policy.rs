//! The witness policy a root carries, in the form of c2sp.org/tlog-policy: named witnesses,
//! groups that have witnessed a checkpoint when at least `threshold` of their members have, and
//! one quorum (a witness or a group) a checkpoint must satisfy. Groups name only witnesses and
//! groups defined before them, so a policy has no cycles; every name is used once per group.
//!
//! This module checks a policy's structure and evaluates it over the set of witnesses whose
//! cosignature verified; checking the cosignatures themselves is `airlock-keys`' job.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::bytes::PublicKeyBytes;

/// Most witnesses one root may name.
pub const MAX_WITNESSES: usize = 32;
/// Most witness groups one root may define.
pub const MAX_WITNESS_GROUPS: usize = 32;
/// Most group members one root may list in all its groups (so a root at every cap still fits
/// one log entry).
pub const MAX_GROUP_MEMBERS: usize = 128;
/// The name tlog-policy reserves for "no cosignature needed"; no witness or group may take it.
pub const NONE: &str = "none";

/// A witness a root names: its key name (the name on its cosignature lines) and Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessKey {
    pub name: String,
    pub key: PublicKeyBytes,
}

/// A group of witnesses and earlier groups: it has witnessed a checkpoint when at least
/// `threshold` of its members have (tlog-policy's `group NAME K MEMBER...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessGroup {
    pub name: String,
    pub threshold: u32,
    pub members: Vec<String>,
}

/// A root's witness policy, borrowed from it.
#[derive(Debug, Clone, Copy)]
pub struct WitnessPolicy<'a> {
    pub witnesses: &'a [WitnessKey],
    pub groups: &'a [WitnessGroup],
    /// The witness or group a checkpoint needs; `None` needs no cosignature.
    pub quorum: Option<&'a str>,
}

impl WitnessPolicy<'_> {
    /// Checks the policy's structure: valid unique names, distinct keys, groups over names
    /// defined before them with `1 <= threshold <= members`, and a quorum naming a defined
    /// witness or group. The error says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.witnesses.len() > MAX_WITNESSES {
            return Err(format!("names {} witnesses, over the cap of {MAX_WITNESSES}", self.witnesses.len()));
        }
        if self.groups.len() > MAX_WITNESS_GROUPS {
            return Err(format!(
                "defines {} witness groups, over the cap of {MAX_WITNESS_GROUPS}",
                self.groups.len()
            ));
        }
        let members: usize = self.groups.iter().map(|g| g.members.len()).sum();
        if members > MAX_GROUP_MEMBERS {
            return Err(format!(
                "its witness groups list {members} members, over the cap of {MAX_GROUP_MEMBERS}"
            ));
        }
        let (mut defined, mut keys) = (BTreeSet::new(), BTreeSet::new());
        for witness in self.witnesses {
            if !is_policy_name(&witness.name) {
                return Err(format!("witness name {:?} is not a valid key name", witness.name));
            }
            if !defined.insert(witness.name.as_str()) || !keys.insert(witness.key) {
                return Err(format!("witness {} is listed twice", witness.name));
            }
        }
        for group in self.groups {
            if !is_policy_name(&group.name) {
                return Err(format!("witness group name {:?} is not a valid name", group.name));
            }
            let mut members = BTreeSet::new();
            for member in &group.members {
                if !defined.contains(member.as_str()) {
                    return Err(format!(
                        "witness group {} names {member:?}, which is not a witness or a group defined before it",
                        group.name
                    ));
                }
                if !members.insert(member.as_str()) {
                    return Err(format!("witness group {} names {member} twice", group.name));
                }
            }
            if group.threshold == 0 || group.threshold as usize > group.members.len() {
                return Err(format!(
                    "witness group {} needs {} of {} members",
                    group.name,
                    group.threshold,
                    group.members.len()
                ));
            }
            if !defined.insert(group.name.as_str()) {
                return Err(format!("witness group name {} is already taken", group.name));
            }
        }
        match self.quorum {
            Some(name) if !defined.contains(name) => {
                Err(format!("the witness quorum names {name:?}, which is not a witness or group"))
            }
            _ => Ok(()),
        }
    }

    /// Whether the quorum is met when exactly the witnesses for which `cosigned` answers true
    /// have cosigned. Groups are evaluated once each, in the order they are defined (their
    /// members are defined before them), so the cost is linear in the policy's size. A policy
    /// that failed `check` is never met (unless it needs nothing).
    pub fn is_met(&self, cosigned: &dyn Fn(&str) -> bool) -> bool {
        let Some(quorum) = self.quorum else { return true };
        let mut witnessed: std::collections::BTreeMap<&str, bool> =
            self.witnesses.iter().map(|w| (w.name.as_str(), cosigned(&w.name))).collect();
        for group in self.groups {
            let count =
                group.members.iter().filter(|m| witnessed.get(m.as_str()).copied().unwrap_or(false)).count();
            witnessed.insert(group.name.as_str(), count >= group.threshold as usize);
        }
        witnessed.get(quorum).copied().unwrap_or(false)
    }

    /// The quorum rule in words, for messages: `none`, a witness's name, or the group's rule
    /// followed by the rules of the groups under it, e.g.
    /// `sites = 2 of a.example, b.example, team; team = any of c.example, d.example`.
    pub fn describe(&self) -> String {
        let Some(quorum) = self.quorum else { return NONE.to_owned() };
        let mut rules = Vec::new();
        let mut pending = vec![quorum];
        let mut seen = BTreeSet::new();
        while let Some(name) = pending.pop() {
            let Some(group) = self.groups.iter().find(|g| g.name == name) else {
                if rules.is_empty() {
                    return name.to_owned();
                }
                continue;
            };
            if !seen.insert(name) {
                continue;
            }
            let count = match group.threshold as usize {
                1 => "any".to_owned(),
                k if k == group.members.len() => "all".to_owned(),
                k => k.to_string(),
            };
            rules.push(format!("{} = {count} of {}", group.name, group.members.join(", ")));
            pending.extend(group.members.iter().rev().map(String::as_str));
        }
        rules.join("; ")
    }
}

/// Whether `name` can name a witness or group: a valid note key name that is not `none`.
fn is_policy_name(name: &str) -> bool {
    crate::note::is_key_name_valid(name) && name.len() <= crate::statement::MAX_ORIGIN_LEN && name != NONE
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn witness(name: &str, byte: u8) -> WitnessKey {
        WitnessKey { name: name.into(), key: PublicKeyBytes([byte; 32]) }
    }

    fn group(name: &str, threshold: u32, members: &[&str]) -> WitnessGroup {
        WitnessGroup { name: name.into(), threshold, members: members.iter().map(|m| (*m).into()).collect() }
    }

    /// The two-level example of tlog-policy: 2 of the X witnesses and any of the Y witnesses.
    fn example() -> (Vec<WitnessKey>, Vec<WitnessGroup>) {
        let witnesses = ["X1", "X2", "X3", "Y1", "Y2", "Y3"]
            .iter()
            .zip(1u8..)
            .map(|(name, byte)| witness(name, byte))
            .collect();
        let groups = vec![
            group("X-witnesses", 2, &["X1", "X2", "X3"]),
            group("Y-witnesses", 1, &["Y1", "Y2", "Y3"]),
            group("X-and-Y", 2, &["X-witnesses", "Y-witnesses"]),
        ];
        (witnesses, groups)
    }

    #[test]
    fn nested_groups_follow_the_tlog_policy_example() {
        let (witnesses, groups) = example();
        let policy = WitnessPolicy { witnesses: &witnesses, groups: &groups, quorum: Some("X-and-Y") };
        policy.check().unwrap();
        let met = |signers: &[&str]| policy.is_met(&|name| signers.contains(&name));
        assert!(met(&["X1", "X3", "Y2"]));
        assert!(!met(&["X1", "Y1", "Y2", "Y3"]), "one X witness is not two");
        assert!(!met(&["X1", "X2", "X3"]), "no Y witness");
        assert!(!met(&[]));
        assert_eq!(
            policy.describe(),
            "X-and-Y = all of X-witnesses, Y-witnesses; X-witnesses = 2 of X1, X2, X3; Y-witnesses = any of Y1, Y2, Y3"
        );
    }

    #[test]
    fn deep_groups_are_evaluated_once_each() {
        // 32 groups, each naming the four defined before it: a recursive evaluation would
        // revisit the early ones exponentially often; each witness is asked about once.
        let witnesses: Vec<WitnessKey> = (0..4u8).map(|i| witness(&format!("w{i}"), i + 1)).collect();
        let mut names: Vec<String> = witnesses.iter().map(|w| w.name.clone()).collect();
        let mut groups = Vec::new();
        for i in 0..MAX_WITNESS_GROUPS {
            let members: Vec<&str> = names[names.len() - 4..].iter().map(String::as_str).collect();
            groups.push(group(&format!("g{i}"), 2, &members));
            names.push(format!("g{i}"));
        }
        let last = format!("g{}", MAX_WITNESS_GROUPS - 1);
        let policy = WitnessPolicy { witnesses: &witnesses, groups: &groups, quorum: Some(&last) };
        policy.check().unwrap();
        let asked = std::cell::Cell::new(0);
        assert!(policy.is_met(&|name| {
            asked.set(asked.get() + 1);
            name == "w0" || name == "w1"
        }));
        assert_eq!(asked.get(), 4);
        assert!(!policy.is_met(&|name| name == "w0"));
    }

    #[test]
    fn a_quorum_of_one_witness_or_none() {
        let (witnesses, groups) = example();
        let one = WitnessPolicy { witnesses: &witnesses, groups: &groups, quorum: Some("Y2") };
        one.check().unwrap();
        assert!(one.is_met(&|name| name == "Y2") && !one.is_met(&|name| name == "Y1"));
        assert_eq!(one.describe(), "Y2");
        let none = WitnessPolicy { witnesses: &witnesses, groups: &groups, quorum: None };
        assert!(none.is_met(&|_| false));
        assert_eq!(none.describe(), "none");
    }

    #[test]
    fn malformed_policies_are_refused_with_the_reason() {
        let (witnesses, groups) = example();
        let refused = |groups: &[WitnessGroup], quorum: Option<&str>, why: &str| {
            let err = WitnessPolicy { witnesses: &witnesses, groups, quorum }.check().unwrap_err();
            assert!(err.contains(why), "{err} should say {why}");
        };
        refused(
            &[group("g", 1, &["later"]), group("later", 1, &["X1"])],
            None,
            "not a witness or a group defined before it",
        );
        refused(&[group("g", 1, &["g"])], None, "not a witness or a group defined before it");
        refused(&[group("g", 3, &["X1", "X2"])], None, "needs 3 of 2 members");
        refused(&[group("g", 0, &["X1"])], None, "needs 0 of 1 members");
        refused(&[group("g", 1, &[])], None, "needs 1 of 0 members");
        refused(&[group("g", 1, &["X1", "X1"])], None, "names X1 twice");
        refused(&[group("X1", 1, &["X2"])], None, "already taken");
        refused(&[group("none", 1, &["X2"])], None, "not a valid name");
        refused(&groups, Some("nobody"), "not a witness or group");
        let mut twice = witnesses.clone();
        twice.push(witness("Z", 1));
        let err = WitnessPolicy { witnesses: &twice, groups: &[], quorum: None }.check().unwrap_err();
        assert!(err.contains("listed twice"), "{err}");
    }
}
