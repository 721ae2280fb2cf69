"""Issue 14, items 1, 5 and 6: a journal is data. One in a ``--root`` tree never runs a
command or touches a namespace or a path outside the tree; one in a state directory that
someone else could have written is refused; an undo is run only in a shape ctguard writes;
a damaged state directory (links to devices, FIFOs, deep or huge JSON) gives one line and
never hangs or eats memory; one apply or rollback at a time holds a state directory."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from ctguard.errors import CtguardError
from ctguard.remediation import state_dir as state_module
from ctguard.remediation.apply import (
    StalePlanError,
    TreeRuntime,
    apply_changes,
    rollback,
)
from ctguard.remediation.changes import OURS, WriteFile
from ctguard.remediation.journal import DAMAGED, list_entries
from ctguard.remediation.state_dir import BusyError, StateDir, UntrustedStateError
from helpers import ROOTS, one_error_line, run_ctguard
from remediation.conftest import FakeRuntime, Host, apply_host, journal_json, tree_state

HOSTILE_ID = "20991231T235959Z-abcd"  # dated in the future: "the latest applied entry"
SNAPSHOT = ROOTS.parent.parent / "examples" / "rhel6-table-full"
MAX = "/proc/sys/net/netfilter/nf_conntrack_udp_timeout"


def hostile_entry(pwned: Path, **extra: object) -> dict[str, object]:
    return {
        "schema": "ctguard.journal/1", "id": HOSTILE_ID, "created": "2099-12-31T23:59:59+00:00",
        "ctguard_version": "0.1.0", "state": "applied",
        "meta": {"command": "apply", "netns": "ctguard-hostile-no-such-ns"},
        "files": [], "sysctls": [], "created_dirs": [], "error": None, "rolled_back": None,
        "undo_failed": [],
        "commands": [{
            "what": "innocent", "argv": ["true"], "stdin": "",
            "undo_argv": ["/usr/bin/touch", str(pwned)], "undo_stdin": "", "output": "",
            "undo_check": None, "done": True, "undone": False,
        }],
        **extra,
    }  # fmt: skip


def plant(state: Path, entry: dict[str, object], entry_id: str = HOSTILE_ID) -> Path:
    path = state / "journal" / entry_id / "journal.json"
    path.parent.mkdir(parents=True)
    (path.parent / "files").mkdir()
    path.write_text(json.dumps(entry))
    return path


def snapshot_copy(tmp_path: Path) -> Path:
    tree = tmp_path / "T"
    shutil.copytree(SNAPSHOT, tree, symlinks=True)
    return tree


# -- item 1: a tree's journal --------------------------------------------------------------
def test_a_trees_journal_never_runs_a_command(tmp_path):
    tree = snapshot_copy(tmp_path)
    pwned = tmp_path / "PWNED"
    plant(tree / "var/lib/ctguard", hostile_entry(pwned))
    before = tree_state(tree)
    done = run_ctguard("rollback", "--root", str(tree), "--yes")
    one_error_line(done, 3, "never runs one", HOSTILE_ID)
    assert not pwned.exists()
    assert tree_state(tree) == before


def test_a_trees_journal_touches_no_namespace_and_no_live_file(tmp_path):
    """The same entry without commands, but with a runtime value and meta.netns: the value
    restored is the tree's file; the live one (and the namespace named) are never read."""
    tree = snapshot_copy(tmp_path)
    value = tree / MAX.lstrip("/")
    value.parent.mkdir(parents=True, exist_ok=True)
    value.write_text("10\n")
    live_before = Path(MAX).read_text() if Path(MAX).exists() else None
    sysctl = {"name": "nf_conntrack_udp_timeout", "path": MAX, "before": 7, "after": 10,
              "reads_back": 10, "scope": "netns", "done": True, "undone": False}  # fmt: skip
    plant(tree / "var/lib/ctguard", hostile_entry(tmp_path / "x", commands=[], sysctls=[sysctl]))
    done = run_ctguard("rollback", "--root", str(tree), "--yes")
    assert done.returncode == 0, done.stderr
    assert value.read_text() == "7\n"
    if live_before is not None:
        assert Path(MAX).read_text() == live_before


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("real_path", "/../../../../tmp/ctguard-escape", "'..'"),
        ("real_path", "etc/relative", "not an absolute host path"),
        ("backup", "../../../../etc/shadow", "not named"),
    ],
)
def test_a_trees_journal_cannot_name_a_path_out_of_the_tree(tmp_path, field, value, needle):
    tree = snapshot_copy(tmp_path)
    record = {
        "path": "/etc/sysctl.conf", "real_path": "/etc/sysctl.conf", "existed": True,
        "mode": 420, "uid": 0, "gid": 0, "before_sha256": "0" * 64,
        "after_sha256": "1" * 64, "backup": "0", "kind": "edit", "done": True,
        "undone": False,
    }  # fmt: skip
    record[field] = value
    plant(tree / "var/lib/ctguard", hostile_entry(tmp_path / "x", commands=[], files=[record]))
    done = run_ctguard("rollback", "--root", str(tree), "--yes", "--force")
    one_error_line(done, 3, needle)
    assert not Path("/tmp/ctguard-escape").exists()


