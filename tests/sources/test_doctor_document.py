"""Doctor documents read back for ``ctguard report``: what is kept, and every way a file
that is not one is told apart (one line, ParseError, never another exception)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctguard.errors import ParseError
from ctguard.findings import Severity, Status
from ctguard.sources.doctor_document import DoctorDocument, parse_doctor_document
from fleet_samples import RHEL6, doctor_document


@pytest.fixture(scope="module")
def real() -> dict[str, Any]:
    return doctor_document(RHEL6)


def test_a_real_document_keeps_what_the_report_counts(real: dict[str, Any]) -> None:
    doc = parse_doctor_document(json.dumps(real))
    found = [f for f in real["findings"] if f["status"] == "found"]
    assert [(f.id, f.severity.value, f.title, list(f.evidence)) for f in doc.found] == [
        (f["id"], f["severity"], f["title"], f["evidence"]) for f in found
    ]
    assert all(f.status is Status.FOUND for f in doc.found)
    assert doc.checks == len(real["findings"])
    assert doc.skipped == sum(1 for f in real["findings"] if f["status"] == "skipped")
    assert (doc.hostname, doc.machine_id) == (real["host"]["hostname"], real["host"]["machine_id"])
    assert doc.created_utc == real["created_utc"]


def test_a_document_from_before_doctor_named_hosts(real: dict[str, Any]) -> None:
    old = {k: v for k, v in real.items() if k not in ("host", "created_utc")}
    doc = parse_doctor_document(json.dumps(old))
    assert (doc.hostname, doc.machine_id, doc.created_utc) == (None, None, None)
    assert len(doc.found) == sum(1 for f in real["findings"] if f["status"] == "found")


def _broken(real: dict[str, Any], path: tuple[Any, ...], value: Any) -> str:
    doc = copy.deepcopy(real)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        (("schema",), "ctguard.doctor/2", "version this ctguard does not read"),
        (("schema",), "ctguard.plan/1", "another ctguard document"),
        (("findings",), {}, '"findings" is not a list'),
        (("host",), "web1", '"host" is not an object'),
        (("host", "hostname"), 7, '"host.hostname" is not a string'),
        (("created_utc",), "yesterday", "is not a UTC time"),
        (("findings", 0), "CT101", "findings[0] is not an object"),
        (("findings", 0, "id"), "CT1", 'findings[0] has no "id"'),
        (("findings", 0, "status"), ["found"], "no status found, passed or skipped"),
    ],
)
def test_damage_is_named(
    real: dict[str, Any], path: tuple[Any, ...], value: Any, words: str
) -> None:
    with pytest.raises(ParseError, match=None) as caught:
        parse_doctor_document(_broken(real, path, value))
    assert words in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [("severity", "ok", "without a severity"), ("evidence", "one line", "not a list of strings")],
)
def test_a_found_finding_is_checked_whole(
    real: dict[str, Any], key: str, value: str, words: str
) -> None:
    """Only found findings are read past their ID and status (passed and skipped ones are
    counted, not shown)."""
    index = next(i for i, f in enumerate(real["findings"]) if f["status"] == "found")
    with pytest.raises(ParseError, match=words):
        parse_doctor_document(_broken(real, ("findings", index, key), value))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
_FINDING = st.fixed_dictionaries(
    {},
    optional={
        "id": st.sampled_from(["CT102", "CT304", "CT1", 7]) | _JSON,
        "status": st.sampled_from(["found", "passed", "skipped", "FOUND"]) | _JSON,
        "severity": st.sampled_from(["info", "warning", "critical", None]) | _JSON,
        "title": _JSON,
        "evidence": st.lists(st.text(max_size=5), max_size=2) | _JSON,
    },
)
_DOCUMENT = st.fixed_dictionaries(
    {"schema": st.just("ctguard.doctor/1")},
    optional={
        "findings": st.lists(_FINDING, max_size=4) | _JSON,
        "host": st.fixed_dictionaries({}, optional={"hostname": _JSON, "machine_id": _JSON})
        | _JSON,
        "created_utc": st.just("2026-12-07T10:00:00Z") | _JSON,
        "kernel": _JSON,
    },
)


@settings(max_examples=300, deadline=None)
@given(document=_DOCUMENT)
def test_any_shape_is_a_document_or_a_parse_error(document: dict[str, Any]) -> None:
    try:
        doc = parse_doctor_document(json.dumps(document))
    except ParseError:
        return
    assert isinstance(doc, DoctorDocument)
    assert all(f.severity is not Severity.OK for f in doc.found)
