//! ComfyUI trees: verified node pack installs in the layout ComfyUI-Manager uses for registry
//! installs (`custom_nodes/<id>/` with the pack's files at its root and a `.tracking` file listing
//! them), the marker that records which logged pack a folder came from, the site's Python
//! environment and its installer, and the lock file of a whole environment.
//!
//! - `extract`: reads and extracts a pack zip safely, hashing every file.
//! - `tree`: the `custom_nodes` folder: installed packs, staged installs swapped in whole.
//! - `env`: the Python environment (its version, platform and distributions) and pip or uv.
//! - `lockfile`: `comfy.lock` and ComfyUI-Manager's snapshot JSON.

pub mod env;
pub mod extract;
pub mod lockfile;
pub mod tree;
