#!/usr/bin/env bash
# Installs what `cargo run --release -p bench -- submit` needs beyond Rust,
# idempotently: wrk (the closed-loop HTTP figure) and redis-server with its
# redis-benchmark (the Redis ceilings; the bench also needs a Redis on
# BENCH_REDIS_URL, default 127.0.0.1:6379, which this starts when none answers).
# The bench runs this script itself when wrk is missing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v redis-benchmark >/dev/null || need_apt+=(redis-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-bench-deps: apt-get install ${need_apt[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "install-bench-deps: starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 50); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
wrk --version 2>&1 | head -1 || true
redis-benchmark --version
