//! What the Python rules know about names and literals: which calls decode, download, find the
//! user's home or build names out of pieces, and which literal strings name places outside a
//! pack's folder or hide an encoded payload. Each fact is a label; labels flow from an
//! expression to the names it is assigned to, and the rules look at the labels reaching a call.

/// A set of labels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Labels(u16);

impl Labels {
    /// Decoded or decompressed data (base64, hex, zlib...).
    pub const DECODED: Self = Self(1);
    /// Data fetched over the network, or a file it was written to.
    pub const DOWNLOADED: Self = Self(1 << 1);
    /// A long base64, hex or compressed literal.
    pub const ENCODED: Self = Self(1 << 2);
    /// The user's home folder (or a folder inside it).
    pub const HOME: Self = Self(1 << 3);
    /// A file that runs at log-in or interpreter start (startup folders, shell rc, `.pth`).
    pub const STARTUP: Self = Self(1 << 4);
    /// Another pack's folder (`custom_nodes`).
    pub const OTHER_PACK: Self = Self(1 << 5);
    /// An absolute path.
    pub const ABSOLUTE: Self = Self(1 << 6);
    /// A parent folder (`..`).
    pub const PARENT: Self = Self(1 << 7);
    /// A string built so that it does not appear in the source (chr, reversal, joins of
    /// pieces, concatenated literals).
    pub const OBFUSCATED: Self = Self(1 << 8);

    pub const NONE: Self = Self(0);

    pub fn any(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }
}

