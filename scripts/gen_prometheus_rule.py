#!/usr/bin/env python3
"""Write deploy/kubernetes/prometheusrule.yaml, the Prometheus Operator's PrometheusRule,
from deploy/prometheus/ctguard-alerts.yml, the one source of the alert rules.

    .venv/bin/python scripts/gen_prometheus_rule.py            regenerate it
    .venv/bin/python scripts/gen_prometheus_rule.py --check    exit 1 if it is stale

The rule file's ``groups:`` block is copied line for line under ``spec:`` (indented two
spaces), so its comments and quoting stay as written; tests/deploy/test_deploy_files.py
checks that the file is current and parses to the same groups.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "deploy" / "prometheus" / "ctguard-alerts.yml"
OUT = REPO / "deploy" / "kubernetes" / "prometheusrule.yaml"

HEADER = """\
# Generated from deploy/prometheus/ctguard-alerts.yml by scripts/gen_prometheus_rule.py;
# do not edit by hand. docs/alerts.md says what each alert means.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: ctguard
  labels:
    app.kubernetes.io/name: ctguard-exporter
spec:
"""


def render(rules_text: str) -> str:
    lines = rules_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("groups:"))
    body = [f"  {line}" if line.strip() else "" for line in lines[start:]]
    return HEADER + "\n".join(body) + "\n"


def main(argv: list[str]) -> int:
    text = render(RULES.read_text(encoding="utf-8"))
    if argv == ["--check"]:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT.relative_to(REPO)} is stale: run scripts/gen_prometheus_rule.py")
            return 1
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
