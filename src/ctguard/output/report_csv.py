"""``report --format csv``: one row per host and finding found, with a header.

The machine id is whole (a spreadsheet joins on it); ``fleet`` holds the keys of the fleet
questions the finding answers yes to (``dropping``, ``not_persistent``, ``ram``), separated
by ``;``. A host with nothing found has no row: the JSON lists every host.

The file is opened in spreadsheets and its text comes from many hosts: a cell read from
an input that starts with ``= + - @``, a tab or a carriage return is prefixed with ``'``
so that it is not taken for a formula (OWASP, "CSV Injection"). The title is the
catalogue's, not the one a document claims.
"""

from __future__ import annotations

import csv
import io

from ctguard.catalogue import CATALOGUE, fleet_answers
from ctguard.findings import Finding
from ctguard.usecases.report import FleetReport

HEADER = ("hostname", "machine_id", "created_utc", "input", "id", "severity", "title", "fleet")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(text: str) -> str:
    """A cell of input text that a spreadsheet will not run.

    >>> cell("=1+2"), cell("-db2"), cell("web03")
    ("'=1+2", "'-db2", 'web03')
    """
    return "'" + text if text.startswith(_FORMULA_START) else text


def _title(f: Finding) -> str:
    pitfall = CATALOGUE.get(f.id)
    return pitfall.title if pitfall is not None else cell(f.title)


def render_report_csv(report: FleetReport) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HEADER)
    for h in report.hosts:
        for f in h.findings:
            writer.writerow(
                [
                    cell(h.hostname or ""),
                    h.machine_id or "",  # 32 hex digits or empty (doctor_document)
                    h.created_utc or "",  # a checked UTC time or empty
                    cell(h.path),
                    f.id,
                    f.severity.value,
                    _title(f),
                    ";".join(fleet_answers(f.id, f.severity)),
                ]
            )
    return buf.getvalue()
