"""The JSON documents ctguard prints or writes: each one's id, defined here and nowhere
else, and its JSON Schema (draft 2020-12), ``<name>.schema.json`` beside this file.

A document names its id in its ``schema`` key (the snapshot manifest in ``format``). The
number after the slash changes only when a change would break a reader: a key removed or
renamed, a type or a meaning changed. docs/json-schemas.md lists which command prints
which document.

The renderers import only the ids; the schema files are read by ``load`` (the tests).
"""

from __future__ import annotations

import json
from typing import Any

DOCTOR = "ctguard.doctor/1"
STATUS = "ctguard.status/1"
ANALYZE = "ctguard.analyze/1"
PLAN = "ctguard.plan/1"
NOTRACK = "ctguard.notrack/1"
NOTRACK_VERIFY = "ctguard.notrack-verify/2"
DISABLE = "ctguard.disable/1"
JOURNAL = "ctguard.journal/1"
JOURNAL_LIST = "ctguard.journal-list/1"
SNAPSHOT = "ctguard.snapshot/1"
EXPLAIN = "ctguard.explain/1"
TOP = "ctguard.top/1"
APPLY = "ctguard.apply/1"
ROLLBACK = "ctguard.rollback/1"
REPORT = "ctguard.report/1"

# id -> name of its schema file (<name>.schema.json)
NAMES: dict[str, str] = {
    DOCTOR: "doctor",
    STATUS: "status",
    ANALYZE: "analyze",
    PLAN: "plan",
    NOTRACK: "notrack",
    NOTRACK_VERIFY: "notrack-verify",
    DISABLE: "disable",
    JOURNAL: "journal",
    JOURNAL_LIST: "journal-list",
    SNAPSHOT: "snapshot",
    EXPLAIN: "explain",
    TOP: "top",
    APPLY: "apply",
    ROLLBACK: "rollback",
    REPORT: "report",
}


def load(name: str) -> dict[str, Any]:
    """The schema ``<name>.schema.json``, e.g. ``load("doctor")`` or ``load(NAMES[DOCTOR])``.

    >>> load("doctor")["properties"]["schema"]["const"] == DOCTOR
    True
    """
    from importlib import resources

    if name not in NAMES.values():
        raise KeyError(f"no schema {name!r}; known: {', '.join(sorted(NAMES.values()))}")
    text = resources.files(__name__).joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
