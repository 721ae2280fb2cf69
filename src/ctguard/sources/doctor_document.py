"""A ``ctguard doctor --format json`` document (``ctguard.doctor/1``), read back: what
``ctguard report`` gathers from many hosts.

Only the keys the report uses are checked, by hand: a JSON Schema validation per file
costs more than reading it, and 10,000 files must take seconds. Documents written before
doctor named its host have no ``host`` and no ``created_utc``: both are then None.

A sample, cut to one finding::

    {"schema": "ctguard.doctor/1", "source": "snapshot", "netns": null,
     "kernel": "2.6.32-696.30.1.el6.x86_64", "conntrack": "module",
     "host": {"hostname": "web03.example.com", "machine_id": null},
     "created_utc": "2024-03-05T09:30:03Z", "status": "CRITICAL", "exit_code": 2,
     "summary": {"critical": 1, "warning": 0, "info": 0, "passed": 0, "skipped": 0},
     "findings": [{"id": "CT102", "status": "found", "severity": "critical",
                   "title": "packets dropped because the table was full",
                   "evidence": ["stat drop = 94199: ..."], "fix": "...", "reason": null}]}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ctguard.errors import ParseError
from ctguard.findings import Finding, Severity, Status
from ctguard.schemas import DOCTOR, NAMES
from ctguard.sources.identity import parse_machine_id
from ctguard.sources.manifest import UTC_TIME

_ID = re.compile(r"CT[0-9]{3}")
_STATUS = {s.value: s for s in Status}
_SEVERITY = {s.value: s for s in (Severity.INFO, Severity.WARNING, Severity.CRITICAL)}


@dataclass(frozen=True)
class DoctorDocument:
    hostname: str | None
    machine_id: str | None
    created_utc: str | None  # YYYY-MM-DDTHH:MM:SSZ, which sorts as the time does
    source: str | None
    netns: str | None
    kernel: str | None
    found: tuple[Finding, ...]  # the findings found, in the document's order
    checks: int  # checks that ran: found, passed or skipped
    skipped: int


def parse_doctor_document(text: str | bytes) -> DoctorDocument:
    """One doctor JSON document; ParseError with a one-line reason for anything else.

    >>> doc = parse_doctor_document('{"schema": "ctguard.doctor/1", "findings": ['
    ...     '{"id": "CT304", "status": "found", "severity": "warning", "title": "t",'
    ...     ' "evidence": ["e"]}], "host": {"hostname": "db1", "machine_id": null}}')
    >>> doc.hostname, doc.found[0].severity.value, doc.created_utc
    ('db1', 'warning', None)
    >>> parse_doctor_document('{"name": "left-pad", "version": "1.3.0"}')
    Traceback (most recent call last):
    ...
    ctguard.errors.ParseError: not ctguard doctor JSON: no "schema" key (a foreign JSON file?)
    """
    try:
        data = json.loads(text)
    except UnicodeDecodeError:
        raise ParseError("not UTF-8 text (not a doctor JSON document)") from None
    except ValueError as exc:
        raise ParseError(f"not JSON: {exc}") from None
    except RecursionError:
        raise ParseError("not a doctor document: nested too deeply") from None
    if not isinstance(data, dict):
        raise ParseError(f"not ctguard doctor JSON: a JSON {type(data).__name__}, not an object")
    schema = data.get("schema")
    if schema != DOCTOR:
        raise ParseError(_foreign(schema))
    findings = data.get("findings")
    if not isinstance(findings, list):
        raise ParseError('damaged doctor JSON: "findings" is not a list')
    host = data.get("host")
    if host is not None and not isinstance(host, dict):
        raise ParseError('damaged doctor JSON: "host" is not an object')
    host = host or {}
    created = _text(data, "created_utc")
    if created is not None and not UTC_TIME.fullmatch(created):
        raise ParseError(f'damaged doctor JSON: "created_utc" {created[:40]!r} is not a UTC time')
    return DoctorDocument(
        hostname=_text(host, "hostname", "host."),
        machine_id=_machine_id(_text(host, "machine_id", "host.")),
        created_utc=created,
        source=_text(data, "source"),
        netns=_text(data, "netns"),
        kernel=_text(data, "kernel"),
        found=tuple(_finding(i, item) for i, item in enumerate(findings) if _found(i, item)),
        checks=len(findings),
        skipped=sum(1 for item in findings if item["status"] == "skipped"),
    )


def _machine_id(value: str | None) -> str | None:
    """As /etc/machine-id is read: 32 hex digits, lowercased (a hand-edited or foreign
    document in upper case is the same host); anything else is no id."""
    return None if value is None else parse_machine_id(value)


def _foreign(schema: object) -> str:
    if schema is None:
        return 'not ctguard doctor JSON: no "schema" key (a foreign JSON file?)'
    if isinstance(schema, str) and schema in NAMES:
        return f"{schema} is another ctguard document: report reads ctguard doctor --format json"
    if isinstance(schema, str) and schema.startswith("ctguard.doctor/"):
        return f"{schema[:40]}: a doctor document of a version this ctguard does not read"
    return f"not ctguard doctor JSON: schema {str(schema)[:40]!r}"


def _text(data: dict[str, Any], key: str, where: str = "") -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value or None
    raise ParseError(f'damaged doctor JSON: "{where}{key}" is not a string')


def _key(value: object) -> str:
    return value if isinstance(value, str) else ""  # a list or an object is no key either


def _found(index: int, item: object) -> bool:
    """Whether a finding was found; a passed or a skipped one is checked only for what
    the report counts (most of a document, so this is the hot path)."""
    if not isinstance(item, dict):
        raise ParseError(f"damaged doctor JSON: findings[{index}] is not an object")
    status = item.get("status")
    if status == "found":
        return True
    ident = item.get("id")
    if (
        status not in ("passed", "skipped")
        or not isinstance(ident, str)
        or not _ID.fullmatch(ident)
    ):
        _finding(index, item)  # says what is wrong with it
    return False


def _finding(index: int, item: object) -> Finding:
    def bad(what: str) -> ParseError:
        return ParseError(f"damaged doctor JSON: findings[{index}] {what}")

    if not isinstance(item, dict):
        raise bad("is not an object")
    ident = item.get("id")
    if not isinstance(ident, str) or not _ID.fullmatch(ident):
        raise bad('has no "id" of the form CTnnn')
    status = _STATUS.get(_key(item.get("status")))
    if status is None:
        raise bad(f"({ident}) has no status found, passed or skipped")
    severity = Severity.OK
    if status is Status.FOUND:
        found = _SEVERITY.get(_key(item.get("severity")))
        if found is None:
            raise bad(f"({ident}) is found without a severity info, warning or critical")
        severity = found
    title = item.get("title")
    evidence = item.get("evidence", [])
    if not isinstance(evidence, list) or not all(isinstance(e, str) for e in evidence):
        raise bad(f"({ident}) has evidence that is not a list of strings")
    fix, reason = item.get("fix"), item.get("reason")
    return Finding(
        ident,
        status,
        severity,
        title if isinstance(title, str) else "",
        tuple(evidence),
        fix if isinstance(fix, str) else "",
        reason if isinstance(reason, str) else "",
    )
