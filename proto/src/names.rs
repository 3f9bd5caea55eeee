//! Validated names: package kinds, package names, versions, channel names and file names.
//!
//! Parse, don't validate: the constructors refuse bad input, so holding one of these types
//! means its text is safe to use in a URL, a log line or a path component. Files are stored by
//! digest, never by these names, but names still reach file systems (pull output, installs).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest package name accepted.
pub const MAX_NAME_LEN: usize = 128;
/// Longest version accepted.
pub const MAX_VERSION_LEN: usize = 64;
/// Longest channel name accepted.
pub const MAX_CHANNEL_LEN: usize = 32;
/// Longest file name accepted.
pub const MAX_FILE_NAME_LEN: usize = 255;

/// Why a name was refused. The message names the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{what} {text:?} is empty or longer than {max} bytes")]
    Length { what: &'static str, text: String, max: usize },
    #[error("{what} {text:?} contains a character that is not allowed ({reason})")]
    Character { what: &'static str, text: String, reason: &'static str },
    #[error("{what} {text:?} is not in normalised form (expected {expected:?})")]
    NotNormalised { what: &'static str, text: String, expected: String },
    #[error("unknown package kind {0:?} (expected `wheel` or `node`)")]
    UnknownKind(String),
}

/// What a release holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A Python wheel (names normalised as PEP 503).
    Wheel,
    /// A ComfyUI custom-node pack (ids lower-case).
    Node,
}

impl Kind {
    /// The lowercase wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Wheel => "wheel",
            Self::Node => "node",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        match s {
            "wheel" => Ok(Self::Wheel),
            "node" => Ok(Self::Node),
            other => Err(NameError::UnknownKind(other.to_owned())),
        }
    }
}

fn check_length(what: &'static str, text: &str, max: usize) -> Result<(), NameError> {
    if text.is_empty() || text.len() > max {
        return Err(NameError::Length { what, text: text.to_owned(), max });
    }
    Ok(())
}

fn bad_char(what: &'static str, text: &str, reason: &'static str) -> NameError {
    NameError::Character { what, text: text.to_owned(), reason }
}

/// A normalised package name: for wheels the PEP 503 form (lowercase ASCII letters, digits and
/// single `-` between them), for node packs the lower-cased registry id (letters, digits, `-`,
/// `_`, `.`, beginning and ending with a letter or digit, no `..`).
///
/// ```
/// use airlock_proto::{Kind, PackageName};
/// assert_eq!(PackageName::normalize(Kind::Wheel, "Typing_Extensions").unwrap().as_str(), "typing-extensions");
/// assert!(PackageName::new(Kind::Wheel, "Typing_Extensions").is_err());
/// assert!(PackageName::normalize(Kind::Node, "../etc").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PackageName(String);

impl PackageName {
    /// Accepts `text` only if it is already the normalised name for `kind`.
    pub fn new(kind: Kind, text: &str) -> Result<Self, NameError> {
        let normalised = Self::normalize(kind, text)?;
        if normalised.0 != text {
            return Err(NameError::NotNormalised {
                what: "package name",
                text: text.to_owned(),
                expected: normalised.0,
            });
        }
        Ok(normalised)
    }

    /// Normalises user input for `kind` (PEP 503 for wheels, lower-case for node ids) and
    /// validates the result.
    pub fn normalize(kind: Kind, text: &str) -> Result<Self, NameError> {
        const WHAT: &str = "package name";
        check_length(WHAT, text, MAX_NAME_LEN)?;
        let first_last_ok = |b: u8| b.is_ascii_alphanumeric();
        let bytes = text.as_bytes();
        if !bytes.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
            return Err(bad_char(WHAT, text, "only ASCII letters, digits, `-`, `_` and `.` are allowed"));
        }
        if !first_last_ok(bytes[0]) || !first_last_ok(bytes[bytes.len() - 1]) {
            return Err(bad_char(WHAT, text, "must begin and end with a letter or digit"));
        }
        match kind {
            Kind::Wheel => {
                let mut out = String::with_capacity(text.len());
                let mut in_separator_run = false;
                for c in text.chars() {
                    if matches!(c, '-' | '_' | '.') {
                        if !in_separator_run {
                            out.push('-');
                        }
                        in_separator_run = true;
                    } else {
                        out.push(c.to_ascii_lowercase());
                        in_separator_run = false;
                    }
                }
                Ok(Self(out))
            }
            Kind::Node => {
                if text.contains("..") {
                    return Err(bad_char(WHAT, text, "`..` is not allowed"));
                }
                Ok(Self(text.to_ascii_lowercase()))
            }
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PackageName({:?})", self.0)
    }
}

/// Decoding accepts any name that is normalised for at least one kind; the statement that
/// holds it then checks it against its own kind.
impl<'de> Deserialize<'de> for PackageName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        PackageName::new(Kind::Node, &text)
            .or_else(|_| PackageName::new(Kind::Wheel, &text))
            .map_err(serde::de::Error::custom)
    }
}

