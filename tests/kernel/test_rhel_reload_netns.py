"""After `ctguard apply --root` on a RHEL 6 tree, the iptables init script's own re-apply
(load_sysctl: `fgrep -hs ITEM /etc/sysctl.conf /etc/sysctl.d/*.conf | sysctl -p -` for each
item of IPTABLES_SYSCTL_LOAD_LIST) really sets the planned values: replayed with the tree's
files into a network namespace of this kernel.

Only the test's own namespaces are written (global keys are read-only or absent there and
are ignored); the tree is a copy under tmp_path.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from helpers import ROOTS, run_ctguard
from netns_helpers import Netns

pytestmark = pytest.mark.kernel

FIXTURE = ROOTS / "apply" / "rhel6-service"
CONFIG = "etc/sysconfig/iptables-config"
ESTABLISHED = "nf_conntrack_tcp_timeout_established"
TIME_WAIT = "nf_conntrack_tcp_timeout_time_wait"
OPTIONS = ("--established-timeout", "2400", "--timeout", "tcp_timeout_time_wait=45")
BROKEN_LIST = "net.nf_conntrack"
GLOBAL_KEYS = ("nf_conntrack_max", "nf_conntrack_buckets", "nf_conntrack_expect_max")


def ok(*args: str) -> str:
    done = run_ctguard(*args, timeout=60)
    assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done.stdout


def load_list(root: Path) -> str:
    """IPTABLES_SYSCTL_LOAD_LIST as the init script gets it: by sourcing the config."""
    done = subprocess.run(
        ["bash", "-c", '. "$1"; printf %s "$IPTABLES_SYSCTL_LOAD_LIST"', "bash",
         str(root / CONFIG)],
        capture_output=True, text=True, timeout=10, check=True,
    )  # fmt: skip
    return done.stdout


def grepped_lines(root: Path, items: str) -> list[str]:
    """load_sysctl's `fgrep -hs $item /etc/sysctl.conf /etc/sysctl.d/*.conf` per item
    (unquoted $item: split on blanks), with the paths under ``root``."""
    files = [str(root / "etc/sysctl.conf"), *sorted(map(str, root.glob("etc/sysctl.d/*.conf")))]
    chunks = []
    for item in items.split():
        done = subprocess.run(
            ["fgrep", "-hs", item, *files], capture_output=True, text=True, timeout=10,
            check=False,
        )  # fmt: skip
        assert done.returncode in (0, 1), done.stderr  # 1: no line matched
        chunks.append(done.stdout)
    return chunks


def reapply(netns_name: str, root: Path, items: str) -> None:
    """Each item's lines piped into procps `sysctl -e -p -` inside the namespace."""
    for chunk in grepped_lines(root, items):
        # Global keys fail there (nf_conntrack_max read-only, net.nf_conntrack_max absent):
        # the exit status is not checked, the values read back are; any complaint must be
        # about a global key.
        done = subprocess.run(
            ["ip", "netns", "exec", netns_name, "sysctl", "-e", "-p", "-"],
            input=chunk, capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        complaints = [line for line in done.stderr.splitlines() if line.strip()]
        assert all(any(k in line for k in GLOBAL_KEYS) for line in complaints), complaints


def read_inside(netns_name: str, name: str) -> int:
    done = subprocess.run(
        ["ip", "netns", "exec", netns_name, "sysctl", "-n", f"net.netfilter.{name}"],
        capture_output=True, text=True, timeout=10, check=True,
    )  # fmt: skip
    return int(done.stdout)


def test_service_reload_reapplies_the_applied_values(netns: Netns, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(FIXTURE, root, symlinks=True)
    state = str(tmp_path / "state")
    assert load_list(root) == BROKEN_LIST
    plan: dict[str, Any] = json.loads(ok("plan", "--root", str(root), *OPTIONS, "--json"))
    planned = {s["name"]: s["after"] for s in plan["sysctls"] if s["scope"] == "netns"}
    assert planned == {ESTABLISHED: 2400, TIME_WAIT: 45}, plan["sysctls"]
    before = {name: read_inside(netns.name, name) for name in planned}
    assert all(before[k] != v for k, v in planned.items()), before  # the test can fail

    out = ok("apply", "--root", str(root), "--yes", "--state-dir", state, *OPTIONS)
    assert "applied" in out, out

    items = load_list(root)
    assert items.split() and items != BROKEN_LIST, items
    reapply(netns.name, root, items)
    assert {name: read_inside(netns.name, name) for name in planned} == planned

    done = run_ctguard("doctor", "--root", str(root), "--only", "CT304", "--format", "json")
    findings = {f["id"]: f for f in json.loads(done.stdout)["findings"]}
    assert findings["CT304"]["status"] == "passed", findings["CT304"]
    assert done.returncode == 0, done.stderr

    # Control: the original (broken) load list over the same applied files leaves the
    # per-namespace values alone, in a second fresh namespace.
    assert load_list(FIXTURE) == BROKEN_LIST
    control = f"ctgt-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", control], check=True, timeout=30)
    try:
        reapply(control, root, load_list(FIXTURE))
        assert read_inside(control, TIME_WAIT) != 45
        assert read_inside(control, ESTABLISHED) != 2400
    finally:
        subprocess.run(["ip", "netns", "del", control], check=False, timeout=30)
    listed = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    assert control not in listed
