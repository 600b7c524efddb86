#!/usr/bin/env bash
# Runs schemathesis against a live API + worker, checking that no generated
# request (positive or negative) gets a 5xx and that every response matches
# api/openapi.json. Starts its own Redis, API and worker (release binaries, a
# random KEY_PREFIX, IP_RATE_LIMIT=0) and removes them on exit.
#
#   scripts/schemathesis.sh [MAX_EXAMPLES]     default 50 per operation
#
# Generated callback URLs point anywhere, so the run is sealed off: when the
# kernel allows it, everything runs in a private network namespace whose only
# interface is loopback (no DNS, no outside address reachable); otherwise on
# the host's loopback, with webhook delivery switched off in the worker.
# Needs: redis-server, release binaries (cargo build --release --bins), and
# schemathesis (pip install schemathesis; installed here if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
MAX_EXAMPLES=${1:-50}
if [ "${SCHEMATHESIS_SEALED:-0}" != "1" ] && unshare -n true 2>/dev/null; then
  exec unshare -n env SCHEMATHESIS_SEALED=1 bash -c 'ip link set lo up && exec "$0" "$@"' "$0" "$@"
fi
for b in couplet-api couplet-worker; do
  [ -x "target/release/$b" ] || { echo "schemathesis: target/release/$b missing: run cargo build --release --bins" >&2; exit 2; }
done
if ! command -v schemathesis >/dev/null 2>&1; then
  if [ "${SCHEMATHESIS_SEALED:-0}" = "1" ]; then
    echo "schemathesis: not installed (pip install schemathesis)" >&2; exit 2
  fi
  python3 -m pip install --quiet schemathesis
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
wait_http() {
  for _ in $(seq 1 200); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "schemathesis: $1 not ready; logs in $work" >&2
  tail -20 "$work"/*.log >&2 || true
  exit 1
}
REDIS_PORT=$(free_port); API_PORT=$(free_port); WORKER_PORT=$(free_port)
PREFIX="st-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n'):"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" > "$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" ping > /dev/null 2>&1 && break; sleep 0.1; done
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT" KEY_PREFIX="$PREFIX" RUST_LOG=warn
LISTEN_ADDR="127.0.0.1:$API_PORT" IP_RATE_LIMIT=0 GENERATE_TIMEOUT_MS=5000 \
  target/release/couplet-api > "$work/api.log" 2>&1 &
pids+=($!)
METRICS_ADDR="127.0.0.1:$WORKER_PORT" WORKER_ID="st-worker" WEBHOOK_DISPATCHER=false INTRA_THREADS=1 \
  target/release/couplet-worker > "$work/worker.log" 2>&1 &
pids+=($!)
BASE="http://127.0.0.1:$API_PORT"
wait_http "$BASE/readyz"
wait_http "http://127.0.0.1:$WORKER_PORT/readyz"
echo "schemathesis: API at $BASE (sealed=${SCHEMATHESIS_SEALED:-0}), $MAX_EXAMPLES examples per operation"
t0=$(date +%s)
set +e
# From the scratch folder, so its cache (.schemathesis/) lands there, not in the work tree.
(cd "$work" && schemathesis run "$BASE/openapi.json" \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance,response_headers_conformance \
  --max-examples "$MAX_EXAMPLES" --mode all --phases examples,coverage,fuzzing,stateful \
  --request-timeout 15 --workers 2 --seed "${SCHEMATHESIS_SEED:-1}" --no-color --output-truncate true \
  ${SCHEMATHESIS_ARGS:-})
rc=$?
set -e
echo "schemathesis: exit $rc after $(( $(date +%s) - t0 )) s"
if grep -q "panicked" "$work"/*.log; then
  echo "schemathesis: a process panicked:" >&2
  grep -h -A5 "panicked" "$work"/*.log >&2
  rc=1
fi
exit $rc
