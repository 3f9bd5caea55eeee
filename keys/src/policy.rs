//! Policy files in the text form of c2sp.org/tlog-policy, read into a root's witness policy and
//! written from one, so the witness rules of a root can be kept, reviewed and exchanged as the
//! standard file:
//!
//! ```text
//! log <vkey> [<url>]
//! witness <name> <vkey> [<url>]
//! group <name> all|any|<k> <name>...
//! quorum <name>|none
//! ```
//!
//! A witness is stored in the root under its vkey's key name (the name on its cosignature
//! lines); a policy name that differs is translated wherever a group or the quorum uses it.
//! URLs are accepted and not kept: which witnesses a primary calls is its own configuration.

use std::collections::BTreeMap;

use airlock_proto::{PublicKeyBytes, Root, WitnessGroup, WitnessKey};

use crate::cosignature::{parse_witness_verifier_key, witness_verifier_key};
use crate::keyfile::PublicKey;
use crate::note::{parse_verifier_key, verifier_key};

/// Largest policy file read.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;

/// A parsed policy file: its logs (origin name and key) and the witness policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFile {
    pub logs: Vec<(String, PublicKey)>,
    pub witnesses: Vec<WitnessKey>,
    pub groups: Vec<WitnessGroup>,
    pub quorum: Option<String>,
}

/// Why a policy file was refused: the line and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy line {line}: {reason}")]
pub struct PolicyError {
    pub line: usize,
    pub reason: String,
}

/// Parses a tlog-policy file. Structure (names defined before use, thresholds, duplicates) is
/// checked here line by line, and again by the root's own check when it is built.
pub fn parse_policy(text: &str) -> Result<PolicyFile, PolicyError> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(PolicyError { line: 0, reason: format!("over {MAX_POLICY_BYTES} bytes") });
    }
    let mut file = PolicyFile { logs: Vec::new(), witnesses: Vec::new(), groups: Vec::new(), quorum: None };
    // Policy name -> the name stored in the root (a witness's key name, or the group name).
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut quorum_seen = false;
    for (index, raw) in text.split('\n').enumerate() {
        let line = index + 1;
        let fail = |reason: String| PolicyError { line, reason };
        if raw.bytes().any(|b| b != b'\t' && b.is_ascii_control()) {
            return Err(fail("control characters other than tab are not allowed".into()));
        }
        let tokens: Vec<&str> = raw.split([' ', '\t']).filter(|t| !t.is_empty()).collect();
        let Some((&keyword, args)) = tokens.split_first() else { continue };
        if keyword.starts_with('#') {
            continue;
        }
        let define = |names: &mut BTreeMap<String, String>, name: &str, stored: String| {
            if name == airlock_proto::witness_policy::NONE || names.contains_key(name) {
                return Err(fail(format!("the name {name:?} is reserved or already defined")));
            }
            names.insert(name.to_owned(), stored);
            Ok(())
        };
        let resolve = |names: &BTreeMap<String, String>, name: &str| {
            names
                .get(name)
                .cloned()
                .ok_or_else(|| fail(format!("{name:?} is not defined on an earlier line")))
        };
        match (keyword, args) {
            ("log", [vkey] | [vkey, _]) => {
                file.logs.push(parse_verifier_key(vkey).map_err(fail)?);
            }
            ("witness", [name, vkey] | [name, vkey, _]) => {
                let (key_name, key) = parse_witness_verifier_key(vkey).map_err(fail)?;
                define(&mut names, name, key_name.clone())?;
                file.witnesses.push(WitnessKey { name: key_name, key: PublicKeyBytes(key.to_bytes()) });
            }
            ("group", [name, k, members @ ..]) if !members.is_empty() => {
                let threshold = match *k {
                    "all" => members.len(),
                    "any" => 1,
                    k => k.parse().map_err(|_| fail(format!("{k:?} is not all, any or a number")))?,
                };
                if threshold == 0 || threshold > members.len() {
                    return Err(fail(format!("a threshold of {threshold} with {} members", members.len())));
                }
                let members = members.iter().map(|m| resolve(&names, m)).collect::<Result<Vec<_>, _>>()?;
                define(&mut names, name, (*name).to_owned())?;
                let threshold = u32::try_from(threshold).map_err(|_| fail("threshold too large".into()))?;
                file.groups.push(WitnessGroup { name: (*name).to_owned(), threshold, members });
            }
            ("quorum", [name]) => {
                if quorum_seen {
                    return Err(fail("a second quorum line".into()));
                }
                quorum_seen = true;
                file.quorum = if *name == airlock_proto::witness_policy::NONE {
                    None
                } else {
                    Some(resolve(&names, name)?)
                };
            }
            (keyword, _) => {
                return Err(fail(format!(
                    "{keyword:?} with {} argument(s) is not a policy line",
                    args.len()
                )));
            }
        }
    }
    if !quorum_seen {
        return Err(PolicyError { line: 0, reason: "no quorum line (write `quorum none` for none)".into() });
    }
    Ok(file)
}

