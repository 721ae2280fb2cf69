"""The bad arguments the fuzzer (test_fuzz_arguments.py) found, one by one (issue 17):
each is one ``ctguard: error:`` line and exit 3, never "internal error", a hang, or a
device node replaced by a file."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from helpers import ROOTS, one_error_line, run_ctguard

TABLE_ROOT = ROOTS / "doctor" / "ct505-hot-port"
DUMP = TABLE_ROOT / "proc" / "net" / "nf_conntrack"
PLAN_ROOT = ROOTS / "rhel6-modular"


@pytest.mark.parametrize("seconds", ["\u00b2", "\u0663", "1_0", "+5"])
def test_what_if_seconds_are_ascii_digits(seconds: str) -> None:
    # '²'.isdigit() is True and int('²') fails: that was an internal error
    done = run_ctguard("analyze", "--root", str(TABLE_ROOT), "--what-if", f"udp_timeout={seconds}")
    one_error_line(done, 3, "--what-if")


@pytest.mark.parametrize("address", ["fe80::1%eth0", "::1%2", "10.0.0.1%eth0"])
def test_a_local_address_with_a_zone_is_refused(address: str) -> None:
    # ipaddress takes fe80::1%eth0, then its .exploded raised: an internal error
    done = run_ctguard("analyze", str(DUMP), "--local-address", f"10.0.0.10,{address}")
    one_error_line(done, 3, "--local-address", address)


def test_analyze_of_a_fifo_without_writer_answers_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "table.fifo"
    os.mkfifo(fifo)
    done = run_ctguard("analyze", str(fifo), timeout=20)  # it waited for a writer forever
    one_error_line(done, 3, str(fifo), "named pipe", f"- < {fifo}")


def test_analyze_still_reads_a_named_pipe_on_stdin(tmp_path: Path) -> None:
    done = run_ctguard("analyze", "-", "--by", "protocol", "--format", "json",
                       input=DUMP.read_text())  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '"count":1200' in done.stdout.replace(" ", "")


def _node(path: Path, kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    else:  # /dev/null's numbers, made in tmp: what ctguard does to it stays here
        try:
            os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("making a device node needs root")


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_plan_output_never_replaces_what_is_not_a_file(tmp_path: Path, kind: str) -> None:
    # as root, 'plan -o /dev/full' renamed the plan over the device node
    node = tmp_path / "node"
    _node(node, kind)
    done = run_ctguard("plan", "--root", str(PLAN_ROOT), "-o", str(node), timeout=30)
    one_error_line(done, 3, str(node), "not a regular file")
    mode = node.lstat().st_mode
    assert stat.S_ISFIFO(mode) if kind == "fifo" else stat.S_ISCHR(mode)
    assert [p.name for p in tmp_path.iterdir()] == ["node"]  # no temporary file left


def test_plan_output_still_replaces_an_earlier_plan(tmp_path: Path) -> None:
    saved = tmp_path / "plan.json"
    saved.write_text("old")
    done = run_ctguard("plan", "--root", str(PLAN_ROOT), "-o", str(saved))
    assert done.returncode in (0, 2), done.stderr
    assert saved.read_text().startswith("{")


@pytest.mark.parametrize(
    "argv",
    [
        ("apply", "--dry-run", "--state-dir", ""),
        ("apply", "--yes", "--state-dir", ""),
        ("rollback", "--list", "--state-dir", ""),
        ("disable", "--apply", "--yes", "--state-dir", ""),
        ("notrack", "--port", "80", "--state-dir", ""),
        ("plan", "-o", ""),
        ("apply", "--dry-run", "--plan", ""),
    ],
)
def test_an_empty_name_is_not_the_current_directory(tmp_path: Path, argv: tuple[str, ...]) -> None:
    # --state-dir '' journalled into the current directory ("$DIR" unset)
    root = tmp_path / "root"
    shutil.copytree(PLAN_ROOT, root, symlinks=True)
    work = tmp_path / "cwd"
    work.mkdir()
    done = run_ctguard(*argv, "--root", str(root), cwd=work)
    one_error_line(done, 3, "is empty")
    assert not any(work.iterdir())


def test_snapshot_output_may_not_be_empty(tmp_path: Path) -> None:
    done = run_ctguard("snapshot", "--no-table", "-o", "", cwd=tmp_path)
    one_error_line(done, 3, "is empty")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("port", ["\u0663", "+80", "1_000", "\uff18\uff10"])
def test_ports_are_ascii_digits(port: str) -> None:
    # int() took them: '٣' became port 3 in the rules
    done = run_ctguard("notrack", "--root", str(ROOTS / "notrack" / "nft-legacy-ip6tables"),
                       "--port", port)  # fmt: skip
    one_error_line(done, 3, "--port")


def test_ports_with_blanks_around_the_dash_still_parse() -> None:
    done = run_ctguard("notrack", "--root", str(ROOTS / "notrack" / "nft-legacy-ip6tables"),
                       "--port", "9200 - 9300, 53")  # fmt: skip
    assert "internal error" not in done.stderr
    assert done.returncode in (0, 2), done.stderr


@pytest.mark.parametrize("only", ["", ",", " , "])
def test_only_that_names_no_id_is_refused(only: str) -> None:
    # it ran every check, as if --only had not been given
    done = run_ctguard("doctor", "--root", str(PLAN_ROOT), "--only", only)
    one_error_line(done, 3, "--only", "names no ID")


# the timeouts are proc_dointvec_jiffies sysctls: EINVAL over INT_MAX / HZ, and HZ >= 100
NO_KERNEL_TAKES = (2**31 - 1) // 100 + 1


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--timeout", f"udp_timeout={NO_KERNEL_TAKES}"),
        ("--timeout", f"udp_timeout={2**64}"),
        ("--established-timeout", str(NO_KERNEL_TAKES)),
        ("--established-timeout", str(2**64)),
    ],
)
def test_a_timeout_no_kernel_takes_is_refused(option: str, value: str) -> None:
    # it was planned (and written into a --root tree's sysctl.d, where boot rejects it)
    one_error_line(run_ctguard("plan", "--root", str(PLAN_ROOT), option, value), 3, option)


def test_the_largest_timeout_some_kernel_takes_is_planned() -> None:
    done = run_ctguard("plan", "--root", str(PLAN_ROOT), "--timeout",
                       f"udp_timeout={NO_KERNEL_TAKES - 1}", "--format", "json")  # fmt: skip
    assert done.returncode in (0, 2), done.stderr
    assert f"{NO_KERNEL_TAKES - 1}" in done.stdout


@pytest.mark.parametrize("command", [("plan",), ("apply", "--dry-run")])
def test_a_timeout_the_host_does_not_have_is_refused(command: tuple[str, ...]) -> None:
    # a typo was planned as a new key: EINVAL live, an unknown key in sysctl.d at boot
    assert (PLAN_ROOT / "proc/sys/net/netfilter/nf_conntrack_tcp_timeout_time_wait").is_file()
    done = run_ctguard(*command, "--root", str(PLAN_ROOT), "--timeout",
                       "tcp_timeout_time_wiat=30")  # fmt: skip
    one_error_line(done, 3, "--timeout", "tcp_timeout_time_wiat")
    spelled = run_ctguard(*command, "--root", str(PLAN_ROOT), "--timeout",
                          "tcp_timeout_time_wait=30")  # fmt: skip
    assert spelled.returncode in (0, 2), spelled.stderr


@pytest.mark.parametrize(
    "given",
    [("usage_critical=9",), ("usage_warning=96",), ("memory_warning=30",),
     ("usage_warning=90", "usage_critical=85")],
)  # fmt: skip
def test_a_warning_above_its_critical_is_refused(given: tuple[str, ...]) -> None:
    # usage_critical=9 (for 95) made every host with a tenth of its table in use CRITICAL
    argv = [arg for item in given for arg in ("--threshold", item)]
    one_error_line(run_ctguard("doctor", "--root", str(PLAN_ROOT), *argv), 3, "--threshold")


def test_a_warning_equal_to_its_critical_is_allowed() -> None:
    done = run_ctguard("doctor", "--root", str(PLAN_ROOT), "--threshold", "usage_warning=95")
    assert done.returncode in (0, 1, 2), done.stderr
