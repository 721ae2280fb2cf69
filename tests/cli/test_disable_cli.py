"""`ctguard disable` as an operator runs it: the console script in a subprocess against the
fixture roots of tests/roots/disable/ (stdout, stderr, exit codes, --json, --help).

Golden files: CTGUARD_UPDATE_GOLDEN=1 rewrites tests/cli/golden/disable-*.txt; review the
diff before committing it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from helpers import ROOTS, check_golden, ctguard_bin, one_error_line

DISABLE = ROOTS / "disable"
JSON_KEYS = {
    "schema", "source", "netns", "kernel", "conntrack", "evidence", "status", "exit_code",
    "holders", "rules", "agents", "unload_order", "modprobe_file", "existing", "refusals",
    "notes",
}  # fmt: skip


def _script() -> str:
    here = Path(sys.executable).parent / "ctguard"
    return str(here) if here.is_file() else ctguard_bin()


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_script(), *map(str, args)],
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip


# -- text -------------------------------------------------------------------------------
def test_nat_masquerade_is_refused_with_the_chain() -> None:
    done = run("disable", "--root", DISABLE / "modular-nat-masquerade")
    one_error_line(done, 2, "disable refused: iptables -t filter -A INPUT", "(and 2 more above)")
    assert "    nf_conntrack <- nf_nat <- nft_chain_nat\n" in done.stdout
    assert "  - iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE: NAT" in done.stdout
    assert "modprobe -r" not in done.stdout
    check_golden("disable-modular-nat-masquerade.txt", done.stdout)


def test_idle_module_gets_install_false_and_modprobe_r() -> None:
    done = run("disable", "--root", DISABLE / "modular-idle")
    assert (done.returncode, done.stderr) == (0, "")
    assert "     +install nf_conntrack /bin/false\n" in done.stdout
    assert "       modprobe -r nf_conntrack\n" in done.stdout
    assert "blacklist" not in done.stdout
    check_golden("disable-modular-idle.txt", done.stdout)


def test_obvious_replacements_are_shown_then_files_then_unloads() -> None:
    done = run("disable", "--root", DISABLE / "modular-obvious-replacements")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "       replace  iptables -t filter -A INPUT -p tcp -m state --state NEW" in out
    assert "            by  -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n" in out
    assert "       delete   iptables -t filter -A INPUT -m state --state INVALID -j DROP\n" in out
    rules, file, unload = (out.index(s) for s in ("1. Change", "2. File", "3. Unload"))
    assert rules < file < unload
    assert out.index("modprobe -r xt_state") < out.index("modprobe -r nf_conntrack")


def test_builtin_points_to_notrack_all() -> None:
    done = run("disable", "--root", DISABLE / "builtin")
    one_error_line(done, 2, "built into this kernel", "ctguard notrack --all")
    assert "conntrack builtin" in done.stdout.splitlines()[0]
    assert "REFUSED (exit 2):\n  - nf_conntrack is built into this kernel" in done.stdout
    assert "stop tracking instead: ctguard notrack --all" in done.stdout


def test_agents_are_listed_in_the_refusal() -> None:
    done = run("disable", "--root", DISABLE / "modular-agents")
    assert done.returncode == 2, done.stderr
    refusal = done.stdout[done.stdout.index("REFUSED (exit 2)") :]
    assert "  - dockerd (pid 912) is running: docker masquerades" in refusal
    assert "  - kube-proxy (pid 1402) is running: kube-proxy programs Service NAT" in refusal
    assert "    kube-proxy (pid 1402): /usr/local/bin/kube-proxy --config=" in done.stdout


# -- json -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("scenario", "status", "code"),
    [
        ("modular-nat-masquerade", "refused", 2),
        ("modular-idle", "plan", 0),
        ("modular-obvious-replacements", "plan", 0),
        ("builtin", "refused", 2),
        ("modular-agents", "refused", 2),
    ],
)
def test_json_keys_and_exit_codes(scenario: str, status: str, code: int) -> None:
    done = run("disable", "--root", DISABLE / scenario, "--json")
    assert done.returncode == code, done.stderr
    doc = json.loads(done.stdout)
    assert set(doc) == JSON_KEYS
    assert (doc["schema"], doc["status"], doc["exit_code"]) == ("ctguard.disable/1", status, code)
    assert (doc["source"], doc["netns"], doc["kernel"]) == ("snapshot", None, "6.1.0-18-amd64")


def test_json_plan_content() -> None:
    done = run("disable", "--root", DISABLE / "modular-obvious-replacements", "--json")
    doc = json.loads(done.stdout)
    assert doc["unload_order"] == ["xt_state", "nf_conntrack"]
    assert doc["holders"] == [
        {"module": "xt_state", "chain": ["nf_conntrack", "xt_state"], "refcount": 2, "used_by": []}
    ]
    assert [(r["verdict"], r["replacement"]) for r in doc["rules"]] == [
        ("delete", None),
        ("replace", "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"),
    ]
    file = doc["modprobe_file"]
    assert (file["path"], file["mode"], file["exists"]) == (
        "/etc/modprobe.d/00-ctguard-disable-conntrack.conf", "0644", False,
    )  # fmt: skip
    assert file["content"].splitlines()[1:] == [
        "install nf_conntrack /bin/false",
        "install xt_state /bin/false",
    ]
    assert doc["refusals"] == []


# -- errors and usage -------------------------------------------------------------------
def test_missing_root_is_one_line(tmp_path: Path) -> None:
    gone = tmp_path / "nowhere"
    one_error_line(run("disable", "--root", gone), 3, str(gone), "not a directory")


def test_garbage_proc_modules_is_one_line(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(DISABLE / "modular-idle", root)
    (root / "proc" / "modules").write_text("nf_conntrack 188416\n")
    done = run("disable", "--root", root)
    one_error_line(done, 3, "/proc/modules line 1: expected at least 5 fields, got 2")
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--yes",), "--dry-run, --yes and --state-dir go with --apply"),
        (("--netns", "web1"), "--root and --netns cannot be combined"),
    ],
)
def test_bad_usage(args: tuple[str, ...], needle: str) -> None:
    one_error_line(run("disable", "--root", DISABLE / "modular-idle", *args), 3, needle)


def test_planning_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(DISABLE / "modular-obvious-replacements", root)
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert run("disable", "--root", root).returncode == 0
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before


def test_help_teaches_with_examples() -> None:
    done = run("disable", "--help")
    assert done.returncode == 0
    for needle in (
        "install MOD /bin/false",
        "ctguard notrack --all",
        "Exit codes: 0 plan made",
        "ctguard disable --root snap/ --format json",
        "--netns NAME",
        "--apply",
    ):
        assert needle in done.stdout, needle
    assert "disable" in run("--help").stdout


def test_apply_to_a_tree_writes_the_file_and_rollback_removes_it(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(DISABLE / "modular-idle", root)
    conf = root / "etc/modprobe.d/00-ctguard-disable-conntrack.conf"
    state = tmp_path / "state"
    dry = run("disable", "--root", root, "--apply", "--dry-run")
    assert dry.returncode == 0 and "would create /etc/modprobe.d/00-ctguard" in dry.stdout
    assert "no modules to unload" in dry.stdout and not conf.exists()
    done = run("disable", "--root", root, "--apply", "--yes", "--state-dir", state)
    assert done.returncode == 0, done.stderr
    assert "journal entry" in done.stdout
    text = conf.read_text()
    assert "install nf_conntrack /bin/false\n" in text and "blacklist" not in text
    again = run("disable", "--root", root)
    assert "already" in again.stdout or "nothing to do" in again.stdout.lower()
    rolled = run("rollback", "--root", root, "--state-dir", state, "--yes")
    assert rolled.returncode == 0, rolled.stderr
    assert not conf.exists()


def test_apply_refuses_until_the_rule_changes_are_made(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(DISABLE / "modular-obvious-replacements", root)
    done = run("disable", "--root", root, "--apply", "--yes", "--state-dir", tmp_path / "s")
    one_error_line(done, 2, "change the 2 rule(s) above first")
    assert not (root / "etc/modprobe.d/00-ctguard-disable-conntrack.conf").exists()
    assert not (tmp_path / "s").exists()


def test_apply_with_netns_is_a_usage_error() -> None:
    done = run("disable", "--netns", "web1", "--apply", "--yes")
    one_error_line(done, 3, "modules are global")


def test_a_snapshot_archive_is_planned_as_its_directory(tmp_path: Path) -> None:
    source = DISABLE / "modular-idle"
    archive = tmp_path / "idle.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for child in sorted(source.iterdir()):
            tar.add(child, arcname=child.name)
    for args in ((), ("--format", "json")):
        from_dir, from_archive = (
            run("disable", "--root", source, *args),
            run("disable", "--root", archive, *args),
        )
        assert (from_archive.returncode, from_archive.stderr) == (0, "")
        assert from_archive.stdout == from_dir.stdout
    dry = run("disable", "--root", archive, "--apply", "--dry-run")
    assert (dry.returncode, dry.stderr) == (0, "")
    assert "would create /etc/modprobe.d/00-ctguard-disable-conntrack.conf" in dry.stdout
    written = run("disable", "--root", archive, "--apply", "--yes")
    one_error_line(written, 3, "snapshot archive", "extract it first")
