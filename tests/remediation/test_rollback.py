"""rollback: a whole tree comes back byte for byte; changes made by others are not
overwritten without force; the journal listing survives damage."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ctguard.errors import CtguardError
from ctguard.remediation.apply import ApplyError, ApplyResult, rollback
from ctguard.remediation.journal import list_entries, read_entry
from remediation.conftest import (
    BUCKETS,
    MAX,
    OLD_60,
    Host,
    apply_host,
    temp_files,
)


def apply(host: Host, **kw: object) -> ApplyResult:
    return apply_host(host, **kw)


def undo(host: Host, entry_id: str | None = None, **kw):
    return rollback(entry_id, root=host.root, runtime=host.runtime, state_dir=host.state, **kw)


def test_round_trip_restores_the_whole_tree(host):
    before = host.snapshot()
    applied = apply(host)
    assert host.snapshot() != before
    result = undo(host)
    assert host.snapshot() == before  # bytes, modes, owners, links; created dirs gone
    assert result.entry_id == applied.entry_id
    assert not result.nothing_to_do
    assert set(result.files) == {"/etc/sysctl.d/60-x.conf", "/etc/modprobe.d/nf_conntrack.conf"}
    assert set(result.removed) == {
        "/etc/udev/rules.d/90-ctguard.rules",
        "/etc/sysctl.d/90-ctguard-conntrack.conf",
    }
    assert result.removed_dirs == ("/etc/udev/rules.d", "/etc/udev")
    assert result.sysctls == (BUCKETS, MAX)  # reverse order of apply
    entry = read_entry(host.state, applied.entry_id)
    assert entry.state == "rolled-back" and entry.rolled_back
    assert all(r.undone for r in entry.files + entry.sysctls)
    assert temp_files(host.root, host.state) == []


def test_rolling_back_twice_has_nothing_to_do(host):
    applied = apply(host)
    undo(host)
    after_first = host.snapshot()
    again = undo(host, applied.entry_id)
    assert again.nothing_to_do and again.entry_id == applied.entry_id
    assert host.snapshot() == after_first


def test_latest_applied_entry_is_the_default(host):
    first = apply(host)
    host.files = []  # a second apply of other values on top
    host.sysctls = [
        host.sysctls[0].__class__("nf_conntrack_max", MAX, 262144, 524288, "global", "")
    ]
    second = apply(host)
    assert [e.id for e in list_entries(host.state)] == [second.entry_id, first.entry_id]
    assert undo(host).entry_id == second.entry_id
    assert host.runtime.values[MAX] == "262144"
    assert undo(host).entry_id == first.entry_id
    assert host.runtime.values[MAX] == "65536"
    with pytest.raises(CtguardError, match="is already rolled-back"):
        undo(host)


def test_no_journal_at_all(host):
    with pytest.raises(CtguardError, match="no applied change to roll back"):
        undo(host)


def test_unknown_id_says_how_to_list_ids(host):
    apply(host)
    for bad in ("20990101T000000Z-0000", "../../etc", ""):
        with pytest.raises(CtguardError, match=r"ctguard rollback --list"):
            undo(host, bad)


def test_file_changed_by_someone_else_is_not_overwritten(host):
    applied = apply(host)
    (host.root / "etc/sysctl.d/60-x.conf").write_bytes(b"the admin's own edit\n")
    tree = host.snapshot()
    with pytest.raises(CtguardError) as err:
        undo(host)
    message = str(err.value)
    assert "/etc/sysctl.d/60-x.conf" in message and "--force" in message
    assert "nothing was rolled back" in message and "\n" not in message
    assert host.snapshot() == tree  # all checks come before the first write
    assert read_entry(host.state, applied.entry_id).state == "applied"


def test_force_restores_a_file_changed_by_someone_else(host):
    before = host.snapshot()
    apply(host)
    (host.root / "etc/sysctl.d/60-x.conf").write_bytes(b"the admin's own edit\n")
    undo(host, force=True)
    assert host.snapshot() == before


def test_runtime_value_changed_by_someone_else_is_not_overwritten(host):
    apply(host)
    host.runtime.values[MAX] = "1000"
    with pytest.raises(CtguardError, match=r"nf_conntrack_max \(now 1000, ctguard set 262144\)"):
        undo(host)
    assert host.runtime.values[MAX] == "1000"
    undo(host, force=True)
    assert host.runtime.values[MAX] == "65536"


def test_what_is_already_back_is_left_alone(host):
    before = host.snapshot()
    apply(host)
    (host.root / "etc/sysctl.d/60-x.conf").write_bytes(OLD_60)  # put back by hand
    os.chmod(host.root / "etc/sysctl.d/60-x.conf", 0o600)
    (host.root / "etc/sysctl.d/90-ctguard-conntrack.conf").unlink()
    host.runtime.values[MAX] = "65536"
    result = undo(host)
    assert "/etc/sysctl.d/60-x.conf" not in result.files
    assert "/etc/sysctl.d/90-ctguard-conntrack.conf" not in result.removed
    assert result.sysctls == (BUCKETS,)
    assert host.snapshot() == before


def test_a_created_directory_someone_filled_is_kept(host):
    apply(host)
    (host.root / "etc/udev/rules.d/10-other.rules").write_text("# not ours\n")
    result = undo(host)
    assert result.removed_dirs == ()
    assert os.listdir(host.root / "etc/udev/rules.d") == ["10-other.rules"]


def test_damaged_backup_stops_the_rollback(host):
    applied = apply(host)
    (host.state / "journal" / applied.entry_id / "files" / "0").write_bytes(b"bit rot\n")
    tree = host.snapshot()
    with pytest.raises(CtguardError, match=r"backup of /etc/sysctl.d/60-x.conf .* checksum"):
        undo(host)
    assert host.snapshot() == tree


def test_rollback_failing_midway_is_one_line_and_a_rerun_finishes(host):
    before = host.snapshot()
    applied = apply(host)

    def hook(step: str) -> None:
        if step == "rename /etc/modprobe.d/nf_conntrack.conf":
            raise OSError(5, "Input/output error")

    with pytest.raises(ApplyError) as err:
        undo(host, hook=hook)
    message = str(err.value)
    assert message.startswith("cannot restore /etc/modprobe.d/nf_conntrack.conf: Input/output")
    assert f"'ctguard rollback {applied.entry_id}' again" in message and "\n" not in message
    assert "restored so far: " + BUCKETS in message
    assert temp_files(host.root) == []
    entry = read_entry(host.state, applied.entry_id)
    assert entry.state == "applied" and entry.error and entry.error.startswith("rollback failed")
    undo(host, applied.entry_id)
    assert host.snapshot() == before


# -- the journal listing -----------------------------------------------------------------
def test_damaged_entries_are_listed_as_damaged(host):
    applied = apply(host)
    journal = host.state / "journal"
    (journal / "20200101T000000Z-dead").mkdir()  # a crash before journal.json
    (journal / "20200101T000000Z-beef").mkdir()
    (journal / "20200101T000000Z-beef" / "journal.json").write_text("{not json")
    (journal / "20200101T000000Z-f00d").mkdir()
    wrong = json.loads((journal / applied.entry_id / "journal.json").read_text())
    wrong["files"][0]["mode"] = "0644"
    (journal / "20200101T000000Z-f00d" / "journal.json").write_text(json.dumps(wrong))
    (journal / "not-an-entry").mkdir()  # not ours: ignored
    entries = list_entries(host.state)
    assert [(e.id, e.state) for e in entries] == [
        (applied.entry_id, "applied"),
        ("20200101T000000Z-f00d", "damaged"),
        ("20200101T000000Z-dead", "damaged"),
        ("20200101T000000Z-beef", "damaged"),
    ]
    assert "No such file" in (entries[2].error or "")
    assert "not JSON" in (entries[3].error or "")
    assert "mode: expected an integer" in (entries[1].error or "")
    with pytest.raises(CtguardError, match="20200101T000000Z-beef is damaged"):
        read_entry(host.state, "20200101T000000Z-beef")
    assert undo(host).entry_id == applied.entry_id  # damage elsewhere does not stop rollback


def test_listing_an_absent_state_dir_is_empty(tmp_path: Path):
    assert list_entries(tmp_path / "nowhere") == []
