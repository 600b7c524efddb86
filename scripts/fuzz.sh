#!/usr/bin/env bash
# Runs the libFuzzer target fuzz/fuzz_targets/request.rs (request bytes →
# api::body::parse_json → validate(), and the same bytes as a
# WEBHOOK_ALLOWLIST) for a fixed number of iterations; exits non-zero on a
# crash, leaving the input in fuzz/artifacts/request/ (turn it into a unit
# test in common or api, then fix).
#
#   scripts/fuzz.sh [RUNS]        default RUNS=20000 (CI)
#
# libFuzzer instrumentation needs nightly-only rustc flags (-Cpasses=sancov-module,
# -Zsanitizer); RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. The
# build is unoptimised without a sanitizer (safe Rust: the coverage-guided
# search is what matters, not ASan), which compiles about twice as fast as -O
# and still runs thousands of inputs a second. Its target folder lives outside
# the work tree (FUZZ_TARGET_DIR, default ~/.cache/couplet-fuzz-target) so a
# fresh clone on the same machine reuses it: a from-scratch build of the api
# crate's dependency tree takes a few minutes on 2 cores, a rebuild seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-20000}
TARGET=request
export RUSTC_BOOTSTRAP=1
TARGET_DIR=${FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/couplet-fuzz-target}
HOST=$(rustc -vV | sed -n 's/^host: //p')
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
t0=$(date +%s)
# The same instrumentation `cargo fuzz build --sanitizer none --dev` applies,
# without installing cargo-fuzz (minutes on a fresh CI machine); --target keeps
# the flags off build scripts and proc macros. `cargo fuzz run request` works too.
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
  cargo build --manifest-path fuzz/Cargo.toml --locked --target "$HOST" --target-dir "$TARGET_DIR" --bin "$TARGET"
t1=$(date +%s)
echo "fuzz: built in $((t1 - t0)) s; running $RUNS inputs"
mkdir -p "fuzz/artifacts/$TARGET"
# The seeds are read, new inputs go to the throw-away corpus (first folder).
"$TARGET_DIR/$HOST/debug/$TARGET" -artifact_prefix="fuzz/artifacts/$TARGET/" -runs="$RUNS" \
  -dict=fuzz/request.dict -max_len=4096 -print_final_stats=1 "$corpus" "fuzz/seeds/$TARGET"
echo "fuzz: $RUNS runs without a crash in $(( $(date +%s) - t1 )) s"
