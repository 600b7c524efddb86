#!/usr/bin/env bash
# The project's test command (README, CI): builds the release binaries the
# black-box tests drive, runs every Rust test against the real Redis, model,
# ONNX Runtime, Prometheus and Chromium, the store-ownership lint, then the monitoring checks and the
# bounded fuzz and schemathesis runs. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-test-deps.sh
cargo build --release --locked --bins
cargo test --release --locked --workspace -- --test-threads=2
# One owner of the Redis protocol: raw Redis commands outside common::store fail here (clippy.toml).
cargo clippy --release --locked --workspace --all-targets -- -D clippy::disallowed_methods -D clippy::disallowed_types
bash monitoring/check.sh
if [ -x scripts/fuzz.sh ]; then ./scripts/fuzz.sh "${FUZZ_RUNS:-20000}"; fi
if [ -x scripts/schemathesis.sh ]; then ./scripts/schemathesis.sh; fi
echo "test.sh: all tests passed"
