"""`ctguard plan`, `ctguard apply` and `ctguard rollback` as an operator runs them
(docs/design.md §3, §8, §9): the console script in a subprocess, against temporary copies
of fixture roots.

Nothing here writes to this machine's /etc, /proc/sys or /var/lib/ctguard: every apply and
rollback runs with --root on a tmp copy of a fixture tree, and the journal goes to a tmp
--state-dir or to the default one, which with --root lands inside the tree
(TREE/var/lib/ctguard). The only runs against the live host are the refusals of an
unprivileged user, which must happen before anything is written.

Golden file: CTGUARD_UPDATE_GOLDEN=1 rewrites tests/cli/golden/plan-rhel6-table-full.txt.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ctguard.remediation.plan_file import checksum
from helpers import ROOTS, check_golden, ctguard_bin, one_error_line

REPO = Path(__file__).parents[2]
CT201 = ROOTS / "doctor" / "ct201-max-10m"  # 8 GiB, built-in conntrack, max 10,485,760
CT106 = ROOTS / "doctor" / "ct106-max-zero"  # max 0: unlimited
RHEL6 = REPO / "examples" / "rhel6-table-full"  # RHEL 6, 4 GiB, max 10,485,760 in sysctl.conf

DROPIN = "/etc/sysctl.d/90-ctguard-conntrack.conf"
MAX_PROC = "proc/sys/net/netfilter/nf_conntrack_max"


# -- running the console script ---------------------------------------------------------
def _script() -> str:
    """The venv's console script (the one next to this interpreter), else the one on PATH."""
    here = Path(sys.executable).parent / "ctguard"
    return str(here) if here.is_file() else ctguard_bin()


CTGUARD = _script()