impl std::ops::BitOr for Labels {
    type Output = Self;
    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl std::ops::BitOrAssign for Labels {
    fn bitor_assign(&mut self, other: Self) {
        self.0 |= other.0;
    }
}

/// The label a call to the function with qualified name `name` gives its result.
pub fn of_call(name: &str, first_literal: Option<&str>) -> Labels {
    let (module, function) = name.rsplit_once('.').unwrap_or(("", name));
    let decodes = matches!(module, "base64" | "binascii" | "codecs" | "zlib" | "gzip" | "bz2" | "lzma")
        && (function.contains("decode")
            || function.contains("decompress")
            || function.starts_with("a2b_")
            || function == "unhexlify")
        || function == "fromhex";
    let downloads = ["requests", "httpx", "urllib3", "aiohttp", "urllib2", "pycurl", "wget", "http.client"]
        .iter()
        .any(|m| module == *m || module.starts_with(&format!("{m}.")))
        || matches!(
            name,
            "urllib.request.urlopen" | "urllib.request.urlretrieve" | "urllib.urlopen" | "urllib.urlretrieve"
        );
    let home = matches!(
        name,
        "os.path.expanduser" | "os.path.expandvars" | "pathlib.Path.home" | "pathlib.Path.expanduser"
    ) || (matches!(name, "os.getenv" | "os.environ.get")
        && first_literal.is_some_and(is_home_variable));
    let obfuscates = matches!(name, "chr" | "codecs.decode" | "codecs.encode") || decodes;
    let mut labels = Labels::NONE;
    for (yes, label) in [
        (decodes, Labels::DECODED),
        (downloads, Labels::DOWNLOADED),
        (home, Labels::HOME),
        (obfuscates, Labels::OBFUSCATED),
    ] {
        if yes {
            labels |= label;
        }
    }
    labels
}

/// Environment variables that name the user's home or profile folders.
pub fn is_home_variable(name: &str) -> bool {
    matches!(name, "HOME" | "USERPROFILE" | "APPDATA" | "LOCALAPPDATA" | "XDG_CONFIG_HOME" | "XDG_DATA_HOME")
}

/// Shortest literal taken for an encoded payload.
const ENCODED_MIN_LEN: usize = 200;

/// The labels a string literal carries.
pub fn of_text(text: &str) -> Labels {
    let mut labels = Labels::NONE;
    if text.len() >= ENCODED_MIN_LEN
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=_-\r\n".contains(&b))
    {
        labels |= Labels::ENCODED;
    }
    if text.starts_with('~') {
        labels |= Labels::HOME;
    }
    let bytes = text.as_bytes();
    if text.starts_with('/')
        || text.starts_with("\\\\")
        || (bytes.len() > 2
            && bytes[0].is_ascii_alphabetic()
            && bytes[1] == b':'
            && matches!(bytes[2], b'\\' | b'/'))
    {
        labels |= Labels::ABSOLUTE;
    }
    let lower = text.to_ascii_lowercase();
    for part in lower.split(['/', '\\']) {
        match part {
            ".." => labels |= Labels::PARENT,
            "custom_nodes" => labels |= Labels::OTHER_PACK,
            "startup" | "autostart" | "launchagents" | ".bashrc" | ".bash_profile" | ".profile"
            | ".zshrc" | ".zprofile" | ".login" | "sitecustomize.py" | "usercustomize.py" | "cron.d"
            | "crontab" | "init.d" | "rc.local" => labels |= Labels::STARTUP,
            _ if part.ends_with(".pth") => labels |= Labels::STARTUP,
            _ => {}
        }
    }
    if lower.contains("currentversion\\run") {
        labels |= Labels::STARTUP;
    }
    labels
}

/// The labels a bytes literal carries: long binary or compressed data counts as encoded.
pub fn of_bytes(bytes: &[u8]) -> Labels {
    let zlib = bytes.len() >= 64 && bytes[0] == 0x78 && matches!(bytes[1], 0x01 | 0x5e | 0x9c | 0xda);
    let binary = bytes.len() >= ENCODED_MIN_LEN
        && bytes.iter().filter(|b| !(b.is_ascii_graphic() || b.is_ascii_whitespace())).count() * 4
            > bytes.len();
    if zlib || binary {
        return Labels::ENCODED;
    }
    std::str::from_utf8(bytes).map(of_text).unwrap_or_default()
}

/// Calls that run a string as Python code.
pub fn runs_code(name: &str) -> bool {
    matches!(name, "exec" | "eval" | "compile" | "execfile" | "types.FunctionType" | "types.CodeType")
}

/// Calls that always run a command through the shell.
pub fn runs_shell(name: &str) -> bool {
    matches!(
        name,
        "os.system"
            | "os.popen"
            | "subprocess.getoutput"
            | "subprocess.getstatusoutput"
            | "commands.getoutput"
            | "asyncio.create_subprocess_shell"
            | "pty.spawn"
    )
}

/// Calls that start a process, through the shell only when given `shell=True`.
pub fn starts_process(name: &str) -> bool {
    matches!(
        name,
        "subprocess.run"
            | "subprocess.call"
            | "subprocess.check_call"
            | "subprocess.check_output"
            | "subprocess.Popen"
            | "asyncio.create_subprocess_exec"
            | "os.startfile"
    ) || name.starts_with("os.exec")
        || name.starts_with("os.spawn")
        || name.starts_with("os.posix_spawn")
}

/// Calls that rebuild objects (and run code) from serialized bytes.
pub fn deserializes(name: &str) -> bool {
    matches!(
        name,
        "pickle.loads"
            | "pickle.load"
            | "_pickle.loads"
            | "_pickle.load"
            | "cPickle.loads"
            | "cPickle.load"
            | "marshal.loads"
            | "marshal.load"
            | "dill.loads"
            | "dill.load"
            | "cloudpickle.loads"
            | "cloudpickle.load"
            | "shelve.open"
    )
}

/// Calls that import a module named at run time.
pub fn imports_by_name(name: &str) -> bool {
    matches!(name, "__import__" | "importlib.import_module" | "importlib.__import__")
}

/// Calls whose argument at the returned position is a path written to (a copy's target, a
/// download's file).
pub fn written_path_argument(name: &str) -> Option<usize> {
    match name {
        "shutil.copy"
        | "shutil.copy2"
        | "shutil.copyfile"
        | "shutil.copytree"
        | "shutil.move"
        | "os.rename"
        | "os.replace"
        | "os.symlink"
        | "os.link"
        | "urllib.request.urlretrieve"
        | "urllib.urlretrieve"
        | "wget.download" => Some(1),
        _ => None,
    }
}

/// Methods of a path object that write to it.
pub fn writes_path_method(method: &str) -> bool {
    matches!(method, "write_text" | "write_bytes" | "touch" | "symlink_to" | "hardlink_to")
}

/// Whether an `open` mode string writes.
pub fn is_write_mode(mode: &str) -> bool {
    mode.contains(['w', 'a', 'x', '+'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        assert_eq!(of_text("~/.config/x"), Labels::HOME);
        assert!(of_text(
            "C:\\Users\\me\\AppData\\Roaming\\Microsoft\\Windows\\Start Menu\\Programs\\Startup"
        )
        .any(Labels::STARTUP));
        assert!(of_text("../../custom_nodes/other").any(Labels::OTHER_PACK | Labels::PARENT));
        assert!(of_text(&"QUJD".repeat(60)).any(Labels::ENCODED));
        assert!(!of_text(&"word ".repeat(60)).any(Labels::ENCODED));
        assert_eq!(of_text("models/checkpoints"), Labels::NONE);
        assert!(of_text("/etc/profile.d/x.pth").any(Labels::STARTUP | Labels::ABSOLUTE));
    }

    #[test]
    fn calls() {
        assert_eq!(of_call("base64.b64decode", None), Labels::DECODED | Labels::OBFUSCATED);
        assert_eq!(of_call("zlib.decompress", None), Labels::DECODED | Labels::OBFUSCATED);
        assert_eq!(of_call("requests.get", None), Labels::DOWNLOADED);
        assert_eq!(of_call("urllib.request.urlopen", None), Labels::DOWNLOADED);
        assert_eq!(of_call("os.getenv", Some("APPDATA")), Labels::HOME);
        assert_eq!(of_call("os.getenv", Some("CUDA_VISIBLE_DEVICES")), Labels::NONE);
        assert_eq!(of_call("json.loads", None), Labels::NONE);
    }
}
