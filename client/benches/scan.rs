//! `cargo bench -p airlock-client --bench scan`: `airlock scan` throughput over a corpus of
//! generated node packs (MB/s of pack source), and the time to scan one 50 MB pack. Prints
//! figures; asserts nothing about speed.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::time::Instant;

use airlock_client::scan::{scan_file, Blocklist};

/// A node module of about `bytes` bytes: classes, imports, calls, string literals, the shapes
/// real packs hold (and some the rules look at: subprocess with a list, torch.load, open).
fn module(seed: usize, bytes: usize) -> String {
    let mut text = String::from("import os, sys, json, subprocess\nimport torch\nimport folder_paths\n\n");
    let mut n = 0;
    while text.len() < bytes {
        text.push_str(&format!(
            "class Node{seed}_{n}:\n    @classmethod\n    def INPUT_TYPES(cls):\n        return {{\"required\": {{\"image\": (\"IMAGE\",), \"strength\": (\"FLOAT\", {{\"default\": 0.5, \"min\": 0.0, \"max\": 1.0}})}}}}\n    RETURN_TYPES = (\"IMAGE\",)\n    FUNCTION = \"run\"\n    def run(self, image, strength):\n        path = os.path.join(folder_paths.models_dir, \"m{n}.pt\")\n        weights = torch.load(path, map_location=\"cpu\")\n        out = [x * strength for x in range(16)]\n        with open(os.path.join(os.path.dirname(__file__), \"last{n}.json\"), \"w\") as f:\n            json.dump({{\"n\": {n}, \"out\": out}}, f)\n        subprocess.run([sys.executable, \"-c\", \"print({n})\"], check=False)\n        return (image,)\n\n"
        ));
        n += 1;
    }
    text
}

/// Writes a pack of `files` Python modules of `each` bytes; returns its path and source bytes.
fn pack(dir: &std::path::Path, name: &str, files: usize, each: usize) -> (std::path::PathBuf, u64) {
    let path = dir.join(name);
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("pyproject.toml", options).unwrap();
    zip.write_all(b"[project]\nname = \"bench\"\nversion = \"1.0.0\"\n").unwrap();
    zip.start_file("requirements.txt", options).unwrap();
    zip.write_all(b"numpy>=1.24\nsafetensors\n").unwrap();
    let mut source = 0u64;
    for i in 0..files {
        let text = module(i, each);
        source += text.len() as u64;
        zip.start_file(format!("nodes/n{i}.py"), options).unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
    (path, source)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let blocklist = Blocklist::default();
    // A corpus: 40 packs of 8 modules of 64 KiB (20 MB of source).
    let corpus: Vec<_> = (0..40).map(|i| pack(dir.path(), &format!("p{i}.zip"), 8, 64 << 10)).collect();
    let total: u64 = corpus.iter().map(|(_, bytes)| bytes).sum();
    let started = Instant::now();
    for (path, _) in &corpus {
        let report = scan_file(path, &blocklist).unwrap();
        assert!(
            report.worst().is_none_or(|w| w < airlock_client::scan::Severity::High),
            "{:?}",
            report.findings
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "scan corpus: {} packs, {:.1} MB of source in {:.2} s: {:.1} MB/s",
        corpus.len(),
        total as f64 / 1e6,
        seconds,
        total as f64 / 1e6 / seconds
    );
    // One 50 MB pack: 50 modules of 1 MB (the per-file parse cap).
    let (big, bytes) = pack(dir.path(), "big.zip", 50, 1_000_000);
    let started = Instant::now();
    let report = scan_file(&big, &blocklist).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "scan one pack of {:.1} MB source ({} findings): {:.2} s ({:.1} MB/s)",
        bytes as f64 / 1e6,
        report.findings.len(),
        seconds,
        bytes as f64 / 1e6 / seconds
    );
}