def run(
    *args: object, cwd: Path | None = None, user: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    # stdin is never a terminal here, even when pytest runs in one: a prompt must not hang
    return subprocess.run(
        [*(user or []), CTGUARD, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


# -- trees --------------------------------------------------------------------------------
def copy_root(source: Path, into: Path, name: str = "tree") -> Path:
    tree = into / name
    shutil.copytree(source, tree, symlinks=True)
    return tree


def tree_state(top: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple[object, ...]]:
    """Every name under ``top`` (relative), with its kind, mode, owner and bytes or link
    target; ``skip`` names top-level-relative paths left out with all they hold."""
    state: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        here = Path(dirpath).relative_to(top)
        dirnames[:] = [d for d in dirnames if (here / d).as_posix() not in skip]
        for name in sorted(dirnames + filenames):
            rel = (here / name).as_posix()
            if rel in skip:
                continue
            path = Path(dirpath) / name
            st = path.lstat()
            owner = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
            if stat.S_ISLNK(st.st_mode):
                state[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                state[rel] = ("dir", *owner)
            else:
                state[rel] = ("file", *owner, path.read_bytes())
    return state


def changed_paths(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def journal_ids(state_dir: Path) -> list[str]:
    journal = state_dir / "journal"
    return sorted(p.name for p in journal.iterdir()) if journal.is_dir() else []


@pytest.fixture
def ct201(tmp_path: Path) -> Path:
    return copy_root(CT201, tmp_path)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(tree, saved plan text): one ct201 copy and its plan, for the tests that must leave
    the tree as it is (each asserts so); they write variants of the plan in their tmp_path."""
    top = tmp_path_factory.mktemp("shared")
    tree = copy_root(CT201, top)
    plan = top / "plan.json"
    done = run("plan", "--root", tree, "-o", plan)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ctguard plan for ")  # -o alone still prints the text
    assert sorted(p.name for p in top.iterdir()) == ["plan.json", "tree"]  # no temp left
    return tree, plan.read_text()


# -- 1. plan: values, diffs, commands; writes nothing -------------------------------------
def test_plan_shows_values_file_diff_and_runtime_command_and_writes_nothing(
    tmp_path: Path, ct201: Path
) -> None:
    before = tree_state(tmp_path)
    done = run("plan", "--root", ct201, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    out = done.stdout
    lowered = re.search(r"^  nf_conntrack_max +10,485,760 -> ([\d,]+)", out, re.M)
    assert lowered, out
    new_max = int(lowered.group(1).replace(",", ""))
    assert 0 < new_max < 10_485_760
    # the unified diff of ctguard's own drop-in, which sets the new value
    assert f"--- /dev/null\n+++ {DROPIN}\n@@ " in out
    assert f"\n+net.netfilter.nf_conntrack_max = {new_max}\n" in out
    # the runtime command, with the value it replaces
    assert f"sysctl -w net.netfilter.nf_conntrack_max={new_max}    # now 10,485,760" in out
    assert "CT201" in out
    # not one byte written: not the tree, not the state dir inside it, not the cwd
    assert tree_state(tmp_path) == before


# -- 2. plan --json and -o FILE ------------------------------------------------------------
def test_plan_json_is_the_document_that_o_saves(shared: tuple[Path, str]) -> None:
    ct201, saved = shared
    before = tree_state(ct201)
    as_json = run("plan", "--root", ct201, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert as_json.stderr == ""
    doc = json.loads(as_json.stdout)
    assert json.loads(saved) == doc

    assert doc["schema"] == "ctguard.plan/1"
    assert re.fullmatch(r"[0-9a-f]{64}", doc["checksum"])
    assert doc["checksum"] == checksum({k: v for k, v in doc.items() if k != "checksum"})
    assert doc["host"] == {
        "hostname": "web-fe-02",
        "machine_id": None,  # the fixture has no etc/machine-id
        "root": str(ct201.resolve()),
        "netns": None,
    }
    assert doc["refusal"] is None
    assert isinstance(doc["files"], list)
    assert isinstance(doc["sysctls"], list)
    new_max = doc["sizing"]["max"]["value"]
    assert doc["sizing"]["max"]["current"] == 10_485_760 > new_max
    (dropin,) = (f for f in doc["files"] if f["path"] == DROPIN)
    assert dropin["before_base64"] is None  # a new file
    after = base64.b64decode(dropin["after_base64"])
    assert f"net.netfilter.nf_conntrack_max = {new_max}\n".encode() in after
    sysctls = {s["name"]: s for s in doc["sysctls"]}
    assert sysctls["nf_conntrack_max"]["before"] == 10_485_760
    assert sysctls["nf_conntrack_max"]["after"] == new_max
    assert sysctls["nf_conntrack_max"]["path"] == "/" + MAX_PROC
    assert "CT201" in doc["addresses"]
    assert tree_state(ct201) == before


# -- 3. refusal: a table that could take a third of RAM ------------------------------------
def test_unsafe_target_is_refused_with_its_cost_unless_forced(
    tmp_path: Path, shared: tuple[Path, str]
) -> None:
    ct201 = shared[0]
    before = tree_state(ct201)
    state_dir = tmp_path / "state"

    refused = run("plan", "--root", ct201, "--target-max", 10_485_760)
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    line = next(ln for ln in refused.stdout.splitlines() if ln.startswith("REFUSED"))
    costs = [int(n.replace(",", "")) for n in re.findall(r"([\d,]+) bytes", line)]
    assert costs, line
    assert costs[0] >= 10_485_760 * 256  # at least 256 B per entry (the fixture's slab)
    assert "25 %" in line
    assert "--force" in line

    forced = run("plan", "--root", ct201, "--target-max", 10_485_760, "--force")
    assert forced.returncode == 0, (forced.stdout, forced.stderr)
    assert "FORCED" in forced.stdout
    assert "REFUSED" not in forced.stdout
    assert f"{costs[0]:,} bytes" in forced.stdout  # the same cost, said again

    applied = run(
        "apply", "--root", ct201, "--target-max", 10_485_760, "--yes", "--state-dir", state_dir
    )
    one_error_line(applied, 2, f"{costs[0]:,} bytes", "--force")
    assert applied.stdout == ""
    assert tree_state(ct201) == before
    assert not state_dir.exists()


# -- 4. apply / rollback round trip -------------------------------------------------------
def test_apply_then_rollback_round_trip(ct201: Path) -> None:
    before = tree_state(ct201)
    assert "var" not in before  # so all of TREE/var below is the default state dir
    state_dir = ct201 / "var" / "lib" / "ctguard"

    applied = run("apply", "--root", ct201, "--yes")
    assert applied.returncode == 0, applied.stderr
    assert applied.stderr == ""
    entry = re.search(r"^journal entry (\S+); undo with: ctguard rollback \1", applied.stdout, re.M)
    assert entry, applied.stdout
    entry_id = entry.group(1)
    assert journal_ids(state_dir) == [entry_id]
    new_max = int((ct201 / MAX_PROC).read_text())
    assert new_max < 10_485_760
    dropin = (ct201 / DROPIN.lstrip("/")).read_text()
    assert f"net.netfilter.nf_conntrack_max = {new_max}\n" in dropin
    changed = changed_paths(before, tree_state(ct201, skip=("var",)))
    assert DROPIN.lstrip("/") in changed
    assert MAX_PROC in changed
    assert all(p.startswith(("etc/sysctl.d/", "proc/sys/", "sys/module/")) for p in changed), (
        changed
    )

    doctor = run("doctor", "--root", ct201, "--only", "CT201", "--format", "json")
    assert doctor.returncode == 0, doctor.stdout
    (finding,) = json.loads(doctor.stdout)["findings"]
    assert (finding["id"], finding["status"]) == ("CT201", "passed")

    again = run("apply", "--root", ct201, "--yes")
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout
    assert journal_ids(state_dir) == [entry_id]  # no second entry

    listed = run("rollback", "--root", ct201, "--list")
    assert listed.returncode == 0, listed.stderr
    assert re.search(rf"^{re.escape(entry_id)}\s+applied\s", listed.stdout, re.M), listed.stdout
    as_json = run("rollback", "--root", ct201, "--list", "--json")
    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout)
    assert rows["schema"] == "ctguard.journal-list/1"
    (row,) = rows["entries"]
    assert (row["id"], row["state"]) == (entry_id, "applied")
    assert DROPIN in row["files"]
    assert "nf_conntrack_max" in row["sysctls"]
    assert row["meta"]["root"] == str(ct201.resolve())

    rolled = run("rollback", "--root", ct201, "--yes")
    assert rolled.returncode == 0, rolled.stderr
    assert f"rolled back {entry_id}" in rolled.stdout
    assert DROPIN in rolled.stdout
    after = tree_state(ct201, skip=("var",))
    assert changed_paths(before, after) == []
    assert after == before

    for again in ([], [entry_id]):  # the latest entry, then by its id: both harmless
        twice = run("rollback", "--root", ct201, "--yes", *again)
        assert twice.returncode == 0, twice.stderr
        assert "nothing to do" in twice.stdout
        assert entry_id in twice.stdout
    assert tree_state(ct201, skip=("var",)) == before

    listed = run("rollback", "--root", ct201, "--list", "--json")
    (row,) = json.loads(listed.stdout)["entries"]
    assert (row["id"], row["state"]) == (entry_id, "rolled-back")


@pytest.mark.parametrize(
    ("source", "expect_changed"),
    [
        # RHEL 6: edits etc/sysctl.conf and iptables-config in place, adds a modprobe file,
        # sets hashsize in sys/module: all must come back byte for byte
        pytest.param(
            RHEL6,
            ["etc/sysconfig/iptables-config", "etc/sysctl.conf"],
            id="rhel6-table-full",
        ),
        pytest.param(CT106, [DROPIN.lstrip("/")], id="ct106-max-zero"),
    ],
)
def test_rollback_restores_every_byte(
    tmp_path: Path, source: Path, expect_changed: list[str]
) -> None:
    tree = copy_root(source, tmp_path)
    state_dir = tmp_path / "state"
    before = tree_state(tree)

    applied = run("apply", "--root", tree, "--yes", "--state-dir", state_dir)
    assert applied.returncode == 0, applied.stderr
    changed = changed_paths(before, tree_state(tree))
    for path in expect_changed:
        assert path in changed
    assert all(p.startswith(("etc/", "proc/sys/", "sys/module/")) for p in changed), changed
    (entry_id,) = journal_ids(state_dir)

    rolled = run("rollback", "--root", tree, "--yes", "--state-dir", state_dir)
    assert rolled.returncode == 0, rolled.stderr
    assert f"rolled back {entry_id}" in rolled.stdout
    assert changed_paths(before, tree_state(tree)) == []


# -- 5. saved plans -----------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path: Path, ct201: Path) -> tuple[Path, Path, Path]:
    """(tree, plan file, state dir): a plan saved for a ct201 tree of the test's own."""
    plan = tmp_path / "plan.json"
    done = run("plan", "--root", ct201, "-o", plan)
    assert done.returncode == 0, done.stderr
    return ct201, plan, tmp_path / "state"


def test_apply_executes_a_saved_plan(saved: tuple[Path, Path, Path]) -> None:
    tree, plan, state_dir = saved
    doc = json.loads(plan.read_text())
    done = run("apply", "--plan", plan, "--root", tree, "--yes", "--state-dir", state_dir)
    assert done.returncode == 0, done.stderr
    assert "journal entry " in done.stdout
    for change in doc["files"]:
        written = (tree / change["path"].lstrip("/")).read_bytes()
        assert written == base64.b64decode(change["after_base64"])
    for change in doc["sysctls"]:
        assert int((tree / change["path"].lstrip("/")).read_text()) == change["reads_back"]
    (entry_id,) = journal_ids(state_dir)
    listed = json.loads(run("rollback", "--list", "--json", "--state-dir", state_dir).stdout)
    assert listed["entries"][0]["meta"]["plan_checksum"] == doc["checksum"]
    assert listed["entries"][0]["id"] == entry_id


def test_a_plan_edited_by_hand_is_refused(tmp_path: Path, shared: tuple[Path, str]) -> None:
    tree, text = shared
    plan, state_dir = tmp_path / "plan.json", tmp_path / "state"
    doc = json.loads(text)
    doc["sysctls"][-1]["after"] += 1  # one value, checksum left as it was
    plan.write_text(json.dumps(doc, indent=2))
    before = tree_state(tree)
    done = run("apply", "--plan", plan, "--root", tree, "--yes", "--state-dir", state_dir)
    one_error_line(done, 2, "checksum")
    assert tree_state(tree) == before
    assert not state_dir.exists()


@pytest.mark.parametrize(
    ("path", "content", "needles"),
    [
        pytest.param(
            "proc/sys/kernel/hostname", "web-fe-03\n", ["hostname", "web-fe-02", "web-fe-03"],
            id="hostname",
        ),
        pytest.param(
            "etc/machine-id", "0123456789abcdef0123456789abcdef\n",
            ["machine_id", "0123456789abcdef0123456789abcdef"], id="machine-id",
        ),
    ],
)  # fmt: skip
def test_a_plan_for_another_host_is_refused(
    saved: tuple[Path, Path, Path], path: str, content: str, needles: list[str]
) -> None:
    tree, plan, state_dir = saved
    (tree / path).write_text(content)
    before = tree_state(tree)
    done = run("apply", "--plan", plan, "--root", tree, "--yes", "--state-dir", state_dir)
    one_error_line(done, 2, "another host", *needles)
    assert tree_state(tree) == before
    assert not state_dir.exists()


def test_a_plan_for_another_tree_is_refused(tmp_path: Path, shared: tuple[Path, str]) -> None:
    tree, text = shared
    plan, state_dir = tmp_path / "plan.json", tmp_path / "state"
    plan.write_text(text)
    other = copy_root(tree, tmp_path, "other")  # same hostname, another root
    before = tree_state(other)
    done = run("apply", "--plan", plan, "--root", other, "--yes", "--state-dir", state_dir)
    one_error_line(done, 2, "another host", "root")
    assert tree_state(other) == before
    assert not state_dir.exists()


def _stale_dropin(tree: Path) -> str:
    (tree / DROPIN.lstrip("/")).write_text("net.netfilter.nf_conntrack_max = 131072\n")
    return DROPIN


def _stale_runtime(tree: Path) -> str:
    (tree / MAX_PROC).write_text("5000000\n")
    return "nf_conntrack_max"


def _stale_sysctl_conf(tree: Path) -> str:
    with (tree / "etc/sysctl.conf").open("a") as f:
        f.write("net.netfilter.nf_conntrack_max = 5000000\n")
    return "/etc/sysctl.conf"


def _stale_iptables_config(tree: Path) -> str:
    with (tree / "etc/sysconfig/iptables-config").open("a") as f:
        f.write('IPTABLES_MODULES_UNLOAD="no"\n')
    return "/etc/sysconfig/iptables-config"


@pytest.mark.parametrize(
    ("source", "change"),
    [
        pytest.param(CT201, _stale_dropin, id="ct201-dropin-appeared"),
        pytest.param(CT201, _stale_runtime, id="ct201-runtime-max-changed"),
        pytest.param(RHEL6, _stale_sysctl_conf, id="rhel6-sysctl.conf-edited"),
        pytest.param(RHEL6, _stale_iptables_config, id="rhel6-iptables-config-edited"),
    ],
)
def test_a_plan_whose_inputs_changed_is_refused(tmp_path: Path, source: Path, change: Any) -> None:
    tree = copy_root(source, tmp_path)
    plan, state_dir = tmp_path / "plan.json", tmp_path / "state"
    assert run("plan", "--root", tree, "-o", plan).returncode == 0
    what = change(tree)
    before = tree_state(tree)
    done = run("apply", "--plan", plan, "--root", tree, "--yes", "--state-dir", state_dir)
    line = one_error_line(done, 2, what, "new plan")
    assert "changed since the plan" in line or "the plan was made when" in line, line
    assert tree_state(tree) == before
    assert journal_ids(state_dir) == []


def test_a_plan_is_refused_when_a_file_it_read_changes_it(
    saved: tuple[Path, Path, Path],
) -> None:
    """60-conntrack.conf is only read (listed under 'Left alone'); once it asks for the
    planned max itself, ctguard would plan no drop-in: the saved plan is outdated."""
    tree, plan, state_dir = saved
    conf = tree / "etc/sysctl.d/60-conntrack.conf"
    conf.write_text(conf.read_text().replace("10485760", "262144"))
    before = tree_state(tree)
    done = run("apply", "--plan", plan, "--root", tree, "--yes", "--state-dir", state_dir)
    one_error_line(done, 2, "outdated", "changed since the plan")
    assert tree_state(tree) == before


def test_an_edit_that_leaves_the_plan_the_same_does_not_block_it(
    saved: tuple[Path, Path, Path],
) -> None:
    """The same file set to yet another unsafe value: ctguard would plan exactly the same
    changes, so the reviewed plan still stands."""
    tree, plan, state_dir = saved
    conf = tree / "etc/sysctl.d/60-conntrack.conf"
    conf.write_text(conf.read_text().replace("10485760", "5000000"))
    done = run("apply", "--plan", plan, "--root", tree, "--yes", "--state-dir", state_dir)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"this is not a plan\n", id="not-json"),
        pytest.param(b"\xff\xfe\x00garbage", id="not-utf8"),
        pytest.param(b"", id="empty"),
        pytest.param(b"[]\n", id="json-list"),
        pytest.param(b'{"schema": "ctguard.plan/1"}\n', id="no-checksum"),
        pytest.param(b'{"schema": "ctguard.doctor/1"}\n', id="other-schema"),
    ],
)
def test_a_file_that_is_not_a_plan_is_one_line(
    tmp_path: Path, shared: tuple[Path, str], content: bytes
) -> None:
    ct201 = shared[0]
    plan, state_dir = tmp_path / "junk.json", tmp_path / "state"
    plan.write_bytes(content)
    before = tree_state(ct201)
    done = run("apply", "--plan", plan, "--root", ct201, "--yes", "--state-dir", state_dir)
    assert done.returncode in (2, 3), (done.returncode, done.stderr)
    one_error_line(done, done.returncode, "junk.json")
    assert tree_state(ct201) == before
    assert not state_dir.exists()


def _resealed(doc: dict[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k != "checksum"}
    return json.dumps({**body, "checksum": checksum(body)})


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda d: d.pop("files"), id="no-files"),
        pytest.param(lambda d: d.__setitem__("files", [1]), id="files-not-objects"),
        pytest.param(lambda d: d.__setitem__("host", None), id="no-host"),
        pytest.param(lambda d: d["files"][0].__setitem__("after_base64", "!!"), id="bad-base64"),
        pytest.param(lambda d: d["sysctls"][0].__setitem__("after", "x"), id="value-not-int"),
        pytest.param(lambda d: d["files"][0].__setitem__("mode", "rw-r--r--"), id="mode-not-octal"),
    ],
)
def test_a_damaged_plan_with_a_valid_checksum_is_refused(
    tmp_path: Path, shared: tuple[Path, str], damage: Any
) -> None:
    tree, text = shared
    plan, state_dir = tmp_path / "plan.json", tmp_path / "state"
    doc = json.loads(text)
    damage(doc)
    plan.write_text(_resealed(doc))
    before = tree_state(tree)
    done = run("apply", "--plan", plan, "--root", tree, "--yes", "--state-dir", state_dir)
    one_error_line(done, 2, "plan.json")
    assert tree_state(tree) == before
    assert journal_ids(state_dir) == []


