#!/usr/bin/env bash
# Installs what the tests need beyond Rust, idempotently: Prometheus (promtool),
# Chromium + ChromeDriver (browser test), redis-server (outage tests),
# PyYAML, schemathesis and standardwebhooks, and the ONNX Runtime library (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
need_apt=()
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
command -v redis-server >/dev/null || need_apt+=(redis-server)
# Unifont for CJK glyphs in browser screenshots (the renderer embeds its own).
[ -f /usr/share/fonts/opentype/unifont/unifont.otf ] || dpkg -s fonts-unifont >/dev/null 2>&1 || need_apt+=(fonts-unifont)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-test-deps: apt-get install ${need_apt[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # The Debian prometheus package may start its own daemon; the tests run their own.
  pkill -x prometheus 2>/dev/null || true
fi
python3 -c "import yaml, schemathesis" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check pyyaml schemathesis
# The official Standard Webhooks library verifies real deliveries in tests/tests/edge.rs.
python3 -c "import standardwebhooks" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check standardwebhooks
SETUP_SKIP_BUILD=1 ./scripts/setup.sh
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "install-test-deps: starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 50); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
