"""``ctguard plan --format sh``: the plan as a POSIX shell script for a host that cannot run
ctguard (remediation/plan_script.py makes it from the plan's own bytes and values)."""

from __future__ import annotations

from ctguard.remediation.plan_script import plan_script
from ctguard.usecases.plan import PlanReport


def render_plan_sh(report: PlanReport) -> str:
    return plan_script(report.plan, report.identity, report.document["checksum"])
