"""``ctguard plan --format sh`` (issue 19, item 2): the plan as a script for a host that
cannot run ctguard, run here with dash and bash on copies of the RHEL 6 and RHEL 7 fixture
trees through CTGUARD_ROOT. Afterwards the doctor finds none of the plan's fixes; the tree
is the one ``apply --root`` makes; the undo script gives back every byte and mode; a moved
file (or another host) is refused with one line and nothing changed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ctguard.cli import main
from ctguard.remediation.plan_script import printf_lines
from ctguard.remediation.posix_cksum import posix_cksum
from remediation.plan_sh_helpers import (
    RUN_TIMEOUT,
    SHELLS,
    TREES,
    WITH_BUSYBOX,
    cli_json,
    copy_tree,
    found,
    make_script,
    picture,
    run,
    shell_argv,
)

pytestmark = pytest.mark.skipif(not SHELLS, reason="neither dash nor bash is installed")


@pytest.fixture(params=sorted(TREES))
def tree(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return copy_tree(TREES[request.param], tmp_path / "tree")


@pytest.mark.parametrize("shell", WITH_BUSYBOX)
def test_script_makes_the_plan_and_undo_restores_every_byte(
    shell: str, tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = picture(tree)
    plan = cli_json(capsys, ["plan", "--root", str(tree), "--format", "json"])
    fixes = set(plan["addresses"])
    assert fixes and plan["files"] and plan["sysctls"]  # a plan worth running
    assert fixes <= found(capsys, tree)
    script = make_script(capsys, tree, tmp_path / "plan.sh")
    backups = tmp_path / "backups"

    done = run(shell, script, tree, backups)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert not fixes & found(capsys, tree)
    again = cli_json(capsys, ["plan", "--root", str(tree), "--format", "json"])
    assert again["files"] == [] and again["sysctls"] == []  # nothing left to do
    applied = picture(tree)
    assert applied != original

    rerun = run(shell, script, tree, backups)
    assert (rerun.returncode, rerun.stdout) == (0, "ctguard: everything is in place already\n")
    assert picture(tree) == applied

    undo = run(shell, backups / "undo.sh", tree, backups)
    assert undo.returncode == 0, undo.stderr
    assert picture(tree) == original
    assert fixes <= found(capsys, tree)
    assert run(shell, backups / "undo.sh", tree, backups).returncode == 0  # twice: harmless
    assert picture(tree) == original


def test_script_writes_what_apply_writes(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One home for the bytes: the script's tree is ``apply --root``'s, byte for byte."""
    script = make_script(capsys, tree, tmp_path / "plan.sh")
    by_apply = copy_tree(tree, tmp_path / "by-apply")
    argv = ["apply", "--root", str(by_apply), "--yes", "--state-dir", str(tmp_path / "state")]
    assert main(argv) == 0
    assert run(SHELLS[0], script, tree, tmp_path / "backups").returncode == 0
    assert picture(tree) == picture(by_apply)


