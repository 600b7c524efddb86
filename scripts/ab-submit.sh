#!/usr/bin/env bash
# A/B of two couplet-api binaries on the submit path, alternating so drift in
# the machine's load hits both: each round starts one binary (AUTH_MODE=off,
# no limits, a fresh KEY_PREFIX, no workers), runs the same closed loop
# (wrk -t2 -c50 -d10s, POST /v1/couplets), stops it and deletes its keys.
#   scripts/ab-submit.sh OLD_API NEW_API [ROUNDS=2] [PORT=18080]
# Needs wrk (scripts/install-bench-deps.sh) and Redis on 127.0.0.1:6379.
set -euo pipefail
old=$1 new=$2 rounds=${3:-2} port=${4:-18080}
lua=$(mktemp --suffix .lua)
trap 'rm -f "$lua"' EXIT
cat >"$lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{"theme":"春风","style":"classic","length":7,"seed":1}]==]
LUA
one() {
  local bin=$1 prefix="ab$RANDOM$RANDOM:"
  AUTH_MODE=off IP_RATE_LIMIT=0 MAX_BACKLOG=1000000 STREAM_MAXLEN=2000000 KEY_PREFIX=$prefix \
    LISTEN_ADDR=127.0.0.1:$port METRICS_ADDR=127.0.0.1:$((port + 1)) RUST_LOG=warn "$bin" serve >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
  wrk -t2 -c50 -d10s -s "$lua" "http://127.0.0.1:$port/v1/couplets" | awk '/Requests\/sec/ {print $2}'
  kill "$pid"; wait "$pid" 2>/dev/null || true
  redis-cli --scan --pattern "$prefix*" | xargs -r -n 500 redis-cli del >/dev/null
}
for r in $(seq 1 "$rounds"); do
  echo "round $r: old $(one "$old")/s  new $(one "$new")/s"
done
