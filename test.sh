#!/usr/bin/env bash
# Runs airlock's test suite: unit tests, end-to-end tests against a real airlockd, attack tests,
# and the S3 backend's tests against a real SeaweedFS started for the run.
set -euo pipefail
cd "$(dirname "$0")"
scripts/ensure-deps.sh
cargo build --workspace --bins --quiet
cargo test --workspace --doc --quiet
seaweed="$(mktemp -d "${TMPDIR:-/tmp}/airlock-seaweedfs.XXXXXX")"
trap 'scripts/seaweedfs.sh stop "$seaweed"' EXIT
scripts/seaweedfs.sh start "$seaweed"
# shellcheck disable=SC1091
. "$seaweed/env"
# The S3 tests fail, rather than skip, when the store is missing.
export AIRLOCK_TEST_S3_REQUIRED=1
cargo nextest run --workspace --no-fail-fast "$@"