def test_stale_plan_message_says_make_a_new_plan_once(saved: tuple[Path, Path, Path]) -> None:
    tree, plan, state_dir = saved
    _stale_runtime(tree)
    done = run("apply", "--plan", plan, "--root", tree, "--yes", "--state-dir", state_dir)
    line = one_error_line(done, 2)
    assert line.count("make a new plan") == 1, line


# -- 6. confirmation and --dry-run --------------------------------------------------------
def test_apply_without_yes_and_without_a_terminal_changes_nothing(
    shared: tuple[Path, str],
) -> None:
    ct201 = shared[0]
    before = tree_state(ct201)
    done = run("apply", "--root", ct201)
    one_error_line(done, 3, "--yes")
    assert tree_state(ct201) == before  # TREE/var (the default state dir) not created either


def test_dry_run_says_what_would_change_and_writes_nothing(shared: tuple[Path, str]) -> None:
    ct201 = shared[0]
    before = tree_state(ct201)
    done = run("apply", "--dry-run", "--root", ct201)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    would = [ln for ln in done.stdout.splitlines() if ln.startswith("would ")]
    assert any(ln.startswith(f"would create {DROPIN}") for ln in would), done.stdout
    assert any(ln.startswith("would set nf_conntrack_max 10485760 -> ") for ln in would), would
    assert tree_state(ct201) == before