def test_a_runtime_path_that_is_not_one_is_refused(tmp_path):
    state = tmp_path / "state"
    sysctl = {"name": "x", "path": "/etc/passwd", "before": 1, "after": 2, "reads_back": 2,
              "scope": "netns", "done": True, "undone": False}  # fmt: skip
    plant(state, hostile_entry(tmp_path / "x", commands=[], sysctls=[sysctl]))
    with pytest.raises(CtguardError, match="is not a runtime value ctguard sets"):
        rollback(None, root=tmp_path, runtime=FakeRuntime({}), state_dir=state)


# -- item 1: a state directory on this machine ----------------------------------------------
@pytest.mark.parametrize(
    "damage", ["group-writable", "other-owner", "ancestor-world-writable", "state-is-a-link"]
)
def test_a_state_dir_someone_else_could_write_is_refused(tmp_path, damage):
    if os.geteuid() != 0 and damage == "other-owner":
        pytest.skip("chown to another user needs root")
    parent = tmp_path / "parent"
    state = parent / "state"
    pwned = tmp_path / "PWNED"
    plant(state, hostile_entry(pwned))
    if damage == "group-writable":
        state.chmod(0o770)
    elif damage == "other-owner":
        os.chown(state, 1234, 1234)
    elif damage == "ancestor-world-writable":
        parent.chmod(0o777)
    else:
        state.rename(tmp_path / "real-state")
        state.symlink_to(tmp_path / "real-state")
        (tmp_path / "real-state").chmod(0o777)
    with pytest.raises(UntrustedStateError, match="could have been written by someone else"):
        rollback(None, root=tmp_path, runtime=FakeRuntime({}), state_dir=state)
    done = run_ctguard("rollback", "--state-dir", str(state), "--yes")
    one_error_line(done, 3, "refusing the state directory")
    assert not pwned.exists()


@pytest.mark.parametrize("damage", ["entry-world-writable", "journal-other-owner"])
def test_an_entry_someone_else_could_write_is_damaged(tmp_path, damage):
    if os.geteuid() != 0 and damage == "journal-other-owner":
        pytest.skip("chown to another user needs root")
    state = tmp_path / "state"
    pwned = tmp_path / "PWNED"
    path = plant(state, hostile_entry(pwned))
    if damage == "entry-world-writable":
        path.parent.chmod(0o777)
    else:
        os.chown(path, 1234, 1234)
    (entry,) = list_entries(state)
    assert entry.state == DAMAGED and "could have been written" in (entry.error or "")
    # the newest entry damaged: not skipped as if nothing were applied, not run either
    with pytest.raises(CtguardError, match=f"{HOSTILE_ID}, is damaged"):
        rollback(None, root=tmp_path, runtime=FakeRuntime({}), state_dir=state)
    done = run_ctguard("rollback", "--state-dir", str(state), "--yes", HOSTILE_ID)
    one_error_line(done, 3, "damaged")
    assert not pwned.exists()


