#!/usr/bin/env python3
"""Lists every PromQL expression of the monitoring setup, and evaluates them on a live Prometheus.

Sources, in this order:
  record       monitoring/prometheus/recording.yml   rules[].expr
  alert_query  monitoring/prometheus/alerts.yml      rules[].annotations.query
  alert_expr   monitoring/prometheus/alerts.yml      rules[].expr (with threshold)
  panel        monitoring/grafana/dashboards/overview.json   panels[].targets[].expr

Usage:
  exprs.py                      print one JSON object per expression
  exprs.py --eval http://127.0.0.1:9090
                                run each record/alert_query/panel expression as
                                an instant query; exit 1 if any errors or returns
                                no series. alert_expr is skipped: an alert's
                                expression is empty by design while it does not
                                fire, its `query` annotation is checked instead.

This is the contract the Rust integration test follows (it may reimplement
it): on a Prometheus scraping couplet-api and couplet-worker that have served
2xx, 422, 429 and 503 responses, processed jobs and delivered webhooks, every
expression above except alert_expr returns at least one series. A NaN sample
(e.g. a ratio over a window with no events) counts as data.

Needs PyYAML; no other dependency.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

MONITORING = Path(__file__).resolve().parent.parent
RECORDING = MONITORING / "prometheus" / "recording.yml"
ALERTS = MONITORING / "prometheus" / "alerts.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "overview.json"


def collect() -> list[dict]:
    out: list[dict] = []
    for group in yaml.safe_load(RECORDING.read_text())["groups"]:
        for rule in group["rules"]:
            out.append({"kind": "record", "name": rule["record"], "expr": rule["expr"]})
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            query = rule.get("annotations", {}).get("query")
            if query is not None:
                out.append({"kind": "alert_query", "name": rule["alert"], "expr": query})
            out.append({"kind": "alert_expr", "name": rule["alert"], "expr": rule["expr"]})
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            out.append({
                "kind": "panel",
                "name": f"{panel['title']} [{target['refId']}]",
                "expr": target["expr"],
            })
    return out


def instant_query(base: str, expr: str, timeout: float) -> dict:
    url = base.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.load(resp)


def evaluate(base: str, timeout: float) -> int:
    failures = 0
    checked = 0
    for e in collect():
        if e["kind"] == "alert_expr":
            continue
        checked += 1
        try:
            body = instant_query(base, e["expr"], timeout)
        except (urllib.error.URLError, OSError, ValueError) as err:
            print(f"ERROR {e['kind']} {e['name']}: {err}")
            failures += 1
            continue
        result = body.get("data", {}).get("result", [])
        if body.get("status") != "success":
            print(f"ERROR {e['kind']} {e['name']}: {body.get('error')}")
            failures += 1
        elif not result:
            print(f"EMPTY {e['kind']} {e['name']}: {e['expr']}")
            failures += 1
        else:
            print(f"ok    {e['kind']} {e['name']}: {len(result)} series")
    print(f"{checked - failures} passed, {failures} failed")
    return 1 if failures else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval", metavar="PROMETHEUS_URL", help="evaluate against this Prometheus")
    ap.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args()
    if args.eval:
        return evaluate(args.eval, args.timeout)
    for e in collect():
        print(json.dumps(e, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