# -- 7. not root ------------------------------------------------------------------------
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
LIVE_MAX = Path("/proc/sys/net/netfilter/nf_conntrack_max")


@pytest.fixture
def as_nobody() -> list[str]:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    if os.geteuid() != 0:
        pytest.skip("switching to uid 65534 needs root")
    probe = run("--version", user=NOBODY)
    if probe.returncode != 0:
        pytest.skip(
            f"uid 65534 cannot run {CTGUARD} (venv or interpreter not readable by it):"
            f" {probe.stderr.strip()[:200]}"
        )
    if not LIVE_MAX.is_file():
        pytest.skip("no nf_conntrack on this host: apply would stop before its root check")
    return NOBODY


@pytest.fixture
def shared_state_dir() -> Iterator[Path]:
    """A state dir uid 65534 could write to: a write it attempted would show here."""
    with tempfile.TemporaryDirectory(prefix="ctguard-test-state-") as top:
        os.chown(top, 65534, 65534)  # uid 65534's own directory
        yield Path(top) / "state"


def _live_writes() -> tuple[object, ...]:
    dropin = Path(DROPIN)
    return (
        dropin.read_bytes() if dropin.exists() else None,
        Path("/var/lib/ctguard").exists(),
        LIVE_MAX.read_text(),
    )


