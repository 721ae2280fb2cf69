"""``report --format csv``: one row per host and finding found, with a header.

The machine id is whole (a spreadsheet joins on it); ``fleet`` holds the keys of the fleet
questions the finding answers yes to (``dropping``, ``not_persistent``, ``ram``), separated
by ``;``. A host with nothing found has no row: the JSON lists every host.
"""

from __future__ import annotations

import csv
import io

from ctguard.catalogue import fleet_answers
from ctguard.usecases.report import FleetReport

HEADER = ("hostname", "machine_id", "created_utc", "input", "id", "severity", "title", "fleet")


def render_report_csv(report: FleetReport) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HEADER)
    for h in report.hosts:
        for f in h.findings:
            writer.writerow(
                [
                    h.hostname or "",
                    h.machine_id or "",
                    h.created_utc or "",
                    h.path,
                    f.id,
                    f.severity.value,
                    f.title,
                    ";".join(fleet_answers(f.id, f.severity)),
                ]
            )
    return buf.getvalue()