def test_a_trusted_journal_runs_only_the_undo_shapes_ctguard_writes(tmp_path):
    state = tmp_path / "state"
    pwned = tmp_path / "PWNED"
    plant(state, hostile_entry(pwned))
    done = run_ctguard("rollback", "--state-dir", str(state), "--yes")
    one_error_line(done, 3, "is not a command ctguard writes")
    assert not pwned.exists()


@pytest.mark.parametrize(
    ("argv", "script"),
    [
        (["nft", "-f", "-"], "flush ruleset\n"),
        (["nft", "-f", "-"], 'add rule inet filter input accept\n'),
        (["iptables-restore", "--noflush"], "*filter\n-F INPUT\nCOMMIT\n"),
        (["iptables-restore", "--noflush"], "*filter\n-D INPUT --dport 22 -j ACCEPT\nCOMMIT\n"),
        (["iptables-restore"], "*filter\nCOMMIT\n"),
        (["modprobe", "../../tmp/evil"], ""),
        (["modprobe", "-r", "nf_conntrack"], ""),
    ],
)  # fmt: skip
def test_undo_scripts_beyond_ctguards_own_rules_are_refused(tmp_path, argv, script):
    state = tmp_path / "state"
    entry = hostile_entry(tmp_path / "x")
    entry["commands"][0].update(undo_argv=argv, undo_stdin=script, stdin="x")  # type: ignore[index]
    plant(state, entry)

    class Runner:
        def __init__(self):
            self.calls = []

        def run(self, argv, stdin):
            self.calls.append(argv)
            return ""

    runner = Runner()
    with pytest.raises(CtguardError, match=r"ctguard (never )?writes"):
        rollback(None, root=tmp_path, runtime=FakeRuntime({}), state_dir=state, runner=runner)
    assert runner.calls == []


def test_links_in_the_state_dir_are_damaged_entries_not_followed(tmp_path):
    state = tmp_path / "state"
    elsewhere = tmp_path / "elsewhere"
    path = plant(elsewhere, hostile_entry(tmp_path / "x"))
    (state / "journal" / "20990101T000000Z-0001").mkdir(parents=True)
    (state / "journal" / "20990101T000000Z-0001" / "journal.json").symlink_to(path)
    (state / "journal" / HOSTILE_ID).symlink_to(path.parent)
    entries = {e.id: e for e in list_entries(state)}
    assert entries["20990101T000000Z-0001"].state == DAMAGED
    assert "symbolic link" in (entries["20990101T000000Z-0001"].error or "")
    assert entries[HOSTILE_ID].state == DAMAGED
    with pytest.raises(CtguardError, match="is damaged"):
        rollback(None, root=tmp_path, runtime=FakeRuntime({}), state_dir=state)


# -- item 6: a damaged state directory --------------------------------------------------------
def applied_host(host: Host) -> str:
    entry_id = apply_host(host).entry_id
    assert entry_id is not None
    return entry_id


