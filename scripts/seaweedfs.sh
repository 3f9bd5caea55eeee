#!/usr/bin/env bash
# One SeaweedFS (`weed server` with its S3 gateway) on 127.0.0.1 for a test run.
#   scripts/seaweedfs.sh start DIR   starts it with its data in DIR, makes the bucket, writes
#                                    DIR/env (the AIRLOCK_TEST_S3_* variables the tests read)
#   scripts/seaweedfs.sh stop DIR    stops it and removes DIR
# The S3 gateway takes an access key and secret (random per run) and refuses anonymous requests.
set -euo pipefail
weed="${WEED:-${AIRLOCK_PYTOOLS:-$HOME/.cache/airlock-pytools}/bin/weed}"
command -v "$weed" >/dev/null 2>&1 || weed=weed
action="${1:?start or stop}"
dir="${2:?a directory}"
case "$action" in
start)
  mkdir -p "$dir/data"
  # Ports: a random base, so that two runs on one machine do not meet (gRPC ports are +10000).
  base=$((20000 + RANDOM % 15000))
  key="airlock-test-$RANDOM$RANDOM"
  secret="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  cat > "$dir/s3.json" <<JSON
{"identities":[{"name":"airlock-test","credentials":[{"accessKey":"$key","secretKey":"$secret"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
  "$weed" server -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port=$((base)) -volume.port=$((base + 1)) -filer.port=$((base + 2)) \
    -s3 -s3.port=$((base + 3)) -s3.config="$dir/s3.json" -s3.port.iceberg=0 -s3.port.lance=0 \
    -master.telemetry=false -master.volumeSizeLimitMB=512 -volume.max=64 >"$dir/weed.log" 2>&1 &
  echo $! >"$dir/pid"
  endpoint="http://127.0.0.1:$((base + 3))"
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$((base + 3))") 2>/dev/null && break
    sleep 0.2
  done
  created=""
  for _ in $(seq 1 30); do
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || { tail -20 "$dir/weed.log" >&2; echo "SeaweedFS exited" >&2; exit 1; }
    if echo "s3.bucket.create -name airlock-test" | timeout 20 "$weed" shell -master="127.0.0.1:$base" 2>&1 | grep -q "created bucket"; then
      created=1
      break
    fi
    sleep 0.5
  done
  [ -n "$created" ] || { tail -20 "$dir/weed.log" >&2; echo "could not create the SeaweedFS bucket" >&2; exit 1; }
  cat >"$dir/env" <<ENV
export AIRLOCK_TEST_S3_ENDPOINT=$endpoint
export AIRLOCK_TEST_S3_BUCKET=airlock-test
export AIRLOCK_TEST_S3_ACCESS_KEY_ID=$key
export AIRLOCK_TEST_S3_SECRET_ACCESS_KEY=$secret
ENV
  echo "SeaweedFS S3 on $endpoint (log: $dir/weed.log)" >&2
  ;;
stop)
  if [ -f "$dir/pid" ]; then
    pid="$(cat "$dir/pid")"
    # SIGTERM, up to 5 s to drain, then SIGKILL (a drain can hang).
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start|stop DIR" >&2
  exit 2
  ;;
esac
