#!/usr/bin/env bash
# Validates the monitoring and deployment files. CI runs it; so can you.
#
#   monitoring/check.sh
#
# Steps (the first failure stops the script with a non-zero exit):
#   1. promtool check config   prometheus.yml (DNS SD is not resolved, only parsed)
#   2. promtool check rules    recording.yml alerts.yml
#   3. promtool test rules     alerts.test.yml
#   4. tools/lint.py           metric names vs common/src/metrics.rs, alert
#                              conventions, test coverage, dashboard rules
#   5. tools/dashboard.py --check   overview.json and README table up to date
#   6. YAML/JSON parse of compose.yaml, Grafana provisioning, deploy/k8s, dashboard,
#      and compose.yaml safe by default (ports on 127.0.0.1, AUTH_MODE=required,
#      secrets without defaults, no Prometheus lifecycle API)
#
# Needs promtool (Debian package `prometheus`) and python3 with PyYAML. When
# run as root with apt-get available, a missing promtool is installed; a
# missing PyYAML is installed with pip. The Debian package ships a systemd
# unit; this script never starts it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

step() { printf '\n== %s\n' "$*"; }

ensure_promtool() {
  command -v promtool >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    step "installing promtool (apt-get install prometheus)"
    # policy-rc.d keeps the package's postinst from starting the daemon.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq prometheus >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && apt-get install -y -qq prometheus >/dev/null; }
    [ "$created_policy" = 1 ] && rm -f "$policy"
  fi
  command -v promtool >/dev/null 2>&1 || {
    echo "promtool not found: install the Debian package 'prometheus' or put promtool on PATH" >&2
    exit 1
  }
}

ensure_pyyaml() {
  python3 -c 'import yaml' 2>/dev/null && return 0
  step "installing PyYAML"
  python3 -m pip install -q pyyaml >/dev/null 2>&1 \
    || python3 -m pip install -q --break-system-packages pyyaml >/dev/null
  python3 -c 'import yaml'
}

ensure_promtool
ensure_pyyaml
promtool --version 2>&1 | head -n 1

step "promtool check config"
promtool check config monitoring/prometheus/prometheus.yml

step "promtool check rules"
promtool check rules monitoring/prometheus/recording.yml monitoring/prometheus/alerts.yml

step "promtool test rules"
promtool test rules monitoring/prometheus/alerts.test.yml

step "lint"
python3 monitoring/tools/lint.py

step "generated dashboard"
python3 monitoring/tools/dashboard.py --check

step "parse compose, provisioning, k8s manifests, dashboard"
python3 - <<'PY'
import glob, json, sys
import yaml

failed = False
yaml_files = ["compose.yaml"] + sorted(
    glob.glob("monitoring/grafana/provisioning/**/*.yml", recursive=True)
    + glob.glob("deploy/k8s/*.yaml")
)
for path in yaml_files:
    try:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        print(f"ok  {path} ({len(docs)} document(s))")
    except Exception as e:  # report every broken file, then fail
        print(f"BAD {path}: {e}")
        failed = True

compose = yaml.safe_load(open("compose.yaml"))
worker = compose["services"]["worker"]
for key in ("container_name", "ports"):
    if key in worker:
        print(f"BAD compose.yaml: worker must not set {key} (breaks --scale worker=N)")
        failed = True

# Safe by default (see compose.yaml's header and deploy/README.md). Each rule
# prints what it found so a failure names the service and the setting.
import re
def bad(msg):
    global failed
    print(f"BAD compose.yaml: {msg}")
    failed = True
def env_of(svc):
    e = svc.get("environment") or {}
    return e if isinstance(e, dict) else dict(x.split("=", 1) for x in e)
def no_default(value):
    # `${VAR}` or `${VAR:?msg}` only: `${VAR:-x}` / `${VAR-x}` / a literal would be a known secret.
    return isinstance(value, str) and re.fullmatch(r"\$\{[A-Z_][A-Z0-9_]*(:?\?[^}]*)?\}", value) is not None
for name, svc in compose["services"].items():
    for p in svc.get("ports", []) or []:
        spec = p if isinstance(p, str) else f"{p.get('host_ip', '')}:{p.get('published', '')}"
        if not (spec.startswith("127.0.0.1:") or spec.startswith("[::1]:")):
            bad(f"{name} publishes port {spec!r} on every interface; bind it to 127.0.0.1")
    env = env_of(svc)
    if name in ("api", "worker"):
        if env.get("AUTH_MODE") != "required":
            bad(f"{name}: AUTH_MODE is {env.get('AUTH_MODE')!r}, must be 'required'")
        if not no_default(env.get("WEBHOOK_SECRET")):
            bad(f"{name}: WEBHOOK_SECRET {env.get('WEBHOOK_SECRET')!r} must come from .env with no default (${{WEBHOOK_SECRET:?...}})")
    if name == "prometheus" and any("web.enable-lifecycle" in str(a) for a in svc.get("command", [])):
        bad("prometheus: --web.enable-lifecycle lets anyone who reaches it shut Prometheus down")
    if name == "grafana" and not no_default(env.get("GF_SECURITY_ADMIN_PASSWORD")):
        bad(f"grafana: GF_SECURITY_ADMIN_PASSWORD {env.get('GF_SECURITY_ADMIN_PASSWORD')!r} must come from .env with no default")
if not failed:
    print("ok  compose.yaml is safe by default (loopback ports, AUTH_MODE=required, no default secrets, no lifecycle API)")

for path in sorted(glob.glob("monitoring/grafana/dashboards/*.json")):
    try:
        dash = json.load(open(path))
        n = sum(len(p.get("targets", [])) for p in dash["panels"])
        print(f"ok  {path} ({len(dash['panels'])} panels, {n} targets)")
    except Exception as e:
        print(f"BAD {path}: {e}")
        failed = True
sys.exit(1 if failed else 0)
PY

printf '\nmonitoring/check.sh: all checks passed\n'
