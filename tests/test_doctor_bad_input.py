"""Garbage in any input never crashes ``doctor``: the rule skips or the input is ignored.

Every input the catalogue reads is replaced in turn, in a copy of the example snapshot, by
binary junk, a truncated copy and an oversized file; the doctor must still produce its
whole report (one object per rule) and say what it could not use.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ctguard.facts import collect
from ctguard.host.commands import CapturedCommands
from ctguard.host.root import HostRoot
from ctguard.rules import RULES, selected
from ctguard.usecases.doctor import diagnose
from helpers import run_ctguard

EXAMPLE = Path(__file__).parent.parent / "examples" / "rhel6-table-full"
INPUTS = (
    "etc/sysctl.conf",
    "etc/sysctl.d/90-conntrack.conf",
    "etc/sysconfig/iptables-config",
    "etc/rc.d/init.d/iptables",
    "etc/modprobe.d/conntrack.conf",
    "etc/modules-load.d/conntrack.conf",
    "etc/udev/rules.d/90-conntrack.rules",
    "etc/tuned/active_profile",
    "proc/net/stat/nf_conntrack",
    "proc/meminfo",
    "proc/cmdline",
    "proc/modules",
    "proc/sys/kernel/osrelease",
    "sys/module/nf_conntrack/initstate",
    "sys/module/nf_conntrack/parameters/hashsize",
    "sys/kernel/slab/nf_conntrack/slab_size",
    "proc/sys/net/netfilter/nf_conntrack_max",
    "var/log/messages",
    "ctguard_commands/iptables-save",
    "ctguard_commands/ip6tables-save",
    "ctguard_commands/nft-json",
    "ctguard_commands/dmesg",
    "ctguard_commands/ps",
    "ctguard_commands/uname-r",
    "ctguard_manifest.json",
)


def _binary(_old: bytes) -> bytes:
    return bytes(range(256)) * 16 + b"\x00\xff\n=\n[\n{\n" * 50


def _truncated(old: bytes) -> bytes:
    return old[: max(1, len(old) // 2 - 7)]


def _huge(old: bytes) -> bytes:
    line = (old.splitlines() or [b"x = 1"])[-1][:200] + b"\n"
    return line * ((3 << 20) // len(line) + 1)  # 3 MiB: above every per-file cap but logs'


MUTATIONS = {"binary": _binary, "truncated": _truncated, "huge": _huge}


def _root(tmp_path: Path, relative: str, mutation: str) -> Path:
    root = tmp_path / "root"
    shutil.copytree(EXAMPLE, root, symlinks=True)
    target = root / relative
    old = target.read_bytes() if target.is_file() else b"net.netfilter.nf_conntrack_max = 1\n"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(MUTATIONS[mutation](old))
    return root


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@pytest.mark.parametrize("relative", INPUTS)
def test_doctor_survives(tmp_path: Path, relative: str, mutation: str) -> None:
    root = _root(tmp_path, relative, mutation)
    host = HostRoot(root)
    report = diagnose(collect(host, CapturedCommands(host)))
    assert [f.id for f in report.findings] == selected(())
    assert len(report.findings) == len(RULES)
    for finding in report.findings:
        if finding.status.value == "skipped":
            assert finding.reason, finding  # a skip always says why


@pytest.mark.parametrize("relative", ["ctguard_commands/nft-json", "proc/meminfo"])
def test_console_script_reports_not_crashes(tmp_path: Path, relative: str) -> None:
    root = _root(tmp_path, relative, "binary")
    done = run_ctguard("doctor", "--root", str(root), "--format", "json")
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    assert done.returncode == report["exit_code"]
