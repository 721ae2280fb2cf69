"""Small CLI truths (issue 16 leftovers), each through ``ctguard.cli.main``:

- ``--format json`` prints exactly one JSON document on stdout, ``--apply`` included;
- no output names a journal entry that does not exist ("journal entry None");
- ``apply`` records and prints the checksum ``plan`` prints for the same plan;
- ``--root /`` is this host for every reading command, and refused by every writing one
  (with --root they write a directory tree; this host is written without --root, as root).

Nothing here writes this host: the writing commands are given ``--root /`` without
``--yes`` (the refusal comes before any question; were it missing, the question would fail
for want of a terminal), and everything else writes into copies under tmp_path.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from ctguard.cli import main
from ctguard.host.target import Target

REPO = Path(__file__).resolve().parents[2]
ROOTS = REPO / "tests" / "roots"


def run(*args: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def copy_root(tmp_path: Path, scenario: str) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(ROOTS / scenario, tree, symlinks=True)
    return tree


# -- one JSON document --------------------------------------------------------------------
def test_disable_apply_json_is_one_document_with_the_result(tmp_path: Path) -> None:
    tree, state = copy_root(tmp_path, "disable/modular-idle"), tmp_path / "state"
    code, out, _ = run(
        "disable", "--root", tree, "--format", "json", "--apply", "--yes", "--state-dir", state
    )
    assert code == 0
    document = json.loads(out)  # the whole of stdout, nothing after it
    assert document["schema"] == "ctguard.disable/1"
    result = document["apply"]
    assert result["status"] == "done"
    assert result["done"] == ["/etc/modprobe.d/00-ctguard-disable-conntrack.conf"]
    assert result["tree"] is True
    (entry,) = (p.name for p in (state / "journal").iterdir())
    assert result["entry_id"] == entry
    assert (tree / "etc/modprobe.d/00-ctguard-disable-conntrack.conf").is_file()


def test_disable_dry_run_json_is_one_document(tmp_path: Path) -> None:
    tree = copy_root(tmp_path, "disable/modular-idle")
    code, out, _ = run("disable", "--root", tree, "--format", "json", "--apply", "--dry-run")
    assert code == 0
    result = json.loads(out)["apply"]
    assert result["status"] == "dry-run"
    assert result["entry_id"] is None
    assert any("00-ctguard-disable-conntrack.conf" in line for line in result["would"])
    assert not (tree / "etc/modprobe.d/00-ctguard-disable-conntrack.conf").exists()


def test_disable_without_apply_json_has_no_result() -> None:
    code, out, _ = run("disable", "--root", ROOTS / "disable/modular-idle", "--format", "json")
    assert code == 0
    assert "apply" not in json.loads(out)


def test_refused_disable_json_is_still_the_one_plan_document(tmp_path: Path) -> None:
    tree = copy_root(tmp_path, "disable/modular-nat-masquerade")
    code, out, err = run(
        "disable", "--root", tree, "--format", "json", "--apply", "--yes",
        "--state-dir", tmp_path / "state",
    )  # fmt: skip
    assert code == 2
    document = json.loads(out)
    assert document["status"] == "refused"
    assert "apply" not in document
    assert "refused" in err


# -- no "journal entry None" --------------------------------------------------------------
def test_disable_again_names_no_journal_entry(tmp_path: Path) -> None:
    tree, state = copy_root(tmp_path, "disable/modular-idle"), tmp_path / "state"
    first = run("disable", "--root", tree, "--apply", "--yes", "--state-dir", state)
    assert first[0] == 0
    assert "journal entry 2" in first[1]  # an id: a UTC timestamp
    code, out, _ = run("disable", "--root", tree, "--apply", "--yes", "--state-dir", state)
    assert code == 0
    last = out.splitlines()[-1]
    assert last == "done: nothing to change"
    assert "None" not in out
    assert len(list((state / "journal").iterdir())) == 1  # the second run journalled nothing
    code, out, _ = run(
        "disable", "--root", tree, "--apply", "--yes", "--state-dir", state, "--format", "json"
    )
    assert json.loads(out)["apply"]["entry_id"] is None


# -- one checksum -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options", [(), ("--established-timeout", "3600"), ("--memory-budget", "3")], ids=str
)
def test_apply_prints_the_checksum_plan_prints(tmp_path: Path, options: tuple[str, ...]) -> None:
    tree = copy_root(tmp_path, "doctor/ct201-max-10m")
    code, out, _ = run("plan", "--root", tree, "--format", "json", *options)
    assert code == 0
    planned = json.loads(out)["checksum"]
    code, out, _ = run("apply", "--root", tree, "--dry-run", "--format", "json", *options)
    assert code == 0
    assert json.loads(out)["plan_checksum"] == planned


def test_saved_plan_made_now_and_applied_share_one_checksum(tmp_path: Path) -> None:
    tree, saved, state = copy_root(tmp_path, "rhel6-modular"), tmp_path / "plan.json", tmp_path
    assert run("plan", "--root", tree, "-o", saved)[0] == 0
    in_file = json.loads(saved.read_text())["checksum"]
    code, out, _ = run("apply", "--root", tree, "--dry-run", "--format", "json")
    assert (code, json.loads(out)["plan_checksum"]) == (0, in_file)
    code, out, _ = run(
        "apply", "--plan", saved, "--root", tree, "--yes", "--format", "json",
        "--state-dir", state / "state",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out)["plan_checksum"] == in_file
    code, out, _ = run("rollback", "--list", "--json", "--state-dir", state / "state")
    assert json.loads(out)["entries"][0]["meta"]["plan_checksum"] == in_file


# -- --root / -----------------------------------------------------------------------------
@pytest.mark.parametrize("given", ["/", "//", "/tmp/..", "/./"])
def test_root_slash_is_this_host(given: str) -> None:
    target = Target(given)
    assert target.root is None
    assert target.live
    assert target.host_root_given == given
    assert target == Target()


def test_a_directory_root_stays_a_tree(tmp_path: Path) -> None:
    target = Target(str(tmp_path))
    assert (target.root, target.live, target.host_root_given) == (str(tmp_path), False, None)


def _without_volatile(document: dict) -> dict:
    """A doctor document minus what can move between two readings of a live host."""
    return {k: v for k, v in document.items() if k not in {"findings", "summary", "status"}}


@pytest.mark.parametrize("command", [("doctor", "--format", "json"), ("plan", "--format", "json")])
def test_reading_commands_read_this_host_for_root_slash(command: tuple[str, ...]) -> None:
    code_live, live, _ = run(*command)
    code_root, rooted, err = run(*command, "--root", "/")
    assert code_root == code_live, err
    live_doc, rooted_doc = json.loads(live), json.loads(rooted)
    if command[0] == "doctor":
        assert rooted_doc["source"] == "live"
        assert _without_volatile(rooted_doc) == _without_volatile(live_doc)
        # the same rules ran: what was skipped for want of input is the same
        skipped = {f["id"] for f in live_doc["findings"] if f["status"] == "skipped"}
        assert {f["id"] for f in rooted_doc["findings"] if f["status"] == "skipped"} == skipped
    else:
        assert rooted_doc["host"] == live_doc["host"]
        assert rooted_doc["options"] == live_doc["options"]


def test_status_reads_this_host_for_root_slash() -> None:
    code, out, err = run("status", "--root", "/", "--json", "--interval", "0")
    live = json.loads(run("status", "--json", "--interval", "0")[1])
    assert code == 0, err
    assert json.loads(out)["conntrack"]["presence"] == live["conntrack"]["presence"]


@pytest.mark.parametrize(
    "command",
    [
        ("apply",),
        ("rollback",),
        ("disable", "--apply"),
        ("notrack", "--port", "53", "--proto", "udp", "--apply"),
        ("notrack", "--remove"),
    ],
    ids=" ".join,
)
def test_writing_commands_refuse_root_slash(command: tuple[str, ...], tmp_path: Path) -> None:
    code, out, err = run(*command, "--root", "/", "--state-dir", tmp_path / "state")
    assert code == 3
    assert out == ""
    assert err.count("\n") == 1, err  # one line, no traceback
    assert "'/' is this host's /" in err
    assert "leave --root out" in err
    assert not (tmp_path / "state").exists()


def test_apply_dry_run_with_root_slash_is_the_live_dry_run() -> None:
    """A dry run writes nothing: with --root / it is the dry run of this host."""
    code_live, live, _ = run("apply", "--dry-run", "--format", "json")
    code, rooted, err = run("apply", "--root", "/", "--dry-run", "--format", "json")
    assert code == code_live, err
    live_doc, rooted_doc = json.loads(live), json.loads(rooted)
    assert rooted_doc["root"] is None
    assert rooted_doc["root"] == live_doc["root"]
