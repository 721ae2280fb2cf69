"""A snapshot never holds a table its reader refuses: one limit (caps.MAX_TABLE_BYTES).

`ctguard snapshot` spooled the table without a limit while `--root` refuses an archive
whose table member passes MAX_TABLE_BYTES: a 5 GB table made a snapshot nothing could
read. The capture now stops at the reader's limit and records why the table is not in
the snapshot, and doctor and analyze on that snapshot say so. The limit is made small
here (the same constant on both sides) so a two-line table passes it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ctguard.host import caps
from ctguard.host.archive import extracted
from ctguard.snapshot.capture import CaptureOptions, capture
from ctguard.snapshot.writer import TarWriter
from fakes import FakeCommands
from helpers import run_ctguard
from snapshot.test_capture import TABLE, make_host

LISTING = (
    "tcp      6 431999 ESTABLISHED src=203.0.113.7 dst=198.51.100.20 sport=51234 dport=443 "
    "src=198.51.100.20 dst=203.0.113.7 sport=443 dport=51234 [ASSURED] mark=0 use=1\n"
) * 3
COMMANDS = {"conntrack-S": "cpu=0 found=0 drop=0\n", "uname-r": "6.1.0\n"}


def _snapshot(tmp_path: Path, *, procfs: bool, listing: str = LISTING) -> tuple[Path, dict]:
    host = make_host(tmp_path / "host")
    if procfs:
        (tmp_path / "host/proc/net/nf_conntrack").write_text(TABLE)
    target = tmp_path / "snap.tar.gz"
    commands = FakeCommands({**COMMANDS, "conntrack-L": listing})
    manifest = capture(host, commands, TarWriter(target), CaptureOptions())
    return target, manifest


def _members(archive: Path) -> set[str]:
    with extracted(str(archive)) as root:  # the reader, with the same limit, accepts it
        return {
            path
            for path in ("/proc/net/nf_conntrack", "/ctguard_commands/conntrack-L")
            if root.exists(path)
        }


@pytest.mark.parametrize("procfs", [True, False], ids=["procfs", "conntrack-L"])
def test_a_table_at_the_limit_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procfs: bool
) -> None:
    size = len(TABLE if procfs else LISTING)
    monkeypatch.setattr(caps, "MAX_TABLE_BYTES", size)
    archive, manifest = _snapshot(tmp_path, procfs=procfs)
    where = "/proc/net/nf_conntrack" if procfs else "/ctguard_commands/conntrack-L"
    assert where in manifest["captured"]
    assert _members(archive) == {where}


@pytest.mark.parametrize("procfs", [True, False], ids=["procfs", "conntrack-L"])
def test_a_table_over_the_limit_is_not_stored_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procfs: bool
) -> None:
    size = len(TABLE if procfs else LISTING)
    monkeypatch.setattr(caps, "MAX_TABLE_BYTES", size - 1)
    archive, manifest = _snapshot(tmp_path, procfs=procfs)
    where = "/proc/net/nf_conntrack" if procfs else "/ctguard_commands/conntrack-L"
    assert where not in manifest["captured"]
    failed = {f["what"]: f["why"] for f in manifest["failed"]}
    assert f"larger than {size - 1} bytes" in failed[where]
    assert _members(archive) == set()  # and the archive is read, not refused
    if procfs:  # conntrack -L would be as large: not asked
        assert "/ctguard_commands/conntrack-L" not in failed


def test_a_table_without_line_ends_stops_at_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dump with no newline is not gathered whole before the limit is checked."""
    monkeypatch.setattr(caps, "MAX_TABLE_BYTES", 4096)
    _, manifest = _snapshot(tmp_path, procfs=False, listing="x" * (3 << 20))
    failed = {f["what"]: f["why"] for f in manifest["failed"]}
    assert "larger than 4096 bytes" in failed["/ctguard_commands/conntrack-L"]


@pytest.mark.parametrize("command", ["analyze", "doctor"])
def test_doctor_and_analyze_say_the_table_was_too_large(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """Not "was it taken with --no-table?": the operator learns the table was too large."""
    monkeypatch.setattr(caps, "MAX_TABLE_BYTES", len(TABLE) - 1)
    archive, _ = _snapshot(tmp_path, procfs=True)
    done = run_ctguard(command, "--root", str(archive))
    said = done.stdout + done.stderr
    assert "Traceback" not in said
    assert (
        f"proc/net/nf_conntrack not captured: the table dump is larger than {len(TABLE) - 1}"
        in (said)
    ), said
    assert "--no-table" not in said
