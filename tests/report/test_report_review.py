"""``ctguard report`` on hand-made doctor documents: identities, duplicates and hostile
text (a document is input from many hosts: its strings are not trusted)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from ctguard.catalogue import CATALOGUE
from ctguard.sources.doctor_document import parse_doctor_document
from fleet_samples import run

MID = "4b6fd9c1e63a4a58a2de5d3bc9e0a4f1"
OTHER = "0123456789abcdef0123456789abcdef"


def finding(
    ident: str, severity: str, title: str = "t", evidence: tuple[str, ...] = ()
) -> dict[str, Any]:
    return {
        "id": ident,
        "status": "found",
        "severity": severity,
        "title": title,
        "evidence": list(evidence),
        "fix": "",
        "reason": None,
    }


def document(
    hostname: str | None,
    mid: str | None,
    created: str | None,
    findings: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "schema": "ctguard.doctor/1",
        "source": "snapshot",
        "netns": None,
        "kernel": None,
        "host": {"hostname": hostname, "machine_id": mid},
        "created_utc": created,
        "findings": [*findings, {"id": "CT101", "status": "passed"}],  # one check ran
    }


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc))
    return path


def report_json(*paths: Path) -> dict[str, Any]:
    _code, out, err = run(["report", *map(str, paths), "--format", "json"])
    assert out, err
    result: dict[str, Any] = json.loads(out)
    return result


def test_machine_id_is_read_as_etc_machine_id_is() -> None:
    doc = document("db1", MID.upper(), None, [])
    assert parse_doctor_document(json.dumps(doc)).machine_id == MID
    for bad in ("uninitialized", MID[:31], MID + "0", "z" * 32):
        doc = document("db1", bad, None, [])
        assert parse_doctor_document(json.dumps(doc)).machine_id is None, bad


def test_one_host_in_two_cases_counts_once(tmp_path: Path) -> None:
    old = write(tmp_path / "old.json", document("db1", MID.upper(), "2026-11-01T00:00:00Z", []))
    new = write(tmp_path / "new.json", document("db1", MID, "2026-11-02T00:00:00Z", []))
    doc = report_json(old, new)
    assert doc["summary"]["hosts"] == 1
    assert [h["machine_id"] for h in doc["hosts"]] == [MID]
    assert len(doc["duplicates"]) == 1


def test_a_host_read_before_it_had_an_id_is_one_host(tmp_path: Path) -> None:
    stale = document("db1", None, "2026-11-01T00:00:00Z", [finding("CT102", "critical")])
    write(tmp_path / "a.json", stale)
    write(tmp_path / "b.json", document("db1", MID, "2026-11-02T00:00:00Z", []))
    code, out, _err = run(["report", str(tmp_path), "--format", "json"])
    doc = json.loads(out)
    assert doc["summary"]["hosts"] == 1
    assert [h["machine_id"] for h in doc["hosts"]] == [MID]
    assert [d["input"] for d in doc["duplicates"]] == [str(tmp_path / "a.json")]
    assert code == 0 and doc["findings"] == []


def test_id_less_readings_stay_apart_when_the_hostname_has_two_ids(tmp_path: Path) -> None:
    write(tmp_path / "a.json", document("db1", None, "2026-11-01T00:00:00Z", []))
    write(tmp_path / "b.json", document("db1", MID, "2026-11-02T00:00:00Z", []))
    write(tmp_path / "c.json", document("db1", OTHER, "2026-11-02T00:00:00Z", []))
    doc = report_json(tmp_path)
    assert doc["summary"]["hosts"] == 3 and doc["duplicates"] == []


def test_csv_cells_from_inputs_are_not_formulas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hostile = '=HYPERLINK("http://evil.example/","x")'
    title = "@SUM(1+1)"
    write(tmp_path / "a.json", document(hostile, None, None, [finding("CT102", "critical", title)]))
    write(tmp_path / "+b.json", document("-db2", MID, None, [finding("CT999", "warning", title)]))
    write(tmp_path / "c.json", document("\tdb3", OTHER, None, [finding("CT102", "critical")]))
    monkeypatch.chdir(tmp_path)  # the input column is the path as given: "+b.json"
    _code, out, err = run(["report", "+b.json", "a.json", "c.json", "--format", "csv"])
    assert err == ""
    rows = list(csv.DictReader(io.StringIO(out)))
    assert sorted(r["hostname"] for r in rows) == sorted(["'" + hostile, "'-db2", "'\tdb3"])
    starts = ("=", "+", "-", "@", "\t", "\r")
    assert sorted(r["input"] for r in rows) == ["'+b.json", "a.json", "c.json"]
    assert not [v for r in rows for v in r.values() if v.startswith(starts)]
    by_id = {r["id"]: r["title"] for r in rows}
    assert by_id["CT102"] == CATALOGUE["CT102"].title  # the catalogue's, not the document's
    assert by_id["CT999"] == "'" + title  # not in the catalogue: the document's, defused


def test_text_output_prints_no_control_characters_from_inputs(tmp_path: Path) -> None:
    evil = "\x1b]0;owned\x07\x1b[2J\x9b31m\r"
    bad = finding("CT999", "critical", f"title{evil}", (f"evidence{evil}",))
    write(tmp_path / f"a{evil}.json", document(f"web{evil}", None, None, [bad]))
    _code, out, err = run(["report", str(tmp_path), "--verbose"])
    assert err == ""
    for word in ("web", "title", "evidence"):
        assert f"{word}?]0;owned??[2J?31m?" in out, word
    controls = [c for c in out if c != "\n" and (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F)]
    assert controls == []


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("2026-11-02T08:00:00Z", "2026-11-02T08:00:00Z"),
        ("9999-99-99 bogus, sorts after every time", None),
        ("2026-11-02T08:00:00+01:00", None),
        ("2026-11-02T08:00:00Z\n", None),
    ],
)
def test_a_manifest_time_is_taken_only_in_doctors_form(
    tmp_path: Path, given: str, kept: str | None
) -> None:
    root = tmp_path / "snap"
    root.mkdir()
    (root / "ctguard_manifest.json").write_text(json.dumps({"created_utc": given}))
    _code, out, err = run(["doctor", "--root", str(root), "--format", "json"])
    assert json.loads(out)["created_utc"] == kept, err


def test_an_id_listed_twice_counts_its_host_once(tmp_path: Path) -> None:
    twice = [finding("CT102", "warning"), finding("CT102", "critical")]
    path = write(tmp_path / "a.json", document("db1", MID, None, twice))
    doc = report_json(path)
    (spread,) = doc["findings"]
    assert spread["count"] == 1 and len(spread["hosts"]) == 1
    assert spread["worst"] == spread["hosts"][0]["severity"] == "critical"
    assert spread["headline"].startswith("CT102 critical on 1 host")


def test_an_input_given_twice_is_read_once(tmp_path: Path) -> None:
    path = write(tmp_path / "a.json", document("db1", MID, None, []))
    (tmp_path / "link.json").symlink_to(path)
    doc = report_json(path, path, tmp_path)
    assert doc["summary"]["inputs"] == doc["summary"]["hosts"] == 1
    assert doc["duplicates"] == []