def test_a_backup_linked_to_dev_zero_is_refused_at_once(host):
    entry_id = applied_host(host)
    backup = host.state / "journal" / entry_id / "files" / "0"
    backup.unlink()
    backup.symlink_to("/dev/zero")
    with pytest.raises(CtguardError, match=r"files/0 is a symbolic link"):
        rollback(entry_id, root=host.root, runtime=host.runtime, state_dir=host.state)


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod of a character device needs root")
def test_a_device_node_as_backup_is_refused(host):
    entry_id = applied_host(host)
    backup = host.state / "journal" / entry_id / "files" / "0"
    backup.unlink()
    os.mknod(backup, 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero's numbers
    with pytest.raises(CtguardError, match="not a regular file"):
        rollback(entry_id, root=host.root, runtime=host.runtime, state_dir=host.state)


def test_fifos_never_hang_list_or_rollback(host):
    entry_id = applied_host(host)
    backup = host.state / "journal" / entry_id / "files" / "0"
    backup.unlink()
    os.mkfifo(backup, 0o600)
    with pytest.raises(CtguardError, match="not a regular file"):
        rollback(entry_id, root=host.root, runtime=host.runtime, state_dir=host.state)
    journal = journal_json(host.state, entry_id)
    journal.unlink()
    os.mkfifo(journal, 0o600)
    (entry,) = list_entries(host.state)
    assert entry.state == DAMAGED and "not a regular file" in (entry.error or "")
    done = run_ctguard("rollback", "--state-dir", str(host.state), "--list", timeout=20)
    assert done.returncode == 0 and "damaged" in done.stdout


def test_deep_or_huge_json_is_a_damaged_entry_beside_good_ones(host):
    good = applied_host(host)
    deep = host.state / "journal" / "20990101T000000Z-0001"
    deep.mkdir()
    (deep / "journal.json").write_text("[" * 200_000 + "]" * 200_000)
    huge = host.state / "journal" / "20990101T000000Z-0002"
    huge.mkdir()
    (huge / "journal.json").write_bytes(b" " * (5 * 1024 * 1024))
    entries = {e.id: e for e in list_entries(host.state)}
    assert entries[good].state == "applied"
    assert "nested too deeply" in (entries[deep.name].error or "")
    assert "larger than" in (entries[huge.name].error or "")
    done = run_ctguard("rollback", "--state-dir", str(host.state), "--list")
    assert done.returncode == 0 and good in done.stdout and "internal error" not in done.stderr


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "directory", "huge"])
def test_apply_plan_reads_only_a_bounded_regular_file(tmp_path, kind):
    plan = tmp_path / "plan.json"
    if kind == "dev-zero":
        plan = Path("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(plan)
    elif kind == "directory":
        plan.mkdir()
    else:
        with open(plan, "wb") as f:
            f.truncate(65 * 1024 * 1024)
    tree = snapshot_copy(tmp_path)
    done = run_ctguard("apply", "--root", str(tree), "--plan", str(plan), "--yes", timeout=30)
    assert done.returncode in (2, 3), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


# -- item 5: one apply or rollback at a time -----------------------------------------------
def test_a_held_lock_makes_the_second_apply_wait_then_refuse(host, monkeypatch):
    monkeypatch.setattr(state_module, "LOCK_WAIT", 0.3)
    state = StateDir.on_machine(host.state)
    before = host.snapshot()
    with state.lock(create=True), pytest.raises(BusyError, match="another ctguard apply"):
        apply_host(host)
    assert host.snapshot() == before
    assert applied_host(host)  # once it is free, it goes


def _apply_one(root: str, state: str, content: bytes, results: object) -> None:
    change = WriteFile("/etc/sysctl.d/90-ctguard-conntrack.conf", None, content, 0o644, "x", OURS)
    try:
        apply_changes([change], [], root=Path(root), runtime=TreeRuntime(Path(root)),
                      state_dir=Path(state), meta={})  # fmt: skip
        results.put("applied")  # type: ignore[attr-defined]
    except StalePlanError:
        results.put("stale")  # type: ignore[attr-defined]
    except BusyError:
        results.put("busy")  # type: ignore[attr-defined]
    except Exception as exc:  # reported, so the assertion shows it
        results.put(f"{type(exc).__name__}: {exc}")  # type: ignore[attr-defined]


def test_concurrent_applies_never_both_write(tmp_path):
    """50 pairs of applies, each made from the same 'before': one writes, the other finds
    the file changed (stale) and writes nothing; never a file neither plan makes."""
    ctx = multiprocessing.get_context("fork")
    plans = (b"net.netfilter.nf_conntrack_max = 1\n", b"net.netfilter.nf_conntrack_max = 2\n")
    for attempt in range(50):
        root = tmp_path / str(attempt) / "T"
        (root / "etc/sysctl.d").mkdir(parents=True)
        state = tmp_path / str(attempt) / "state"
        results = ctx.Queue()
        procs = [
            ctx.Process(target=_apply_one, args=(str(root), str(state), p, results)) for p in plans
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
            assert p.exitcode == 0
        got = sorted(results.get(timeout=5) for _ in procs)
        assert got == ["applied", "stale"], (attempt, got)
        assert (root / "etc/sysctl.d/90-ctguard-conntrack.conf").read_bytes() in plans
        assert [e.state for e in list_entries(state)] == ["applied"]


# -- item 3: a --root that is this host ----------------------------------------------------
@pytest.mark.parametrize("how", ["slash", "empty", "link-to-slash", "dotdot"])
def test_a_root_that_resolves_to_slash_never_writes_as_a_tree(tmp_path, how):
    """Writing commands refuse it (with --root they write a tree; this host is written
    without --root); reading ones read this host, as without --root (host/target.py)."""
    link = tmp_path / "link"
    link.symlink_to("/")
    root = {"slash": "/", "empty": "", "link-to-slash": str(link), "dotdot": "/tmp/../"}[how]
    # without --yes: were the refusal missing, the question would fail (no terminal) before
    # anything is written
    for command in (["rollback", "--yes"], ["apply"], ["disable", "--apply"]):
        done = run_ctguard(
            *command, "--root", root, "--state-dir", str(tmp_path / "state"),
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert done.returncode in (2, 3), (command, how, done.stdout)
        assert "--root" in done.stderr and "Traceback" not in done.stderr, (command, how)
        assert not (tmp_path / "state").exists()
    for command in (["apply", "--dry-run"], ["plan"]):
        done = run_ctguard(*command, "--root", root)
        if how == "empty":  # not a directory at all
            assert done.returncode == 3 and "--root" in done.stderr, (command, done.stderr)
            continue
        live = run_ctguard(*command)
        assert done.returncode == live.returncode, (command, how, done.stderr)
        assert "Traceback" not in done.stderr


# -- found by an adversarial review ----------------------------------------------------------
def _file_record(**changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "path": "/usr/local/bin/rootsh", "real_path": "/usr/local/bin/rootsh", "existed": True,
        "mode": 0o6755, "uid": 0, "gid": 0, "before_sha256": "", "after_sha256": "",
        "backup": "0", "kind": "edit", "done": True, "undone": False,
    }  # fmt: skip
    record.update(changes)
    return record


def test_a_trees_journal_cannot_plant_a_setuid_file(tmp_path):
    """It names mode 06755 and owner root for a file whose 'backup' is a shell: the file is
    restored with the mode and owner it has now, never set-id."""
    import hashlib

    tree = snapshot_copy(tmp_path)
    target = tree / "usr/local/bin/rootsh"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"x")
    target.chmod(0o644)
    if os.geteuid() == 0:
        os.chown(target, 1234, 1234)
    shell = b"#!/bin/sh\nexec /bin/sh\n"
    record = _file_record(before_sha256=hashlib.sha256(shell).hexdigest(),
                          after_sha256=hashlib.sha256(b"x").hexdigest())  # fmt: skip
    path = plant(tree / "var/lib/ctguard", hostile_entry(tmp_path / "x", commands=[],
                                                          files=[record]))  # fmt: skip
    (path.parent / "files" / "0").write_bytes(shell)
    done = run_ctguard("rollback", "--root", str(tree), "--yes")
    assert done.returncode == 0, done.stderr
    st = target.stat()
    assert stat.S_IMODE(st.st_mode) == 0o644
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (1234, 1234)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"mode": -1}, "is no file mode"),
        ({"mode": 2**80}, "is no file mode"),
        ({"uid": 2**40}, "is no user or group id"),
        ({"gid": -5}, "is no user or group id"),
    ],
)
def test_impossible_modes_and_owners_are_refused_before_any_write(tmp_path, changes, needle):
    state = tmp_path / "state"
    sysctl = {"name": "nf_conntrack_max", "path": "/proc/sys/net/netfilter/nf_conntrack_max",
              "before": 1, "after": 2, "reads_back": 2, "scope": "global", "done": True,
              "undone": False}  # fmt: skip
    entry = hostile_entry(tmp_path / "x", commands=[], sysctls=[sysctl],
                          files=[_file_record(**changes)])  # fmt: skip
    plant(state, entry)
    runtime = FakeRuntime({"/proc/sys/net/netfilter/nf_conntrack_max": "2"})
    with pytest.raises(CtguardError, match=needle):
        rollback(None, root=tmp_path, runtime=runtime, state_dir=state)
    assert runtime.writes == []


