"""``doctor --format json``: schema ``ctguard.doctor/1`` (docs/json-schemas.md).

One object per rule that ran, found, passed or skipped, in ID order; keys are stable.
"""

from __future__ import annotations

import json
from typing import Any

from ctguard.findings import Severity, Status
from ctguard.schemas import DOCTOR as SCHEMA
from ctguard.usecases.doctor import DoctorReport


def doctor_dict(report: DoctorReport) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "source": report.source,
        "netns": report.netns,
        "kernel": report.kernel,
        "conntrack": report.conntrack,
        "host": {"hostname": report.host.hostname, "machine_id": report.host.machine_id},
        "created_utc": report.created_utc,
        "status": report.status,
        "exit_code": report.exit_code,
        "summary": {
            "critical": report.count(Status.FOUND, Severity.CRITICAL),
            "warning": report.count(Status.FOUND, Severity.WARNING),
            "info": report.count(Status.FOUND, Severity.INFO),
            "passed": report.count(Status.PASSED),
            "skipped": report.count(Status.SKIPPED),
        },
        "findings": [
            {
                "id": f.id,
                "status": f.status.value,
                "severity": f.severity.value if f.found else None,
                "title": f.title,
                "evidence": list(f.evidence),
                "fix": f.fix or None,
                "reason": f.reason or None,
            }
            for f in report.findings
        ],
    }


def render_doctor_json(report: DoctorReport) -> str:
    return json.dumps(doctor_dict(report), indent=2) + "\n"
