#!/usr/bin/env bash
# Runs airlock's test suite: unit tests, end-to-end tests against a real airlockd, attack tests.
set -euo pipefail
cd "$(dirname "$0")"
scripts/ensure-deps.sh
cargo build --workspace --bins --quiet
cargo test --workspace --doc --quiet
cargo nextest run --workspace --no-fail-fast "$@"
