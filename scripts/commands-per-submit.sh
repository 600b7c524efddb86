#!/usr/bin/env bash
# Redis commands and round trips per submission, through the real API.
#
#   scripts/commands-per-submit.sh [API_BINARY] [N]
#
# Starts API_BINARY (default target/release/couplet-api, else target/debug)
# in AUTH_MODE=required under a random KEY_PREFIX against REDIS_URL (default
# redis://127.0.0.1:6379), creates a rate-limited key, and sends N submissions
# of each kind: plain, with a fresh Idempotency-Key, and idempotent replays.
# It records Redis's MONITOR feed meanwhile and attributes to the run every
# command naming the prefix plus the commands a script it started ran
# ("lua" lines: a script runs atomically, so they follow its EVALSHA).
# Other clients of the same Redis are not counted, so it can run next to
# other work; the API's periodic XGROUP CREATE is left out (not per request).
# Works with any version of the API binary, so a before/after comparison is
# two runs of this script. Needs curl and redis-cli.
set -euo pipefail
cd "$(dirname "$0")/.."

api=${1:-}
if [[ -z $api ]]; then
  api=target/release/couplet-api
  [[ -x $api ]] || api=target/debug/couplet-api
fi
n=${2:-100}
url=${REDIS_URL:-redis://127.0.0.1:6379}
prefix="t-cps-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n'):"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
work=$(mktemp -d)

cleanup() {
  [[ -n ${mon:-} ]] && kill "$mon" 2>/dev/null || true
  [[ -n ${srv:-} ]] && kill "$srv" 2>/dev/null || true
  redis-cli -u "$url" --scan --pattern "${prefix}*" | xargs -r redis-cli -u "$url" del >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

export REDIS_URL=$url KEY_PREFIX=$prefix
# Debug builds of the warp route tree need more than the default 2 MiB of stack per thread.
export RUST_MIN_STACK=${RUST_MIN_STACK:-16777216}
key=$("$api" keys create --name cps --rate 100000/s --burst 100000 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
AUTH_MODE=required LISTEN_ADDR=127.0.0.1:$port RUST_LOG=warn "$api" >"$work/api.log" 2>&1 &
srv=$!
for i in $(seq 101); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break
  if [[ $i == 101 ]] || ! kill -0 "$srv" 2>/dev/null; then
    echo "the API did not become ready:" >&2
    cat "$work/api.log" >&2
    exit 1
  fi
  sleep 0.1
done

post() { # post SEQ [IDEMPOTENCY-KEY]
  local extra=()
  [[ -n ${2:-} ]] && extra=(-H "Idempotency-Key: $2")
  curl -s -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$port/v1/couplets" -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' "${extra[@]}" -d "{\"theme\":\"春\",\"seed\":$1}"
}

measure() { # measure LABEL FUNCTION
  local label=$1 fn=$2
  redis-cli -u "$url" monitor >"$work/mon" &
  mon=$!
  sleep 0.3
  "$fn" >"$work/codes"
  sleep 0.3
  kill "$mon"; wait "$mon" 2>/dev/null || true; mon=
  local codes
  codes=$(sort "$work/codes" | uniq -c | awk '{printf "%s×%s ", $1, $2}')
  awk -v p="$prefix" -v n="$n" -v label="$label" -v codes="$codes" '
    / \[[0-9]+ lua\] / { if (ours) { cmd[toupper($4)]++; total++ } next }
    { ours = index($0, "\"" p) > 0 && toupper($4) != "\"XGROUP\"" && toupper($4) != "\"SUBSCRIBE\"" }
    ours { cmd[toupper($4)]++; total++; trips++ }
    END {
      printf "%-28s %5.1f commands, %4.2f round trips per submission  (HTTP %s)\n", label, total / n, trips / n, codes
      for (c in cmd) printf "    %-22s %5.2f\n", c, cmd[c] / n | "sort"
      close("sort")
    }' "$work/mon"
}

plain() { for i in $(seq "$n"); do post "$i"; done; }
fresh() { for i in $(seq "$n"); do post "$i" "cps-$i"; done; }
replay() { for i in $(seq "$n"); do post "$i" "cps-$i"; done; }

echo "API: $api ($(stat -c %y "$api" | cut -d. -f1)), N=$n, prefix $prefix"
measure "plain submission" plain
measure "with a new Idempotency-Key" fresh
measure "idempotent replay" replay