@pytest.mark.parametrize("shell", SHELLS)
def test_a_moved_file_is_refused_and_nothing_changes(
    shell: str, tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = make_script(capsys, tree, tmp_path / "plan.sh")
    plan = cli_json(capsys, ["plan", "--root", str(tree), "--format", "json"])
    moved = plan["files"][-1]["path"]  # the last file: refused before the first is touched
    with (tree / moved.lstrip("/")).open("a") as f:
        f.write("# edited by hand after the snapshot\n")
    before = picture(tree)
    backups = tmp_path / "backups"
    refused = run(shell, script, tree, backups)
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert len(refused.stderr.splitlines()) == 1
    assert refused.stderr.startswith(f"ctguard: {moved} changed since the plan was made")
    assert "nothing was changed" in refused.stderr
    assert picture(tree) == before
    assert not backups.exists()


def test_a_moved_runtime_value_is_refused(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = make_script(capsys, tree, tmp_path / "plan.sh")
    value = tree / "proc/sys/net/netfilter/nf_conntrack_buckets"
    hashsize = tree / "sys/module/nf_conntrack/parameters/hashsize"
    for path in (value, hashsize):
        path.write_text("1024\n")
    before = picture(tree)
    refused = run(SHELLS[0], script, tree, tmp_path / "backups")
    assert refused.returncode == 2
    assert "is 1024 now, the plan was made when it was" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1
    assert picture(tree) == before


def test_the_wrong_host_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A RHEL 6 host's script run on a RHEL 7 host: its hostname refuses it, and with the
    hostname check waived (CTGUARD_ANY_HOST=1), its checksums."""
    rhel6, rhel7 = (copy_tree(TREES[n], tmp_path / n) for n in ("rhel6", "rhel7"))
    script = make_script(capsys, rhel6, tmp_path / "plan.sh")
    before = picture(rhel7)
    refused = run(SHELLS[0], script, rhel7, tmp_path / "backups")
    assert refused.returncode == 2
    assert "the plan was made for web03.example.com" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1
    refused = run(SHELLS[0], script, rhel7, tmp_path / "backups", extra={"CTGUARD_ANY_HOST": "1"})
    assert refused.returncode == 2
    assert "changed since the plan was made" in refused.stderr
    assert picture(rhel7) == before


def test_a_clone_with_the_same_files_but_another_name_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Stock files are alike across a fleet: the checksums alone would pass web04."""
    web03 = copy_tree(TREES["rhel6"], tmp_path / "web03")
    script = make_script(capsys, web03, tmp_path / "plan.sh")
    (web03 / "proc/sys/kernel/hostname").write_text("web04.example.com\n")
    before = picture(web03)
    refused = run(SHELLS[0], script, web03, tmp_path / "backups")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "ctguard: this host is web04.example.com, the plan was made for web03.example.com:"
        " nothing was changed (CTGUARD_ANY_HOST=1 runs it anyway)"
    )
    assert picture(web03) == before


def test_a_hostname_cannot_inject_a_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tampered snapshot's hostname with a newline stays text: in the header comment and
    in the host check, never a command of the root script."""
    tree = copy_tree(TREES["rhel6"], tmp_path / "evil")
    marker = tmp_path / "pwned"
    (tree / "proc/sys/kernel/hostname").write_text(f"web03\ntouch {marker} #\n")
    script = make_script(capsys, tree, tmp_path / "plan.sh")
    header = script.read_text().splitlines()[1]
    assert header.startswith("# ctguard ") and f"?touch {marker}" in header
    ran = run(SHELLS[0], script, tree, tmp_path / "backups")
    assert ran.returncode == 0, ran.stderr
    assert not marker.exists()


def test_without_sha256sum_cksum_checks(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A host without sha256sum: POSIX cksum checks the files (a moved one is refused)."""
    tools = tmp_path / "bin"
    tools.mkdir()
    needed = (
        "cksum",
        "tr",
        "cp",
        "mv",
        "rm",
        "mkdir",
        "chmod",
        "sync",
        "dd",
        "cat",
        "sed",
        "id",
        "sh",
        "rmdir",
        "ls",
    )
    for name in needed:
        real = shutil.which(name)
        assert real is not None, name
        (tools / name).symlink_to(real)
    script = make_script(capsys, tree, tmp_path / "plan.sh")
    original = picture(tree)
    other = copy_tree(tree, tmp_path / "moved")
    done = run(SHELLS[0], script, tree, tmp_path / "backups", path=str(tools))
    assert done.returncode == 0, done.stderr
    plan = cli_json(capsys, ["plan", "--root", str(tree), "--format", "json"])
    assert plan["files"] == [] and plan["sysctls"] == []
    undo = run(SHELLS[0], tmp_path / "backups" / "undo.sh", tree, tmp_path / "backups",
               path=str(tools))  # fmt: skip
    assert undo.returncode == 0, undo.stderr
    assert picture(tree) == original
    (other / "etc/sysconfig/iptables-config").write_bytes(b'IPTABLES_MODULES=""\n')
    refused = run(SHELLS[0], script, other, tmp_path / "b2", path=str(tools))
    assert refused.returncode == 2
    assert "cksum" in refused.stderr and "changed since the plan was made" in refused.stderr


def test_the_script_is_posix_sh(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = make_script(capsys, tree, tmp_path / "plan.sh")
    shells = [s for s in ("dash", "bash") if shutil.which(s)]
    checks = [[s, "-n", str(script)] for s in shells]
    if shutil.which("busybox"):
        checks.append(["busybox", "sh", "-n", str(script)])
    for argv in checks:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        assert (done.returncode, done.stderr) == (0, ""), argv
    text = script.read_text()
    assert text.startswith("#!/bin/sh\n") and "\nset -eu\n" in text
    assert "base64" not in text  # printf octal escapes: no tool beyond the shell


# -- the pieces ---------------------------------------------------------------------------
AWKWARD = [
    b"",
    b"no newline at the end",
    b"-n starts like an option\n--\n-\n",
    b"100 % sure, %s %d %%\n",
    b"back\\slash \\n \\0 \\\\ 'quoted' \"double\" $HOME `cmd` *\n",
    bytes(range(256)),
    b"x" * 500 + b"\n" + b"\r\n\t\v\f\n\n",
    "ünïcödé\n".encode(),
]


@pytest.mark.parametrize("shell", SHELLS)
def test_printf_lines_print_exactly_the_bytes(shell: str) -> None:
    for data in AWKWARD:
        script = "\n".join(printf_lines(data)) + "\n"
        done = subprocess.run(
            [*shell_argv(shell), "-c", script], capture_output=True, timeout=RUN_TIMEOUT
        )
        assert done.returncode == 0, (data, done.stderr)
        assert done.stdout == data


@pytest.mark.skipif(shutil.which("cksum") is None, reason="no cksum")
def test_posix_cksum_is_what_cksum_prints() -> None:
    for data in [*AWKWARD, os.urandom(70_000), b"\0" * 256]:
        done = subprocess.run(["cksum"], input=data, capture_output=True, timeout=RUN_TIMEOUT)
        assert done.stdout.decode().split() == posix_cksum(data).split()


def test_no_script_for_a_refused_plan(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plan", "--root", str(TREES["rhel6"]), "--format", "sh",
                 "--target-max", "100000000"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.startswith("ctguard: refused, no script written: nf_conntrack_max 100,000,000")


def test_no_script_for_a_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--netns", "web1", "--format", "sh"]) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert "--format sh writes a host's files and values" in err


def test_a_backup_dir_others_can_write_is_refused_before_any_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The undo script lives with the backups and root may run it later: a backup directory
    another user owns, or whose parent anyone may write (not sticky), is refused."""
    tree = copy_tree(TREES["rhel6"], tmp_path / "web03")
    script = make_script(capsys, tree, tmp_path / "plan.sh")
    before = picture(tree)
    open_parent = tmp_path / "open"
    open_parent.mkdir()
    open_parent.chmod(0o777)  # anyone may write, not sticky: B could be swapped
    refused = run(SHELLS[0], script, tree, open_parent / "backups")
    assert refused.returncode == 3
    assert "is not this user's alone" in refused.stderr
    assert picture(tree) == before and not (open_parent / "backups").exists()
    if os.geteuid() != 0:
        pytest.skip("a directory owned by another user needs root to make")
    planted = tmp_path / "planted"
    planted.mkdir()
    os.chown(planted, 65534, 65534)  # made by someone else beforehand
    refused = run(SHELLS[0], script, tree, planted)
    assert refused.returncode == 3 and picture(tree) == before
    assert not (planted / "undo.sh").exists()


def test_the_undo_leaves_a_file_edited_since_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As `ctguard rollback` refuses to undo over an edit, the undo script keeps a file
    changed after the script wrote it (exit 3, named) and restores the rest;
    CTGUARD_FORCE=1 puts the backup back anyway."""
    tree = copy_tree(TREES["rhel6"], tmp_path / "web03")
    original = (tree / "etc/sysctl.conf").read_bytes()
    script = make_script(capsys, tree, tmp_path / "plan.sh")
    backups = tmp_path / "backups"
    assert run(SHELLS[0], script, tree, backups).returncode == 0
    edited = (tree / "etc/sysctl.conf").read_bytes() + b"vm.swappiness = 10\n"
    (tree / "etc/sysctl.conf").write_bytes(edited)
    modprobe = tree / "etc/modprobe.d/ctguard-conntrack.conf"
    assert modprobe.exists()  # made by the script

    undo = run(SHELLS[0], backups / "undo.sh", tree, backups)
    assert undo.returncode == 3
    assert "/etc/sysctl.conf was changed after the script wrote it" in undo.stderr
    assert (tree / "etc/sysctl.conf").read_bytes() == edited  # the edit is kept
    assert not modprobe.exists()  # the rest is undone

    forced = run(SHELLS[0], backups / "undo.sh", tree, backups, extra={"CTGUARD_FORCE": "1"})
    assert forced.returncode == 0, forced.stderr
    assert (tree / "etc/sysctl.conf").read_bytes() == original


def test_a_linked_directory_in_a_tree_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With CTGUARD_ROOT, /etc/sysconfig as a link to a directory outside the tree must not
    lead the write out of it."""
    tree = copy_tree(TREES["rhel6"], tmp_path / "web03")
    script = make_script(capsys, tree, tmp_path / "plan.sh")
    outside = tmp_path / "outside"
    shutil.copytree(tree / "etc/sysconfig", outside)
    shutil.rmtree(tree / "etc/sysconfig")
    (tree / "etc/sysconfig").symlink_to(outside)
    before = picture(outside)
    refused = run(SHELLS[0], script, tree, tmp_path / "backups")
    assert refused.returncode == 2
    assert "/etc/sysconfig is a link in the tree" in refused.stderr
    assert picture(outside) == before


FAKE_TOOL = '#!/bin/sh\nprintf "%s %s\\n" "${0##*/}" "$*" >> "$CTGUARD_TEST_LOG"\n'


@pytest.mark.parametrize("enforcing", [True, False])
def test_selinux_labels_follow_the_files(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], enforcing: bool
) -> None:
    """A replaced file keeps its own SELinux label (chcon --reference, before the rename),
    a new file gets its path's (restorecon); with SELinux off neither is run."""
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "selinuxenabled").write_text(f"#!/bin/sh\nexit {0 if enforcing else 1}\n")
    for name in ("chcon", "restorecon"):
        (tools / name).write_text(FAKE_TOOL)
    for fake in tools.iterdir():
        fake.chmod(0o755)
    log = tmp_path / "calls.log"
    log.touch()
    plan = cli_json(capsys, ["plan", "--root", str(tree), "--format", "json"])
    paths = [f["path"] for f in plan["files"]]
    existed = {p: (tree / p.lstrip("/")).exists() for p in paths}
    assert True in existed.values() and False in existed.values()  # both kinds are planned
    script = make_script(capsys, tree, tmp_path / "plan.sh")
    path = f"{tools}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    extra = {"CTGUARD_TEST_LOG": str(log)}
    backups = tmp_path / "backups"

    def temp(p: str) -> str:
        folder, name = p.rsplit("/", 1)
        return f"{tree}{folder}/.{name}.ctguard-new"

    done = run(SHELLS[0], script, tree, backups, path=path, extra=extra)
    assert done.returncode == 0, done.stderr
    expected = [
        f"chcon --reference={tree}{p} {temp(p)}" if existed[p] else f"restorecon {tree}{p}"
        for p in paths
    ]
    assert log.read_text().splitlines() == (expected if enforcing else [])

    log.write_text("")
    undo = run(SHELLS[0], backups / "undo.sh", tree, backups, path=path, extra=extra)
    assert undo.returncode == 0, undo.stderr
    restored = [f"chcon --reference={tree}{p} {temp(p)}" for p in reversed(paths) if existed[p]]
    runtime = (f"={tree}/proc/", f"={tree}/sys/")  # a tree's runtime values come back so too
    calls = [line for line in log.read_text().splitlines() if not any(r in line for r in runtime)]
    assert calls == (restored if enforcing else [])


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_each_written_file_is_flushed_alone_not_every_filesystem(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before a rename makes it the file, each new file and backup is fsync'd by itself;
    sync(2), which flushes every filesystem of a busy host, is never called."""
    script = make_script(capsys, tree, tmp_path / "plan.sh")
    paths = [
        f["path"]
        for f in cli_json(capsys, ["plan", "--root", str(tree), "--format", "json"])["files"]
    ]
    backups = sum(1 for p in paths if (tree / p.lstrip("/")).exists())
    log = tmp_path / "strace.log"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CTGUARD_ROOT": str(tree),
           "CTGUARD_BACKUP_DIR": str(tmp_path / "backups"), "LC_ALL": "C"}  # fmt: skip
    argv = ["strace", "-f", "-o", str(log), "-e", "trace=fsync,fdatasync,sync,syncfs",
            "--", shutil.which(SHELLS[0]) or SHELLS[0], str(script)]  # fmt: skip
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert done.returncode == 0, done.stderr
    calls = [line.split(None, 1)[1] for line in log.read_text().splitlines() if "(" in line]
    assert not [c for c in calls if c.startswith(("sync(", "syncfs("))], calls
    assert len([c for c in calls if c.startswith("fsync(")]) >= len(paths) + backups


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck_finds_nothing_in_the_script_or_its_undo(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """shellcheck as POSIX sh (-s sh: no bash features) on both scripts a host runs."""
    script = make_script(capsys, tree, tmp_path / "plan.sh")
    backups = tmp_path / "backups"
    assert run(SHELLS[0], script, tree, backups).returncode == 0
    for checked in (script, backups / "undo.sh"):
        done = subprocess.run(["shellcheck", "-s", "sh", str(checked)],
                              capture_output=True, text=True, timeout=RUN_TIMEOUT)  # fmt: skip
        assert (done.returncode, done.stdout) == (0, ""), checked.name


def test_backups_and_the_undo_keep_each_files_time(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """cp -p keeps a file's modification time in its backup, and the undo puts it back with
    it: flushing them to disk must not rewrite them (a new time would hide when the host's
    file was last really edited)."""
    plan = cli_json(capsys, ["plan", "--root", str(tree), "--format", "json"])
    numbered = {n: f["path"] for n, f in enumerate(plan["files"], 1)}  # backups/files/N
    numbered = {n: p for n, p in numbered.items() if (tree / p.lstrip("/")).exists()}
    existing = list(numbered.values())
    assert existing
    old = 1577934245  # 2020-01-02
    for path in existing:
        os.utime(tree / path.lstrip("/"), (old, old))
    script = make_script(capsys, tree, tmp_path / "plan.sh")
    backups = tmp_path / "backups"
    assert run(SHELLS[0], script, tree, backups).returncode == 0
    kept = [int((backups / "files" / str(n)).stat().st_mtime) for n in numbered]
    assert kept == [old] * len(existing)
    assert run(SHELLS[0], backups / "undo.sh", tree, backups).returncode == 0
    assert [int((tree / p.lstrip("/")).stat().st_mtime) for p in existing] == [old] * len(existing)