def test_apply_on_this_host_as_a_user_says_run_as_root(
    as_nobody: list[str], shared_state_dir: Path
) -> None:
    # a target unlike today's, so the plan has changes and apply reaches its root check
    target = 65536 if int(LIVE_MAX.read_text()) != 65536 else 131072
    before = _live_writes()
    done = run(
        "apply", "--yes", "--target-max", target, "--state-dir", shared_state_dir, user=as_nobody
    )
    one_error_line(done, 3, "root")
    assert _live_writes() == before
    assert not shared_state_dir.exists()


def test_apply_as_a_user_is_refused_even_when_nothing_needs_doing(
    as_nobody: list[str], shared_state_dir: Path
) -> None:
    live = run("plan", "--json", user=as_nobody)
    doc = json.loads(live.stdout)
    if doc["files"] or doc["sysctls"]:
        pytest.skip("this host's plan has changes: the test above covers it")
    before = _live_writes()
    done = run("apply", "--yes", "--state-dir", shared_state_dir, user=as_nobody)
    assert _live_writes() == before
    one_error_line(done, 3, "root")


# -- 8. bad input: one line, exit 3 -------------------------------------------------------
BAD_OPTIONS = [
    pytest.param(["--timeout", "garbage"], "NAME=SECONDS", id="timeout-garbage"),
    pytest.param(["--timeout", "tcp_timeout_time_wait=abc"], "abc", id="timeout-not-int"),
    pytest.param(["--root", "/nonexistent"], "/nonexistent", id="root-missing"),
    # plan reads a snapshot archive (this one is damaged); apply writes into a directory only
    pytest.param(
        ["--root", "{archive}"], "not a directory|not a readable tar archive", id="root-is-a-file"
    ),
    pytest.param(["--memory-budget", "0"], "--memory-budget", id="budget-zero"),
    pytest.param(["--netns", "y", "--root", "{tree}"], "--netns", id="root-and-netns"),
]


