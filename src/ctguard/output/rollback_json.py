"""``ctguard rollback --format json`` (schema ``ctguard.rollback/1``) and
``rollback --list --format json`` (schema ``ctguard.journal-list/1``)."""

from __future__ import annotations

import json
from typing import Any

from ctguard.schemas import JOURNAL_LIST, ROLLBACK
from ctguard.usecases.rollback import JournalListing, RollbackReport


def rollback_dict(report: RollbackReport) -> dict[str, Any]:
    return {
        "schema": ROLLBACK,
        "status": report.status,
        "journal": report.journal,
        "entry_id": report.entry_id,
        "reason": report.reason,
        "swept": list(report.swept),
        "files": list(report.files),
        "removed": list(report.removed),
        "sysctls": list(report.sysctls),
        "commands": list(report.commands),
    }


def journal_dict(listing: JournalListing) -> dict[str, Any]:
    rows = [
        {
            "id": e.id,
            "created": e.created,
            "state": e.state,
            "meta": dict(e.meta),
            "files": [f.path for f in e.files],
            "sysctls": [s.name for s in e.sysctls],
            "commands": [c.what for c in e.commands],
        }
        for e in listing.entries
    ]
    return {"schema": JOURNAL_LIST, "entries": rows}


def render_rollback_json(report: RollbackReport) -> str:
    return json.dumps(rollback_dict(report), indent=2) + "\n"


def render_journal_json(listing: JournalListing) -> str:
    return json.dumps(journal_dict(listing), indent=2) + "\n"