/// The policy file of `root`: a `log` line for each log-role key (under the root's origin), then
/// its witnesses, groups and quorum. Parsing it gives back the root's witness policy.
pub fn format_policy(root: &Root) -> String {
    let mut text = format!("# witness policy of {} root version {}\n", root.origin, root.version);
    for id in &root.roles.log.keys {
        let key = root.keys.iter().filter_map(|k| PublicKey::from_bytes(&k.0).ok()).find(|k| k.id() == *id);
        if let Some(key) = key {
            text.push_str(&format!("log {}\n", verifier_key(&root.origin, &key)));
        }
    }
    for witness in &root.witnesses {
        if let Ok(key) = PublicKey::from_bytes(&witness.key.0) {
            text.push_str(&format!(
                "witness {} {}\n",
                witness.name,
                witness_verifier_key(&witness.name, &key)
            ));
        }
    }
    for group in &root.witness_groups {
        text.push_str(&format!("group {} {} {}\n", group.name, group.threshold, group.members.join(" ")));
    }
    text.push_str(&format!(
        "quorum {}\n",
        root.witness_quorum.as_deref().unwrap_or(airlock_proto::witness_policy::NONE)
    ));
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::keyfile::SecretKey;

    fn vkey(name: &str) -> (String, PublicKey) {
        let key = SecretKey::generate().public();
        (witness_verifier_key(name, &key), key)
    }

    #[test]
    fn policy_names_translate_to_key_names_and_keywords_to_thresholds() {
        let (a, _) = vkey("a.example/w");
        let (b, _) = vkey("b.example/w");
        let (c, _) = vkey("c.example/w");
        let text = format!(
            "# comment\n\n  witness A {a} https://a.example/\nwitness B\t{b}\nwitness C {c}\n\
             group ab any A B\ngroup all-of all ab C\nquorum all-of\n"
        );
        let file = parse_policy(&text).unwrap();
        assert_eq!(
            file.witnesses.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(),
            ["a.example/w", "b.example/w", "c.example/w"]
        );
        assert_eq!(
            file.groups[0],
            WitnessGroup {
                name: "ab".into(),
                threshold: 1,
                members: vec!["a.example/w".into(), "b.example/w".into()]
            }
        );
        assert_eq!(file.groups[1].threshold, 2);
        assert_eq!(file.groups[1].members, ["ab", "c.example/w"]);
        assert_eq!(file.quorum.as_deref(), Some("all-of"));
    }

    #[test]
    fn malformed_files_name_the_line_and_the_reason() {
        let (a, _) = vkey("a.example");
        let log_vkey = verifier_key("a.example", &SecretKey::generate().public());
        let refused = |text: String, line: usize, why: &str| {
            let err = parse_policy(&text).unwrap_err();
            assert_eq!(err.line, line, "{err}");
            assert!(err.reason.contains(why), "{err} should say {why}");
        };
        refused(format!("witness A {a}\ngroup g 1 B\nquorum g\n"), 2, "not defined on an earlier line");
        refused(format!("witness A {a}\ngroup g 2 A\nquorum g\n"), 2, "a threshold of 2 with 1 members");
        refused(format!("witness A {a}\nwitness A {a}\nquorum A\n"), 2, "already defined");
        refused(format!("witness none {a}\nquorum none\n"), 1, "reserved");
        refused(format!("witness A {log_vkey}\nquorum A\n"), 1, "signature type 0x01");
        refused(format!("witness A {a}\nquorum A\nquorum none\n"), 3, "second quorum");
        refused(format!("witness A {a}\n"), 0, "no quorum line");
        refused("frobnicate x\nquorum none\n".into(), 1, "not a policy line");
        refused("quorum none\r\n".into(), 1, "control characters");
    }
}
