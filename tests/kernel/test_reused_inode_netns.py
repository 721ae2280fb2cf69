"""A namespace number is reused once its namespace is freed: "table full in netns N" lines
an earlier namespace left in the kernel log are not a fresh namespace's drops. With
``--netns`` ctguard filters them by the namespace's age; run inside a named namespace
(``ip netns exec NAME ctguard ...``, how the exporter runs in one) it must too, or a fresh,
empty namespace is paged CRITICAL for a dead one's drops."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from helpers import ctguard_bin
from netns_helpers import ASSURED_TCP, SEND_UDP, fill, tracking_netns, why_no_kernel

pytestmark = pytest.mark.kernel

TRIES = 300  # namespaces made while waiting for the freed number to come back


def _dmesg_names(inode: int) -> bool:
    done = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=30, check=False)
    return f"table full in netns {inode}," in done.stdout


def _ns_with_inode(inode: int, held: list[str]) -> str | None:
    """A new named namespace that got ``inode``, or None. The kernel hands out the lowest
    free number, so the namespaces that got lower ones are kept (in ``held``, for the
    caller to delete) until the freed one comes back."""
    deadline = time.monotonic() + 30
    for i in range(TRIES):
        name = f"ctg-reuse-{os.getpid()}-{i}"
        subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
        held.append(name)
        got = os.stat(f"/run/netns/{name}").st_ino
        if got == inode:
            return name
        if got > inode:  # the old one was not freed yet: free this one and wait
            subprocess.run(["ip", "netns", "del", held.pop()], check=True, timeout=30)
            time.sleep(0.2)
        if time.monotonic() > deadline:
            break
    return None


def test_a_reused_namespace_number_is_not_paged_for_the_old_drops(tmp_path: Path) -> None:
    why = why_no_kernel()
    if why:
        pytest.skip(why)
    with tracking_netns("ctg-old") as old:
        inode = os.stat(f"/run/netns/{old.name}").st_ino
        fill(old, tmp_path, ASSURED_TCP)
        assert int(old.run("python3", "-c", SEND_UDP, "5").stdout) == 5
    assert _dmesg_names(inode), "the kernel logged no 'table full' line for the old namespace"
    held: list[str] = []
    try:
        new = _ns_with_inode(inode, held)
        if new is None:
            pytest.skip(f"the kernel did not hand namespace number {inode} out again")
        done = subprocess.run(
            ["ip", "netns", "exec", new, ctguard_bin(), "doctor", "--only", "CT102",
             "--no-table", "--format", "json"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        (ct102,) = json.loads(done.stdout)["findings"]
        assert ct102["status"] == "passed", ct102
        assert done.returncode == 0, done.stderr
        assert ct102["evidence"][0].startswith("stat drop = 0 ")
    finally:
        for name in held:
            subprocess.run(["ip", "netns", "del", name], check=False, timeout=30)
