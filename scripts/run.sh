#!/usr/bin/env bash
# Sets up (ONNX Runtime library, release build) and runs the service locally:
# Redis (reused if one answers on 127.0.0.1:6379, else redis-server is
# started), one worker in the background and the API in the foreground on
# http://127.0.0.1:8080 (AUTH_MODE=off unless set). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  if command -v redis-server >/dev/null; then
    echo "run: starting redis-server on 127.0.0.1:6379"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    sleep 0.5
  else
    echo "run: no Redis answers on 127.0.0.1:6379 and redis-server is not installed" >&2
    exit 1
  fi
fi
./target/release/couplet-worker &
WORKER=$!
trap 'kill $WORKER 2>/dev/null || true' EXIT INT TERM
echo "run: UI and API on http://${LISTEN_ADDR:-127.0.0.1:8080}/ , worker metrics on http://${METRICS_ADDR:-127.0.0.1:9091}/metrics"
./target/release/couplet-api
