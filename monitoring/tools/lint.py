#!/usr/bin/env python3
"""Checks the monitoring files for what promtool cannot see.

  1. Metric names: every `pixel_couplet_*` name in a rule, alert or panel is
     declared in common/src/metrics.rs; histograms are only used through
     _bucket/_sum/_count; label names in selectors exist on the metric.
  2. Alerts: labels severity (critical|warning) and component; annotations
     summary, description, runbook_url (an existing anchor in RUNBOOK.md) and
     query; `expr` is `query` followed by a comparison; `query` is a recording
     rule's expression verbatim or a plain selector.
  3. Tests: every alert has a firing and a silent case in alerts.test.yml;
     every alert is listed in the Alerts table of README.md.
  4. Dashboard: every target uses datasource uid couplet-prometheus and plain
     PromQL (no Grafana `$` variables); panel ids are unique.
  5. Syntax of the expressions promtool does not parse (panel targets, `query`
     annotations): they are written into a throw-away rule file and checked
     with `promtool check rules`.

Exit status 1 with one line per problem. Needs PyYAML and promtool on PATH
(or --promtool).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

MONITORING = Path(__file__).resolve().parent.parent
ROOT = MONITORING.parent
PROM = MONITORING / "prometheus"
METRICS_RS = ROOT / "common" / "src" / "metrics.rs"
RUNBOOK = MONITORING / "RUNBOOK.md"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "overview.json"
DATASOURCE_UID = "couplet-prometheus"

# Exported by the prometheus crate's process collector on both binaries.
PROCESS_METRICS = {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"}
TARGET_LABELS = {"job", "instance"}
SEVERITIES = {"critical", "warning"}
REQUIRED_ANNOTATIONS = {"summary", "description", "runbook_url", "query"}
COMPARISON = re.compile(r"^(==|!=|>=|<=|>|<)\s*")
PLAIN_SELECTOR = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^{}]*\})?$')
NAME_TOKEN = re.compile(r"(?<![\w:])(pixel_couplet_\w+|process_\w+)(?![\w:])")
SELECTOR = re.compile(r"(?<![\w:])(pixel_couplet_\w+)\{([^}]*)\}")
MATCHER_LABEL = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")

problems: list[str] = []


def problem(msg: str) -> None:
    problems.append(msg)


def norm(expr: str) -> str:
    return " ".join(expr.split())


def load_metrics() -> tuple[dict[str, set[str]], set[str]]:
    """Returns ({metric name: label names}, {histogram names}) from metrics.rs."""
    src = METRICS_RS.read_text(encoding="utf-8")
    consts = dict(re.findall(r'pub const (\w+): &str = "(pixel_couplet_\w+)";', src))
    if not consts:
        raise SystemExit(f"{METRICS_RS}: no metric name constants found")
    labels: dict[str, set[str]] = {name: set() for name in consts.values()}
    for const, lbls in re.findall(r'names::(\w+),[^;]*?&\[((?:\s*"\w+"\s*,?)+)\]', src):
        if const in consts:
            labels[consts[const]] = set(re.findall(r'"(\w+)"', lbls))
    histograms = {consts[c] for c in re.findall(r"histogram(?:_vec)?\(\s*r\s*,\s*names::(\w+)", src) if c in consts}
    return labels, histograms


def check_names(where: str, expr: str, labels: dict[str, set[str]], histograms: set[str]) -> None:
    for token in NAME_TOKEN.findall(expr):
        if token in PROCESS_METRICS:
            continue
        if token.startswith("process_"):
            problem(f"{where}: unknown process metric {token}")
            continue
        base, suffix = token, ""
        for s in ("_bucket", "_sum", "_count"):
            if token.endswith(s) and token[: -len(s)] in histograms:
                base, suffix = token[: -len(s)], s
        if base not in labels:
            problem(f"{where}: metric {token} is not declared in common/src/metrics.rs")
        elif base in histograms and not suffix:
            problem(f"{where}: histogram {token} used without _bucket/_sum/_count")
    for name, matchers in SELECTOR.findall(expr):
        base = re.sub(r"_(bucket|sum|count)$", "", name) if name not in labels else name
        if base not in labels:
            continue
        allowed = labels[base] | TARGET_LABELS | ({"le"} if name.endswith("_bucket") else set())
        for label in MATCHER_LABEL.findall(matchers):
            if label not in allowed:
                problem(f"{where}: {name} has no label {label!r} (has {sorted(labels[base])})")


def runbook_anchors() -> set[str]:
    anchors = set()
    for line in RUNBOOK.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^#{1,6}\s+(.*)$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def check_alerts(records: dict[str, str], labels, histograms) -> list[dict]:
    anchors = runbook_anchors()
    record_exprs = {norm(e) for e in records.values()}
    alerts = []
    for group in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert")
            if not name:
                problem(f"alerts.yml group {group['name']}: recording rule found, keep them in recording.yml")
                continue
            alerts.append(rule)
            where = f"alerts.yml {name}"
            lbls = rule.get("labels", {})
            if lbls.get("severity") not in SEVERITIES:
                problem(f"{where}: label severity must be one of {sorted(SEVERITIES)}")
            if not lbls.get("component"):
                problem(f"{where}: label component missing")
            ann = rule.get("annotations", {})
            missing = REQUIRED_ANNOTATIONS - ann.keys()
            if missing:
                problem(f"{where}: annotations missing: {sorted(missing)}")
                continue
            m = re.fullmatch(r"monitoring/RUNBOOK\.md#([\w\-]+)", ann["runbook_url"])
            if not m or m.group(1) not in anchors:
                problem(f"{where}: runbook_url {ann['runbook_url']!r} has no matching heading in RUNBOOK.md")
            expr, query = norm(rule["expr"]), norm(ann["query"])
            if not expr.startswith(query) or not COMPARISON.match(expr[len(query):].lstrip()):
                problem(f"{where}: expr must be the query annotation followed by a comparison")
            if query not in record_exprs and not PLAIN_SELECTOR.match(query):
                problem(f"{where}: query is neither a recording rule expression nor a plain selector")
            check_names(where, rule["expr"], labels, histograms)
    return alerts


def check_readme(alerts: list[dict]) -> None:
    readme = (MONITORING / "README.md").read_text(encoding="utf-8")
    for rule in alerts:
        if f"| {rule['alert']} |" not in readme:
            problem(f"README.md: alert {rule['alert']} missing from the Alerts table")


def check_tests(alerts: list[dict]) -> None:
    tests = yaml.safe_load((PROM / "alerts.test.yml").read_text())
    firing: dict[str, int] = {}
    silent: dict[str, int] = {}
    for t in tests.get("tests", []):
        for case in t.get("alert_rule_test", []) or []:
            bucket = firing if case.get("exp_alerts") else silent
            bucket[case["alertname"]] = bucket.get(case["alertname"], 0) + 1
    for rule in alerts:
        name = rule["alert"]
        if not firing.get(name):
            problem(f"alerts.test.yml: no case where {name} fires")
        if not silent.get(name):
            problem(f"alerts.test.yml: no case where {name} stays silent")


def check_dashboard(labels, histograms) -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    seen_ids = set()
    exprs = []
    for panel in dash["panels"]:
        pid = panel.get("id")
        if pid in seen_ids:
            problem(f"overview.json: duplicate panel id {pid}")
        seen_ids.add(pid)
        if panel.get("type") == "row":
            continue
        where = f"overview.json panel {panel.get('title')!r}"
        if not panel.get("targets"):
            problem(f"{where}: no targets")
        if not panel.get("description"):
            problem(f"{where}: no description")
        for t in panel.get("targets", []):
            if t.get("datasource", {}).get("uid") != DATASOURCE_UID:
                problem(f"{where}: target {t.get('refId')} datasource uid is not {DATASOURCE_UID}")
            expr = t.get("expr", "")
            if "$" in expr:
                problem(f"{where}: target {t.get('refId')} uses a Grafana variable; plain PromQL only")
            check_names(where, expr, labels, histograms)
            exprs.append((f"{where} {t.get('refId')}", expr))
    return exprs


def promtool_syntax(promtool: str, exprs: list[tuple[str, str]]) -> None:
    rules = [{"record": f"lint:expr_{i}", "expr": e} for i, (_, e) in enumerate(exprs)]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump({"groups": [{"name": "lint", "rules": rules}]}, f)
        path = f.name
    res = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
    Path(path).unlink()
    if res.returncode != 0:
        out = res.stdout + res.stderr
        for i, (where, _) in enumerate(exprs):
            out = out.replace(f"lint:expr_{i}", where)
        problem("PromQL syntax errors:\n" + out.strip())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--promtool", default=shutil.which("promtool") or "promtool")
    args = ap.parse_args()

    labels, histograms = load_metrics()
    records = {}
    for group in yaml.safe_load((PROM / "recording.yml").read_text())["groups"]:
        for rule in group["rules"]:
            records[rule["record"]] = rule["expr"]
            check_names(f"recording.yml {rule['record']}", rule["expr"], labels, histograms)
    alerts = check_alerts(records, labels, histograms)
    check_tests(alerts)
    check_readme(alerts)
    panel_exprs = check_dashboard(labels, histograms)
    queries = [(f"alerts.yml {r['alert']} query", r["annotations"]["query"])
               for r in alerts if "query" in r.get("annotations", {})]
    promtool_syntax(args.promtool, panel_exprs + queries)

    for p in problems:
        print(f"lint: {p}", file=sys.stderr)
    n_targets = len(panel_exprs)
    print(f"lint.py: {len(records)} recording rules, {len(alerts)} alerts, "
          f"{n_targets} panel targets checked; {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
