#!/usr/bin/env bash
# airlock demo: the whole path on an embedded default, each step printed with the command it
# runs. Makes keys and a signed root, starts airlockd on a temporary data directory, publishes a
# package with a two-person rule, pulls it back by name and by digest and verifies it, then
# shows a tampered blob being refused. Leaves nothing behind but the build.
set -euo pipefail
cd "$(dirname "$0")"
scripts/ensure-deps.sh
echo "== building airlock and airlockd (the first build compiles RocksDB: about ten minutes)"
cargo build --quiet --bin airlock --bin airlockd
target_dir="${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')}"
bin="$target_dir/debug"
work="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
export AIRLOCK_HOME="$work/client-state"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
server="http://127.0.0.1:$port"

step() { printf '\n== %s\n' "$1"; }
run() { printf '$ %s\n' "$*" | sed "s#$bin/##g; s#$work/##g"; "$@"; }

step "1. the server's data directory and online log key"
run "$bin/airlockd" init --data data

step "2. an offline root key and two reviewers' publisher keys"
run "$bin/airlock" key generate root --dir keys
run "$bin/airlock" key generate alice --dir keys
run "$bin/airlock" key generate bob --dir keys

step "3. the trust root: publisher threshold 2 (a two-person rule), signed by the root key"
run "$bin/airlock" root create --origin demo.airlock.internal --root-key keys/root.pub \
  --publisher-key keys/alice.pub --publisher-key keys/bob.pub --publisher-threshold 2 \
  --log-key data/log.pub -o root.cbor
run "$bin/airlock" root sign root.cbor --key keys/root.key

step "4. a publish token, then the server (the root becomes leaf 0 of the log)"
printf '$ airlockd token create --data data --scope publish\n'
AIRLOCK_TOKEN=$("$bin/airlockd" token create --data data --scope publish --label demo)
export AIRLOCK_TOKEN
echo "(the token is shown once and stored hashed; the CLI reads it from \$AIRLOCK_TOKEN below)"
printf '$ airlockd serve --data data --listen 127.0.0.1:%s --root root.cbor &\n' "$port"
"$bin/airlockd" serve --data data --listen "127.0.0.1:$port" --root root.cbor 2>server.log &
server_pid=$!
for _ in $(seq 100); do curl -fs "$server/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

step "5. a package to publish: a small wheel built here"
python3 - <<'PY'
import base64, hashlib, zipfile
members = {
    "demo_nodes/__init__.py": "NODE_CLASS_MAPPINGS = {}\n",
    "demo_nodes-1.0.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: demo-nodes\nVersion: 1.0.0\n",
    "demo_nodes-1.0.0.dist-info/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
def digest(text):
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
record = "".join(f"{path},sha256={digest(text)},{len(text)}\n" for path, text in members.items())
record += "demo_nodes-1.0.0.dist-info/RECORD,,\n"
with zipfile.ZipFile("demo_nodes-1.0.0-py3-none-any.whl", "w") as z:
    for path, text in members.items():
        z.writestr(path, text)
    z.writestr("demo_nodes-1.0.0.dist-info/RECORD", record)
PY
ls -l demo_nodes-1.0.0-py3-none-any.whl | awk '{print $5, $9}'

step "6. alice uploads and signs; one signature is not enough"
run "$bin/airlock" publish demo_nodes-1.0.0-py3-none-any.whl \
  --key keys/alice.key --root root.cbor --server "$server" --sign-only -o release.cbor
run "$bin/airlock" submit release.cbor --server "$server" || echo "(refused, as it should be)"

step "7. bob reviews and approves; the release is logged"
run "$bin/airlock" show release.cbor | head -3
run "$bin/airlock" approve release.cbor --key keys/bob.key --root root.cbor
run "$bin/airlock" submit release.cbor --server "$server" --root root.cbor

step "8. a site pulls by name: every leaf and signature verified against the pinned root"
run "$bin/airlock" pull demo-nodes==1.0.0 --server "$server" --root root.cbor -o pulled   # the wheel and its METADATA
digest=$("$bin/airlock" --json pull demo-nodes==1.0.0 --server "$server" --root root.cbor -o pulled2 \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"][0]["blake3"])')

step "9. pull by digest, and verify the file"
run "$bin/airlock" pull "$digest" --server "$server" --root root.cbor -o by-digest.whl
run "$bin/airlock" verify by-digest.whl --digest "$digest"
cmp pulled/demo_nodes-1.0.0-py3-none-any.whl demo_nodes-1.0.0-py3-none-any.whl && echo "pulled bytes are identical to the published ones"

step "10. someone flips one byte of the stored blob: the pull fails and writes nothing"
# The registry keeps small blobs it has served in memory, checked against their digest, so it
# would go on serving the good bytes: restart it, so that the damaged file is what it reads.
kill "$server_pid" && wait "$server_pid" 2>/dev/null || true
blob=$(find data/blobs -type f -name "${digest#blake3:}")
python3 -c "import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); b[-1]^=1; open(p,'wb').write(b)" "$blob"
echo "(flipped the last byte of $blob and restarted the server)"
"$bin/airlockd" serve --data data --listen "127.0.0.1:$port" --root root.cbor 2>>server.log &
server_pid=$!
for _ in $(seq 100); do curl -fs "$server/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
if run "$bin/airlock" pull "$digest" --server "$server" --root root.cbor -o tampered.whl; then
  echo "demo failed: a tampered blob was accepted" >&2; exit 1
else
  echo "(refused with exit code $?; tampered.whl exists: $([ -e tampered.whl ] && echo yes || echo no))"
fi

printf '\n== done: keys, root, server, publish with a two-person rule, verified pulls, tampering refused\n'