@pytest.mark.parametrize("command", ["plan", "apply"])
@pytest.mark.parametrize(("options", "needle"), BAD_OPTIONS)
def test_bad_options_are_one_line(
    tmp_path: Path, shared: tuple[Path, str], command: str, options: list[str], needle: str
) -> None:
    if "|" in needle:
        needle = needle.split("|")[command == "plan"]
    ct201 = shared[0]
    archive = tmp_path / "snapshot.tar.gz"
    archive.write_bytes(b"\x1f\x8b\x08\x00not really")
    args = [o.format(tree=ct201, archive=archive) for o in options]
    if "--root" not in args:
        args += ["--root", str(ct201)]  # apply must never reach this machine
    if command == "apply":
        args += ["--yes", "--state-dir", str(tmp_path / "state")]
    before = tree_state(tmp_path), tree_state(ct201)
    done = run(command, *args)
    one_error_line(done, 3, needle)
    assert done.stdout == ""
    assert (tree_state(tmp_path), tree_state(ct201)) == before


def test_rollback_of_an_unknown_id_is_one_line(shared: tuple[Path, str]) -> None:
    ct201 = shared[0]
    before = tree_state(ct201)
    one_error_line(run("rollback", "--root", ct201, "--yes", "NOSUCHID"), 3, "NOSUCHID")
    assert tree_state(ct201) == before


