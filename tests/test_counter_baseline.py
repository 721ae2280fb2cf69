"""``apply`` records the conntrack counters in its journal, so the next ``doctor`` on the
same target tells "counted before the apply, none since" (passed) from "still happening"
(found). It must never hide a live count: a counter that rose is found, and a record made
before the counters were reset (module reload, reboot) or of a rolled-back apply is ignored.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from ctguard.cli import main
from ctguard.errors import CtguardError
from ctguard.remediation.journal import entry_from_json, entry_to_json, list_entries
from ctguard.remediation.state_dir import StateDir

ROOT = Path(__file__).parent / "roots" / "doctor" / "ct105-chaintoolong"
STAT = "proc/net/stat/nf_conntrack"
UNCHANGED = "unchanged since ctguard apply at "


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, Any]:
    main(argv)
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def _doctor(capsys: pytest.CaptureFixture[str], tree: Path) -> dict[str, dict[str, Any]]:
    report = _json(capsys, ["doctor", "--root", str(tree), "--format", "json"])
    return {f["id"]: f for f in report["findings"]}


def _bump(tree: Path, column: str, delta: int) -> None:
    """Add ``delta`` to one counter on the first CPU's line of the stat file."""
    path = tree / STAT
    header, first, *rest = path.read_text().splitlines()
    names = header.split()
    fields = first.split()
    index = names.index(column)
    fields[index] = f"{int(fields[index], 16) + delta:08x}"
    path.write_text("\n".join([header, "  ".join(fields), *rest]) + "\n")


@pytest.fixture
def applied(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    tree = tmp_path / "root"
    shutil.copytree(ROOT, tree, symlinks=True)
    before = _doctor(capsys, tree)
    assert before["CT105"]["status"] == "found"  # chaintoolong 51 since boot
    assert before["CT104"]["status"] == "found"  # insert_failed 30, clashes
    assert main(["apply", "--root", str(tree), "--yes"]) == 0
    capsys.readouterr()
    return tree


def _sums(tree: Path) -> dict[str, int]:
    """Each column of the stat file summed over the CPU lines."""
    header, *lines = (tree / STAT).read_text().splitlines()
    names = header.split()
    rows = [[int(v, 16) for v in line.split()] for line in lines if line.strip()]
    return {name: sum(row[i] for row in rows) for i, name in enumerate(names)}


def test_apply_records_the_counters_in_its_journal(applied: Path) -> None:
    (entry,) = list_entries(StateDir.in_tree(applied))
    sums = _sums(applied)
    assert entry.counters == {
        "drop": sums["drop"],
        "early_drop": sums["early_drop"],
        "insert_failed": sums["insert_failed"],
        "chaintoolong": sums["chainlength"],  # 6.1 names the chaintoolong column so
    }
    assert entry.counters["chaintoolong"] > 0
    assert entry.table_id is None  # the tree has no /proc/sys/kernel/random/boot_id


def test_unchanged_counters_are_history(applied: Path, capsys: pytest.CaptureFixture[str]) -> None:
    after = _doctor(capsys, applied)
    for rule_id, name in (("CT105", "chaintoolong"), ("CT104", "insert_failed")):
        assert after[rule_id]["status"] == "passed", after[rule_id]
        assert any(name in e and UNCHANGED in e for e in after[rule_id]["evidence"])
        # the tree has no boot id: the evidence says the table was not compared
        assert any("not checked" in e for e in after[rule_id]["evidence"])


def test_a_record_with_a_boot_id_matches_its_boot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = tmp_path / "root"
    shutil.copytree(ROOT, tree, symlinks=True)
    boot = tree / "proc/sys/kernel/random/boot_id"
    boot.parent.mkdir(parents=True, exist_ok=True)
    boot.write_text("5b3c1d2e-0f4a-4b6c-8d9e-1a2b3c4d5e6f\n")
    assert main(["apply", "--root", str(tree), "--yes"]) == 0
    capsys.readouterr()
    after = _doctor(capsys, tree)["CT105"]
    assert after["status"] == "passed"
    assert not any("not checked" in e for e in after["evidence"])
    boot.unlink()  # the record names a boot, the tree none now: not the same table
    assert _doctor(capsys, tree)["CT105"]["status"] == "found"


def test_a_counter_that_rose_is_still_found(
    applied: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _bump(applied, "chainlength", 1)  # this kernel's header names chaintoolong so
    after = _doctor(capsys, applied)
    assert after["CT105"]["status"] == "found"
    assert after["CT104"]["status"] == "passed"  # insert_failed did not move


def test_counters_lower_than_recorded_void_the_record(
    applied: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _bump(applied, "drop", -2)  # reset since (module reload): the record says nothing
    after = _doctor(capsys, applied)
    assert after["CT105"]["status"] == "found"
    assert after["CT104"]["status"] == "found"


def test_a_record_from_another_boot_is_ignored(
    applied: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    boot = applied / "proc/sys/kernel/random/boot_id"
    boot.parent.mkdir(parents=True, exist_ok=True)
    boot.write_text("0d6f2c1e-8a51-4c8e-9f3b-2a7d5e9c1b40\n")
    assert _doctor(capsys, applied)["CT105"]["status"] == "found"


def test_a_rolled_back_apply_is_no_record(
    applied: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rollback", "--root", str(applied), "--yes"]) == 0
    capsys.readouterr()
    after = _doctor(capsys, applied)
    assert after["CT105"]["status"] == "found"
    assert not any(UNCHANGED in e for e in after["CT105"]["evidence"])


def test_older_journals_without_counters_still_load(applied: Path) -> None:
    (entry,) = list_entries(StateDir.in_tree(applied))
    data = json.loads(entry_to_json(entry))
    del data["counters"], data["table_id"]
    old = entry_from_json(json.dumps(data))
    assert (old.counters, old.table_id) == ({}, None)
    data["counters"] = {"drop": -1}
    with pytest.raises(CtguardError, match=r"counters\.drop is negative"):
        entry_from_json(json.dumps(data))


def test_a_record_of_another_namespace_is_ignored(
    applied: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (journal,) = (applied / "var/lib/ctguard/journal").glob("*/journal.json")
    data = json.loads(journal.read_text())
    data["meta"]["netns"] = "web1"  # its counters are that namespace's, not the host's
    journal.write_text(json.dumps(data))
    assert _doctor(capsys, applied)["CT105"]["status"] == "found"


def test_the_live_table_is_named_by_boot_and_namespace() -> None:
    from ctguard.host.root import HostRoot
    from ctguard.usecases.baseline import table_id

    if not Path("/proc/sys/kernel/random/boot_id").is_file():
        pytest.skip("no boot_id here")
    name = table_id(HostRoot("/"))  # reads only
    assert name is not None and name.startswith("boot ") and "net:[" in name
    assert name == table_id(HostRoot("/"))  # the same table reads the same
