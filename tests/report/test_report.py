"""``ctguard report``: the fleet view, checked against the doctor documents it was given.

The fleet is made of real doctor outputs of fixture snapshots under other identities
(fleet_samples.py); every expected number is counted from those documents here.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from ctguard.catalogue import CATALOGUE
from fleet_samples import (
    RANK,
    RHEL6,
    Member,
    as_host,
    doctor_document,
    found,
    machine_id,
    run,
    write_fleet,
)

# The fleet questions as the issue states them (catalogue.FLEET_QUESTIONS holds the same):
DROPPING = {"CT102": "critical"}  # ID -> least severity that counts
NOT_PERSISTENT = {i: "info" for i in ("CT301", "CT302", "CT303", "CT304")}
RAM = {"CT201": "critical"}


def answers(member: Member, question: dict[str, str]) -> bool:
    return any(RANK[sev] >= RANK[question[i]] for i, sev in member.found.items() if i in question)


def report_json(*args: str | Path) -> tuple[int, dict[str, Any], str]:
    code, out, err = run(["report", *map(str, args), "--format", "json"])
    return code, json.loads(out) if out else {}, err


@pytest.fixture
def fleet(tmp_path: Path) -> tuple[Path, list[Member]]:
    dest = tmp_path / "fetched"
    return dest, write_fleet(dest, 14)


def test_fleet_numbers_come_from_the_documents(fleet: tuple[Path, list[Member]]) -> None:
    dest, members = fleet
    code, doc, err = report_json(dest)
    assert err == ""
    assert doc["summary"]["hosts"] == len(members) == doc["summary"]["inputs"]
    by_key = {q["key"]: q for q in doc["fleet"]}
    for key, question in (("dropping", DROPPING), ("not_persistent", NOT_PERSISTENT), ("ram", RAM)):
        want = sorted(m.key[0] for m in members if answers(m, question))
        assert want, f"the sample fleet should exercise {key}"
        assert sorted(h["hostname"] for h in by_key[key]["hosts"]) == want
        assert by_key[key]["count"] == len(want)
    worst = max((RANK[s] for m in members for s in m.found.values()), default=0)
    assert code == {3: 2, 2: 1}.get(worst, 0) == doc["exit_code"]


def test_each_finding_names_its_hosts_worst_first(fleet: tuple[Path, list[Member]]) -> None:
    dest, members = fleet
    _code, doc, _err = report_json(dest)
    ids = {i for m in members for i in m.found}
    assert [f["id"] for f in doc["findings"]] and {f["id"] for f in doc["findings"]} == ids
    for f in doc["findings"]:
        having = [m for m in members if f["id"] in m.found]
        worst = max((m.found[f["id"]] for m in having), key=RANK.__getitem__)
        assert f["count"] == len(having) == len(f["hosts"])
        assert f["worst"] == worst
        title = CATALOGUE[f["id"]].title
        assert f["headline"] == f"{f['id']} {worst} on {len(having)} hosts: {title}"
        severities = [RANK[h["severity"]] for h in f["hosts"]]
        assert severities == sorted(severities, reverse=True)
    order = [(RANK[f["worst"]], f["count"]) for f in doc["findings"]]
    assert order == sorted(order, reverse=True)
    hosts_worst = [RANK.get(h["worst"], 0) for h in doc["hosts"]]
    assert hosts_worst == sorted(hosts_worst, reverse=True)


def test_text_and_html_never_show_a_whole_machine_id(fleet: tuple[Path, list[Member]]) -> None:
    dest, members = fleet
    for fmt in ("text", "html"):
        code, out, err = run(["report", str(dest), "--format", fmt])
        assert code in (1, 2), err
        for m in members:
            whole = m.document["host"]["machine_id"]
            assert whole not in out
            assert whole[:8] in out
            assert m.key[0] in out
    code, out, _err = run(["report", str(dest)])
    first = out.index("fleet")
    assert first < out.index("by finding") < out.index("by host")


def test_csv_has_a_row_per_host_and_finding(fleet: tuple[Path, list[Member]]) -> None:
    dest, members = fleet
    code, out, err = run(["report", str(dest), "--format", "csv"])
    assert code in (1, 2), err
    header, *rows = list(csv.reader(io.StringIO(out)))
    assert header[:7] == [
        "hostname",
        "machine_id",
        "created_utc",
        "input",
        "id",
        "severity",
        "title",
    ]
    got = sorted((r[0], r[1], r[4], r[5]) for r in rows)
    want = sorted((m.key[0], m.key[1], i, sev) for m in members for i, sev in m.found.items())
    assert got == want


def test_newest_reading_of_a_host_wins(tmp_path: Path) -> None:
    base = doctor_document(RHEL6)
    mid = machine_id(1)
    readings = {
        "old.json": as_host(base, "db1", mid, "2026-11-01T08:00:00Z"),
        "new.json": as_host(base, "db1", mid, "2026-11-03T08:00:00Z"),
        "untimed.json": as_host(base, "db1", mid, None),
        "clone.json": as_host(base, "db1", machine_id(2), "2026-11-02T08:00:00Z"),
    }
    for name, document in readings.items():
        (tmp_path / name).write_text(json.dumps(document))
    _code, doc, _err = report_json(tmp_path)
    kept = {(h["hostname"], h["machine_id"]): h for h in doc["hosts"]}
    assert set(kept) == {("db1", mid), ("db1", machine_id(2))}
    assert kept["db1", mid]["input"] == str(tmp_path / "new.json")
    dups = {Path(d["input"]).name: d for d in doc["duplicates"]}
    assert set(dups) == {"old.json", "untimed.json"}
    assert dups["old.json"]["created_utc"] == "2026-11-01T08:00:00Z"
    assert all(d["kept_input"] == str(tmp_path / "new.json") for d in dups.values())
    _code, text, _err = run(["report", str(tmp_path)])
    assert "duplicates" in text and "old.json" in text


def test_damaged_and_foreign_inputs_are_listed_and_the_rest_reported(tmp_path: Path) -> None:
    good = as_host(doctor_document(RHEL6), "web1", machine_id(1), "2026-11-01T00:00:00Z")
    (tmp_path / "web1.json").write_text(json.dumps(good))
    damaged = json.dumps(good)[:500]
    bad_finding = copy_with(good, findings=[{"id": "CT1", "status": "found"}])
    inputs = {
        "damaged.json": damaged,
        "package.json": json.dumps({"name": "left-pad", "version": "1.3.0"}),
        "status.json": json.dumps({"schema": "ctguard.status/1"}),
        "list.json": "[1, 2]",
        "empty.json": "",
        "bad-finding.json": json.dumps(bad_finding),
    }
    for name, text in inputs.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "latin1.json").write_bytes(b'{"schema": "\xff"}')
    code, doc, err = report_json(tmp_path)
    assert err == ""
    assert [h["hostname"] for h in doc["hosts"]] == ["web1"]
    reasons = {Path(u["input"]).name: u["reason"] for u in doc["unreadable"]}
    assert set(reasons) == {*inputs, "latin1.json"}
    assert reasons["damaged.json"].startswith("not JSON")
    assert "foreign" in reasons["package.json"]
    assert "ctguard.status/1" in reasons["status.json"]
    assert "not UTF-8" in reasons["latin1.json"]
    assert "findings[0]" in reasons["bad-finding.json"]
    assert all("\n" not in r and "Traceback" not in r for r in reasons.values())
    assert code == doc["exit_code"] == 2  # web1's CT102 critical; the others change nothing
    code, text, _err = run(["report", str(tmp_path)])
    assert "unreadable" in text and "package.json" in text


def copy_with(document: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**document, **changes}


def test_nothing_readable_is_one_line_and_exit_3(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text('{"name": "x"}')
    code, out, err = run(["report", str(tmp_path), str(tmp_path / "missing.json")])
    assert code == 3 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ctguard: error: no doctor result")
    assert "missing.json: does not exist (and 1 more)" in lines[0]
    code, out, err = run(["report", str(tmp_path / "empty-dir-that-is-not-there")])
    assert code == 3 and len(err.strip().splitlines()) == 1


def test_snapshot_directory_and_archive_are_run_through_doctor(tmp_path: Path) -> None:
    archive = tmp_path / "web03.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for child in sorted(RHEL6.iterdir()):
            tar.add(child, arcname=child.name)
    want = found(doctor_document(RHEL6))
    for given in ([RHEL6], [archive]):
        code, doc, err = report_json(*given)
        assert code == 2 and err == ""
        (host,) = doc["hosts"]
        assert host["kind"] == ("snapshot" if given == [RHEL6] else "archive")
        assert {f["id"]: f["severity"] for f in host["findings"]} == want
        manifest = json.loads((RHEL6 / "ctguard_manifest.json").read_text())
        assert host["hostname"] == manifest["hostname"]
        assert host["created_utc"] == manifest["created_utc"]
    # the same host twice (same manifest time): counted once, the other a duplicate
    _code, doc, _err = report_json(archive, RHEL6)
    assert len(doc["hosts"]) == 1 and len(doc["duplicates"]) == 1
    # found in a walk too, beside doctor documents
    walk = tmp_path / "walk"
    (walk / "a").mkdir(parents=True)
    shutil.copy(archive, walk / "a" / "snap.tgz")
    shutil.copytree(RHEL6, walk / "b" / "snapshot", symlinks=True)
    _code, doc, _err = report_json(walk)
    assert [h["kind"] for h in doc["hosts"]] == ["snapshot"]  # a tie: the later input wins
    assert [d["input"] for d in doc["duplicates"]] == [str(walk / "a" / "snap.tgz")]


def test_a_walk_is_sorted_nested_and_stays_inside(tmp_path: Path) -> None:
    dest = tmp_path / "fetched"
    members = write_fleet(dest, 5)
    outside = tmp_path / "outside.json"
    shutil.copy(members[0].path, outside)
    (dest / "node000.example.net" / "link-out.json").symlink_to(outside)
    (dest / "node001.example.net" / "link-in.json").symlink_to(members[2].path)
    (dest / "node001.example.net" / "notes.txt").write_text("not ours")
    (dest / "loop").symlink_to(dest)
    _code, doc, _err = report_json(dest)
    assert sorted(h["hostname"] for h in doc["hosts"]) == sorted(m.key[0] for m in members)
    ((link, reason),) = [(u["input"], u["reason"]) for u in doc["unreadable"]]
    assert link.endswith("link-out.json") and "not followed" in reason
    # a link to a file of the walk is that file, read once, named by its own path
    assert doc["duplicates"] == [] and doc["summary"]["inputs"] == len(members) + 1
    assert sorted(h["input"] for h in doc["hosts"]) == sorted(str(m.path) for m in members)
    again = report_json(dest)[1]
    assert json.dumps(again) == json.dumps(doc)


def test_documents_without_a_host_are_named_by_their_file(tmp_path: Path) -> None:
    old = doctor_document(RHEL6)
    old = {k: v for k, v in old.items() if k not in ("host", "created_utc")}
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text(json.dumps(old))
    _code, doc, _err = report_json(tmp_path)
    assert sorted(h["input"] for h in doc["hosts"]) == [
        str(tmp_path / "a.json"),
        str(tmp_path / "b.json"),
    ]
    assert all(h["hostname"] is None for h in doc["hosts"]) and doc["duplicates"] == []


@pytest.mark.parametrize(
    ("severities", "fail_on", "want"),
    [
        ((None,), "warning", 0),
        (("warning", None), "warning", 1),
        (("warning", None), "critical", 0),
        (("critical", "warning"), "critical", 2),
        (("skipped", None), "warning", 3),
        (("skipped", "warning"), "warning", 1),
    ],
)
def test_exit_code_is_the_worst_host(
    tmp_path: Path, severities: tuple[str | None, ...], fail_on: str, want: int
) -> None:
    base = doctor_document(RHEL6)
    for n, severity in enumerate(severities):
        findings = []
        for f in base["findings"]:
            f = dict(f)
            if severity == "skipped":
                f.update(status="skipped", severity=None, fix=None, reason="no input")
            elif f["status"] == "found" and severity is None:
                f.update(status="passed", severity=None, fix=None, reason="fine")
            elif f["status"] == "found":
                f.update(severity=severity)
            findings.append(f)
        document = {**as_host(base, f"h{n}", machine_id(n), None), "findings": findings}
        (tmp_path / f"h{n}.json").write_text(json.dumps(document))
    code, doc, _err = report_json(tmp_path, "--fail-on", fail_on)
    assert code == want == doc["exit_code"]


def test_a_hostile_hostname_is_text_in_html(tmp_path: Path) -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    document = as_host(doctor_document(RHEL6), hostile, machine_id(1), None)
    document["findings"][0]["evidence"] = ["</td><b>evidence</b>"]
    (tmp_path / "evil.json").write_text(json.dumps(document))
    _code, out, _err = run(["report", str(tmp_path), "--format", "html"])
    assert "<script>alert" not in out and "<img src=x" not in out and "<b>evidence" not in out
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in out
    assert out.count("<script>") == 1  # ours, inline


def test_help_teaches_with_examples() -> None:
    code, out, _err = run(["report", "--help"])
    assert code == 0
    assert "Examples:" in out and "--format" in out and "PATH..." in out


def test_console_script_runs_it(tmp_path: Path) -> None:
    from helpers import run_ctguard

    members = write_fleet(tmp_path, 3)
    done = run_ctguard("report", str(tmp_path), timeout=60)
    worst = max(RANK[s] for m in members for s in m.found.values())
    assert done.returncode == {3: 2, 2: 1}.get(worst, 0), done.stderr
    assert os.path.basename(str(members[0].path)) in done.stdout


def test_a_walk_stops_at_its_depth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ctguard.usecases import report_inputs

    monkeypatch.setattr(report_inputs, "MAX_DEPTH", 3)
    document = as_host(doctor_document(RHEL6), "shallow", machine_id(1), None)
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "shallow.json").write_text(json.dumps(document))
    deep = tmp_path / "a" / "b" / "c" / "d"
    deep.mkdir(parents=True)
    (deep / "deep.json").write_text(json.dumps({**document, "host": {"hostname": "deep"}}))
    _code, doc, _err = report_json(tmp_path)
    assert [h["hostname"] for h in doc["hosts"]] == ["shallow"]
    assert doc["unreadable"] == [
        {"input": str(tmp_path / "a" / "b" / "c"), "reason": "deeper than 3 levels"}
    ]


def test_a_namespace_of_a_host_is_not_its_duplicate(tmp_path: Path) -> None:
    """A snapshot taken in a namespace reads that namespace's table, not the host's."""
    base = as_host(doctor_document(RHEL6), "k8s-node1", machine_id(1), "2026-11-01T00:00:00Z")
    (tmp_path / "host.json").write_text(json.dumps(base))
    (tmp_path / "pod.json").write_text(json.dumps({**base, "netns": "cni-1234"}))
    _code, doc, _err = report_json(tmp_path)
    assert sorted(str(h["netns"]) for h in doc["hosts"]) == ["None", "cni-1234"]
    assert doc["duplicates"] == []


def test_verbose_text_shows_the_evidence(tmp_path: Path) -> None:
    document = as_host(doctor_document(RHEL6), "web1", machine_id(1), None)
    line = next(f for f in document["findings"] if f["status"] == "found")["evidence"][0]
    (tmp_path / "web1.json").write_text(json.dumps(document))
    _code, quiet, _err = run(["report", str(tmp_path)])
    _code, verbose, _err = run(["report", str(tmp_path), "-v"])
    assert f"- {line}" not in quiet
    assert f"- {line}" in verbose
