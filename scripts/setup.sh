#!/usr/bin/env bash
# Fetches the ONNX Runtime shared library the worker loads at run time
# (`ort` is built with load-dynamic) from the PyPI wheel onnxruntime==1.31.1
# into .ort/lib/, then builds the release binaries. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
ORT_VERSION=1.31.1
LIB=.ort/lib/libonnxruntime.so.${ORT_VERSION}
if [ ! -f "$LIB" ]; then
  echo "setup: fetching onnxruntime==${ORT_VERSION} wheel from PyPI"
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: "onnxruntime==${ORT_VERSION}" -d "$tmp"
  mkdir -p .ort/lib
  python3 - "$tmp" <<'PY'
import glob, sys, zipfile, os
whl = glob.glob(os.path.join(sys.argv[1], "onnxruntime-*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if base.startswith("libonnxruntime.so") or base == "libonnxruntime_providers_shared.so":
            with z.open(name) as src, open(os.path.join(".ort/lib", base), "wb") as dst:
                dst.write(src.read())
PY
  rm -rf "$tmp"
fi
ln -sf "libonnxruntime.so.${ORT_VERSION}" .ort/lib/libonnxruntime.so
echo "setup: ONNX Runtime at $(pwd)/.ort/lib/libonnxruntime.so"
if [ "${SETUP_SKIP_BUILD:-0}" != "1" ]; then
  cargo build --release --locked --bins
fi