def test_rollback_into_a_missing_root_is_one_line() -> None:
    one_error_line(run("rollback", "--root", "/nonexistent", "--yes"), 3, "/nonexistent")


def test_apply_of_a_missing_plan_file_is_one_line(shared: tuple[Path, str]) -> None:
    ct201 = shared[0]
    before = tree_state(ct201)
    done = run("apply", "--plan", "/nonexistent", "--root", ct201, "--yes")
    one_error_line(done, 3, "/nonexistent")
    assert tree_state(ct201) == before


# -- 9. --help teaches --------------------------------------------------------------------
@pytest.mark.parametrize(
    "command",
    [
        "plan",
        "apply",
        "rollback",
    ],
)
def test_help_has_examples_and_exit_codes(command: str) -> None:
    done = run(command, "--help")
    assert done.returncode == 0, done.stderr
    assert "Examples" in done.stdout
    assert f"ctguard {command}" in done.stdout.split("Examples", 1)[1]
    assert "Exit codes" in done.stdout


# -- 10. the RHEL 6 seed story ------------------------------------------------------------
def test_plan_for_the_rhel6_example_is_golden(tmp_path: Path) -> None:
    tree = copy_root(RHEL6, tmp_path, "rhel6-table-full")
    before = tree_state(tree)
    # a relative --root from a tmp cwd keeps the tmp path out of the text
    done = run("plan", "--root", "rhel6-table-full", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    text = done.stdout.replace(str(tmp_path), "TMP")
    lines = text.splitlines()

    assert lines[0] == "ctguard plan for web03.example.com (tree rhel6-table-full)"
    assert re.search(r"^  nf_conntrack_max +10,485,760 -> [\d,]+ ", text, re.M), text
    assert "--- /etc/sysconfig/iptables-config\n+++ /etc/sysconfig/iptables-config\n" in text
    removed = [ln for ln in lines if ln.startswith("-IPTABLES_SYSCTL_LOAD_LIST=")]
    added = [ln for ln in lines if ln.startswith("+IPTABLES_SYSCTL_LOAD_LIST=")]
    assert removed == ['-IPTABLES_SYSCTL_LOAD_LIST=""'], removed
    assert len(added) == 1 and ".nf_conntrack" in added[0], added
    assert any(ln.lstrip().startswith("sysctl -w net.netfilter.nf_conntrack_max=") for ln in lines)
    assert "CT304" in text
    assert tree_state(tree) == before

    check_golden("plan-rhel6-table-full.txt", text)


# -- 11. snapshot archives: read like a directory, never written --------------------------
def make_archive(source: Path, archive: Path) -> Path:
    """``source`` as a snapshot archive, its files at the top like 'ctguard snapshot' makes."""
    with tarfile.open(archive, "w:gz") as tar:
        for child in sorted(source.iterdir()):
            tar.add(child, arcname=child.name)
    return archive


@pytest.fixture(scope="module")
def rhel6_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_archive(RHEL6, tmp_path_factory.mktemp("archive") / "rhel6.tar.gz")


def _plan_values(doc: dict[str, Any]) -> dict[str, Any]:
    """A plan document without what names the place it was made from."""
    return {k: v for k, v in doc.items() if k not in ("host", "checksum")}


def test_plan_of_an_archive_is_the_plan_of_its_directory(
    tmp_path: Path, rhel6_archive: Path
) -> None:
    from_dir = run("plan", "--root", RHEL6, "--format", "json")
    from_archive = run("plan", "--root", rhel6_archive, "--format", "json")
    assert (from_dir.returncode, from_dir.stderr) == (0, "")
    assert (from_archive.returncode, from_archive.stderr) == (0, "")
    dir_doc, archive_doc = json.loads(from_dir.stdout), json.loads(from_archive.stdout)
    assert dir_doc["files"] and dir_doc["sysctls"]  # not vacuous
    assert _plan_values(archive_doc) == _plan_values(dir_doc)
    assert archive_doc["host"] == {**dir_doc["host"], "root": str(rhel6_archive.resolve())}

    text = run("plan", "--root", rhel6_archive.name, cwd=rhel6_archive.parent)
    assert text.returncode == 0, text.stderr
    first, rest = text.stdout.split("\n", 1)
    assert first == "ctguard plan for web03.example.com (snapshot rhel6.tar.gz)"
    assert rest == run("plan", "--root", RHEL6).stdout.split("\n", 1)[1]

    # -o from an archive, then a dry run of exactly that plan against the archive
    saved = tmp_path / "plan.json"
    assert run("plan", "--root", rhel6_archive, "-o", saved).returncode == 0
    assert json.loads(saved.read_text()) == archive_doc
    dry = run("apply", "--dry-run", "--plan", saved, "--root", rhel6_archive)
    assert (dry.returncode, dry.stderr) == (0, "")
    assert "would replace /etc/sysctl.conf" in dry.stdout


def test_apply_dry_run_of_an_archive_is_the_dry_run_of_its_directory(
    tmp_path: Path, rhel6_archive: Path
) -> None:
    tree = copy_root(RHEL6, tmp_path)
    from_dir = run("apply", "--dry-run", "--root", tree, "--format", "json")
    from_archive = run("apply", "--dry-run", "--root", rhel6_archive, "--format", "json")
    assert (from_archive.returncode, from_archive.stderr) == (0, "")
    dir_doc, archive_doc = json.loads(from_dir.stdout), json.loads(from_archive.stdout)
    assert archive_doc["status"] == "dry-run" and archive_doc["changed"]
    assert archive_doc["changed"] == dir_doc["changed"]


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["apply", "--yes"], id="apply"),
        pytest.param(["apply", "--plan", "{plan}", "--yes"], id="apply-plan"),
        pytest.param(["rollback", "--yes"], id="rollback"),
        pytest.param(["rollback", "--list"], id="rollback-list"),
        pytest.param(["disable", "--apply", "--yes"], id="disable-apply"),
    ],
)
def test_writing_into_an_archive_is_one_line(
    tmp_path: Path, rhel6_archive: Path, args: list[str]
) -> None:
    plan = tmp_path / "plan.json"
    assert run("plan", "--root", rhel6_archive, "-o", plan).returncode == 0
    before = rhel6_archive.read_bytes(), tree_state(tmp_path)
    state_dir = tmp_path / "state"
    command = [a.format(plan=plan) for a in args]
    done = run(*command, "--root", rhel6_archive, "--state-dir", state_dir)
    line = one_error_line(done, 3, str(rhel6_archive), "not a directory", "extract")
    assert line.count("\n") == 0
    assert done.stdout == ""
    assert (rhel6_archive.read_bytes(), tree_state(tmp_path)) == before


def test_a_saved_plan_applied_twice_is_in_place_the_second_time(
    saved: tuple[Path, Path, Path],
) -> None:
    """Once applied, the host no longer matches what the plan was made from, but it holds
    every change of it: a second run (Ansible's idempotence) has nothing to do, changes no
    byte and journals nothing, as a second run of a fresh plan."""
    tree, plan, state_dir = saved
    first = run("apply", "--plan", plan, "--root", tree, "--yes", "--state-dir", state_dir)
    assert first.returncode == 0, first.stderr
    applied = tree_state(tree)
    for argv in (["--yes"], ["--dry-run"]):
        again = run("apply", "--plan", plan, "--root", tree, "--state-dir", state_dir, *argv)
        assert again.returncode == 0, again.stderr
        assert "in place" in again.stdout
    assert tree_state(tree) == applied
    assert len(journal_ids(state_dir)) == 1
