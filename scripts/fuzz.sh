#!/usr/bin/env bash
# Fuzzes every decoder of untrusted bytes with cargo-fuzz (libFuzzer), one target after the other.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 60)
#   FUZZ_TARGETS="envelope bundle" scripts/fuzz.sh 300
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`). Each target
# starts from its committed seeds (fuzz/corpus/<name>/) and its regressions; the inputs libFuzzer
# finds go to fuzz/work-corpus/<name>/ (not committed), so the seed corpus stays small. A crash
# artifact is copied into fuzz/regressions/<name>/, where the stable short run
# (`cargo test -p airlock-fuzz-targets`) replays it from then on: fix the bug and commit the file.
# Exits 1 when any target crashed.
set -uo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-60}"
targets="${FUZZ_TARGETS:-envelope statement checkpoint proof bodies bundle request policy}"
crashed=()

for name in $targets; do
    mkdir -p "work-corpus/$name" "artifacts/$name" "regressions/$name"
    before=$(ls "artifacts/$name" | sort)
    echo "== fuzzing $name for ${seconds}s"
    cargo +nightly fuzz run "$name" "work-corpus/$name" "corpus/$name" "regressions/$name" -- \
        -max_total_time="$seconds" -print_final_stats=1
    status=$?
    new=$(comm -13 <(echo "$before") <(ls "artifacts/$name" | sort))
    for artifact in $new; do
        cp "artifacts/$name/$artifact" "regressions/$name/$artifact"
        echo "!! $name: crash input saved as fuzz/regressions/$name/$artifact: fix the bug, then commit it" \
            "(cargo test -p airlock-fuzz-targets replays it)"
        crashed+=("$name")
    done
    if [ "$status" -ne 0 ] && [ -z "$new" ]; then
        echo "!! $name: cargo fuzz exited with status $status and left no artifact"
        crashed+=("$name")
    fi
done

if [ "${#crashed[@]}" -gt 0 ]; then
    echo "crashed: ${crashed[*]}"
    exit 1
fi
echo "no crashes in: $targets"
