//! Writes the seed corpus: `fuzz/corpus/<target>/<name>` for every seed of
//! `airlock_fuzz_targets::seeds`, replacing files of the same name and leaving others alone.
//!
//! ```text
//! cargo run -p airlock-fuzz-targets --example write_corpus
//! ```

use std::path::Path;

fn main() -> Result<(), String> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let seeds = airlock_fuzz_targets::seeds::all()?;
    for seed in &seeds {
        let dir = corpus.join(seed.target);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join(&seed.name);
        std::fs::write(&path, &seed.bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let total: usize = seeds.iter().map(|s| s.bytes.len()).sum();
    println!("wrote {} seeds ({total} bytes) under {}", seeds.len(), corpus.display());
    Ok(())
}