macro_rules! validated_string {
    ($(#[$meta:meta])* $name:ident, $validate:path) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates `text`.
            pub fn new(text: &str) -> Result<Self, NameError> {
                $validate(text)?;
                Ok(Self(text.to_owned()))
            }
            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::new(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn validate_version(text: &str) -> Result<(), NameError> {
    const WHAT: &str = "version";
    check_length(WHAT, text, MAX_VERSION_LEN)?;
    let bytes = text.as_bytes();
    if !bytes.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+' | b'!')) {
        return Err(bad_char(
            WHAT,
            text,
            "only ASCII letters, digits, `.`, `-`, `_`, `+` and `!` are allowed",
        ));
    }
    if !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return Err(bad_char(WHAT, text, "must begin and end with a letter or digit"));
    }
    if text.contains("..") {
        return Err(bad_char(WHAT, text, "`..` is not allowed"));
    }
    Ok(())
}

fn validate_channel(text: &str) -> Result<(), NameError> {
    const WHAT: &str = "channel name";
    check_length(WHAT, text, MAX_CHANNEL_LEN)?;
    let bytes = text.as_bytes();
    if !bytes[0].is_ascii_lowercase()
        || !bytes.iter().all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(bad_char(WHAT, text, "a lowercase letter followed by lowercase letters, digits or `-`"));
    }
    Ok(())
}

fn validate_file_name(text: &str) -> Result<(), NameError> {
    const WHAT: &str = "file name";
    check_length(WHAT, text, MAX_FILE_NAME_LEN)?;
    let bytes = text.as_bytes();
    if !bytes.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+')) {
        return Err(bad_char(WHAT, text, "only ASCII letters, digits, `.`, `-`, `_` and `+` are allowed"));
    }
    if bytes[0] == b'.' || text.contains("..") {
        return Err(bad_char(WHAT, text, "must not begin with `.` or contain `..`"));
    }
    Ok(())
}

validated_string!(
    /// A release version: 1-64 ASCII letters, digits and `.-_+!`, beginning and ending with a
    /// letter or digit, no `..`. (PEP 440 ordering is applied where versions are compared, not
    /// here.)
    Version,
    validate_version
);
validated_string!(
    /// A channel name (`dev`, `test`, `prod`, ...): a lowercase letter, then lowercase letters,
    /// digits and `-`, at most 32 bytes.
    ChannelName,
    validate_channel
);
validated_string!(
    /// The file name of a release file: one path component of ASCII letters, digits and
    /// `.-_+`, not beginning with `.`, no `..`, at most 255 bytes. Safe to join to a directory.
    FileName,
    validate_file_name
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_names_are_normalised_as_pep_503() {
        for (input, want) in [
            ("Django", "django"),
            ("typing_extensions", "typing-extensions"),
            ("zope.interface", "zope-interface"),
            ("a-_.b", "a-b"),
            ("A1", "a1"),
        ] {
            assert_eq!(PackageName::normalize(Kind::Wheel, input).map(|n| n.0), Ok(want.to_owned()));
        }
        assert!(PackageName::new(Kind::Wheel, "typing_extensions").is_err());
        assert!(PackageName::new(Kind::Wheel, "typing-extensions").is_ok());
    }

    #[test]
    fn hostile_names_rejected() {
        let long = "a".repeat(MAX_NAME_LEN + 1);
        for bad in ["", "..", "../x", "a/b", "a\\b", "a\0b", "a\nb", "-a", "a-", ".a", "é", " a", &long] {
            assert!(PackageName::normalize(Kind::Wheel, bad).is_err(), "wheel accepted {bad:?}");
            assert!(PackageName::normalize(Kind::Node, bad).is_err(), "node accepted {bad:?}");
        }
        assert!(PackageName::normalize(Kind::Node, "a..b").is_err());
    }

    #[test]
    fn versions_channels_and_file_names_validated() {
        assert!(Version::new("1.0.0").is_ok());
        assert!(Version::new("2.0.0rc1+local.1").is_ok());
        for bad in ["", "1..2", "../1", "1/2", "1 2", ".1", "1.", &"1".repeat(65)] {
            assert!(Version::new(bad).is_err(), "version accepted {bad:?}");
        }
        assert!(ChannelName::new("prod").is_ok());
        for bad in ["", "Prod", "1prod", "pr od", "pr/od"] {
            assert!(ChannelName::new(bad).is_err(), "channel accepted {bad:?}");
        }
        assert!(FileName::new("numpy-2.0.0-cp311-cp311-manylinux_2_17_x86_64.whl").is_ok());
        for bad in ["", ".", "..", "../a.whl", "a/b.whl", "a\\b", ".hidden", "a\0", "C:x"] {
            assert!(FileName::new(bad).is_err(), "file name accepted {bad:?}");
        }
    }

    #[test]
    fn decoding_validates() {
        let ok: Result<Version, _> = serde_json::from_str("\"1.0\"");
        assert!(ok.is_ok());
        let bad: Result<Version, _> = serde_json::from_str("\"../1\"");
        assert!(bad.is_err());
        let bad: Result<PackageName, _> = serde_json::from_str("\"Bad_Name\"");
        assert!(bad.is_err());
    }
}