def test_created_dirs_out_of_the_tree_are_refused(tmp_path):
    state = tmp_path / "state"
    plant(state, hostile_entry(tmp_path / "x", commands=[], created_dirs=["/../x"]))
    with pytest.raises(CtguardError, match=r"'/\.\./x'"):
        rollback(None, root=tmp_path, runtime=FakeRuntime({}), state_dir=state)


def test_a_rollback_with_root_never_runs_commands_even_from_a_trusted_state_dir(tmp_path):
    """`rollback --root T --state-dir S`: S is trusted, but a tree has no firewall."""
    tree = snapshot_copy(tmp_path)
    state = tmp_path / "state"
    entry = hostile_entry(tmp_path / "x")
    entry["commands"][0].update(  # type: ignore[index]
        undo_argv=["nft", "-f", "-"], undo_stdin="add table inet ctguard\n", stdin="x"
    )
    plant(state, entry)
    done = run_ctguard("rollback", "--root", str(tree), "--state-dir", str(state), "--yes")
    one_error_line(done, 3, "never runs one")


def test_a_journal_dir_others_can_write_refuses_the_state_dir(tmp_path):
    state = tmp_path / "state"
    plant(state, hostile_entry(tmp_path / "x"))
    (state / "journal").chmod(0o777)
    with pytest.raises(UntrustedStateError, match="journal is writable"):
        rollback(None, root=tmp_path, runtime=FakeRuntime({}), state_dir=state)


