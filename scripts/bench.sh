#!/usr/bin/env bash
# Every performance figure of docs/operations.md in one command: each benchmark in turn, release
# build, loopback. The serve and transfer benchmarks compare with nginx (plain HTTP and TLS) and
# wrk from the system (apt-get install nginx wrk); without them those comparisons are skipped with
# a message. The S3 benchmark starts its own SeaweedFS (scripts/ensure-deps.sh installs it).
#
#   scripts/bench.sh                 # the defaults each benchmark documents
#   SCALE=1000,100000 scripts/bench.sh   # smaller scale figures (default 1000,100000,1000000)
#
# Figures go to stdout; each benchmark's progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each benchmark works in a fresh directory at the top of the filesystem where it may make one
# (ext4 gives such a directory a block group of its own, so files made there do not scan the
# inodes earlier runs freed; see the mirror sync figures in docs/operations.md), else under TMPDIR.
run() {
    echo
    echo "== cargo bench $*"
    local work
    work=$(mktemp -d /airlock-bench.XXXXXX 2>/dev/null || mktemp -d)
    TMPDIR="$work" cargo bench --quiet "$@" || { rm -rf "$work"; return 1; }
    rm -rf "$work"
}

run -p airlock-keys --bench verify
run -p airlock-server --bench serve
run -p airlock-server --bench transfer
run -p airlock-server --bench mirror
run -p airlock-server --bench index
run -p airlock-server --bench comfy
run -p airlock-server --bench s3
run -p airlock-client --bench scan
run -p airlock-server --bench scale -- "${SCALE:-1000,100000,1000000}"
