"""``ctguard plan --format json``: the plan document (schema ``ctguard.plan/1``), exactly
as ``plan -o FILE`` saves it for ``apply --plan FILE``."""

from __future__ import annotations

from ctguard.remediation.plan_file import dump_plan
from ctguard.usecases.plan import PlanReport


def render_plan_json(report: PlanReport) -> str:
    return dump_plan(report.document)