def test_a_chained_nft_command_in_a_tagged_rule_is_refused(tmp_path):
    state = tmp_path / "state"
    entry = hostile_entry(tmp_path / "x")
    line = ('add rule inet filter input counter; flush ruleset; add rule inet filter input'
            ' counter comment "ctguard"')  # fmt: skip
    entry["commands"][0].update(undo_argv=["nft", "-f", "-"], undo_stdin=line + "\n", stdin="x")  # type: ignore[index]
    plant(state, entry)

    class Runner:
        def run(self, argv, stdin):
            raise AssertionError(f"ran {argv}")

    with pytest.raises(CtguardError, match="has a line ctguard never writes"):
        rollback(None, root=tmp_path, runtime=FakeRuntime({}), state_dir=state, runner=Runner())


@pytest.mark.parametrize("kind", ["deep", "damaged-newest"])
def test_no_traceback_and_no_false_nothing_to_do(tmp_path, kind):
    tree = snapshot_copy(tmp_path)
    if kind == "deep":
        plan = tmp_path / "deep.json"
        plan.write_text("[" * 100_000 + "]" * 100_000)
        done = run_ctguard("apply", "--root", str(tree), "--plan", str(plan), "--yes")
        one_error_line(done, 2, "nested too deeply")
        return
    assert run_ctguard("apply", "--root", str(tree), "--yes").returncode == 0
    (journal,) = (tree / "var/lib/ctguard/journal").glob("*/journal.json")
    journal.write_text("[" * 100_000)
    done = run_ctguard("rollback", "--root", str(tree), "--yes")
    one_error_line(done, 3, "is damaged")


def test_two_state_dirs_on_one_tree_still_take_turns(tmp_path, monkeypatch):
    """`apply --root T --state-dir A` and `--state-dir B` at once: the tree is locked too."""
    from ctguard.remediation.apply import Tree

    monkeypatch.setattr(state_module, "LOCK_WAIT", 0.3)
    tree = snapshot_copy(tmp_path)
    change = WriteFile("/etc/sysctl.d/90-ctguard-conntrack.conf", None, b"x\n", 0o644, "x", OURS)
    other = StateDir.on_machine(tmp_path / "A")
    with other.lock(create=True, written=Tree(tree)), pytest.raises(BusyError, match=str(tree)):
        apply_changes([change], [], root=tree, runtime=TreeRuntime(tree),
                      state_dir=tmp_path / "B", meta={})  # fmt: skip
    assert not (tree / "etc/sysctl.d/90-ctguard-conntrack.conf").exists()
