"""Every network namespace on the host, against the real kernel: two named namespaces and
one held only by a process, each with a known number of conntrack entries (docs/design.md §10)."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ctguard.host.namespaces import Namespace, list_namespaces, namespace_usage
from ctguard.host.netns import netns_inode
from ctguard.sources.sysctl_runtime import read_count
from netns_helpers import why_no_kernel

pytestmark = pytest.mark.kernel

ENTRY = (
    "-I -p tcp -s 127.0.0.2 -d 127.0.0.1 --sport {port} --dport 80"
    " --state ESTABLISHED --status ASSURED,SEEN_REPLY -t 300"
)


def inode_of(pid: int) -> int | None:
    try:
        return netns_inode(os.readlink(f"/proc/{pid}/ns/net"))
    except OSError:
        return None


def wait_for_inode(
    proc: subprocess.Popen[bytes], wanted: Callable[[int], bool], timeout: float = 10
) -> int:
    """The process's namespace inode once ``wanted(inode)`` holds (it setns/unshares first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        inode = inode_of(proc.pid)
        if inode is not None and wanted(inode):
            return inode
        assert proc.poll() is None, f"{proc.args!r} exited early"
        time.sleep(0.02)
    raise AssertionError(f"{proc.args!r} did not enter its namespace in {timeout} s")


def insert(prefix: list[str], n: int) -> None:
    for i in range(n):
        subprocess.run(
            [*prefix, "conntrack", *ENTRY.format(port=20000 + i).split()],
            check=True,
            capture_output=True,
            timeout=30,
        )


@dataclass
class World:
    named: tuple[str, str]
    inodes: dict[str, int]  # name -> inode; "proc" for the process-held one
    sharer: subprocess.Popen[bytes]  # `ip netns exec NAME1 sleep 60`
    holder: subprocess.Popen[bytes]  # `unshare --net sleep 60`


@pytest.fixture
def world() -> Iterator[World]:
    why = why_no_kernel()
    if why:
        pytest.skip(why)
    suffix = secrets.token_hex(4)
    names = (f"ctg-ns-{suffix}-a", f"ctg-ns-{suffix}-b")
    procs: list[subprocess.Popen[bytes]] = []
    created: list[str] = []
    try:
        for name in names:
            subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
            created.append(name)
        inodes = {name: os.stat(f"/run/netns/{name}").st_ino for name in names}
        own = inode_of(os.getpid())
        # both exec sleep in place, so the Popen pid is the process inside the namespace
        sharer = subprocess.Popen(["ip", "netns", "exec", names[0], "sleep", "60"])
        procs.append(sharer)
        holder = subprocess.Popen(["unshare", "--net", "sleep", "60"])
        procs.append(holder)
        wait_for_inode(sharer, lambda i: i == inodes[names[0]])
        inodes["proc"] = wait_for_inode(holder, lambda i: i != own)
        insert(["ip", "netns", "exec", names[0]], 3)
        insert(["ip", "netns", "exec", names[1]], 5)
        insert(["nsenter", f"--net=/proc/{holder.pid}/ns/net"], 7)
        yield World(names, inodes, sharer, holder)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=30)
        for name in created:
            subprocess.run(["ip", "netns", "del", name], check=False, timeout=30)
    listed = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    assert not any(name in listed for name in names)


def by_inode(found: list[Namespace], inode: int) -> Namespace:
    matches = [ns for ns in found if ns.inode == inode]
    assert len(matches) == 1, f"namespace {inode} listed {len(matches)} times"
    return matches[0]


def test_each_namespace_listed_once_with_its_holder(world: World) -> None:
    a, b = world.named
    found = list_namespaces()

    assert len({ns.inode for ns in found}) == len(found)
    first = found[0]
    assert first.initial
    assert first.holder == "initial namespace"
    assert sum(ns.initial for ns in found) == 1

    shared = by_inode(found, world.inodes[a])
    assert shared.names == (a,)
    assert shared.pids == (world.sharer.pid,)  # dedup: the name and the process, one record
    assert shared.holder == f"netns {a}"
    assert shared.path == f"/run/netns/{a}"

    named = by_inode(found, world.inodes[b])
    assert (named.names, named.pids, named.holder) == ((b,), (), f"netns {b}")

    held = by_inode(found, world.inodes["proc"])
    assert held.names == ()
    assert held.pids == (world.holder.pid,)
    assert held.holder == f"pid {world.holder.pid} sleep"
    assert held.path == f"/proc/{world.holder.pid}/ns/net"
    assert not (shared.initial or named.initial or held.initial)


def test_usage_counts_entries_inside_each_namespace(world: World) -> None:
    a, b = world.named
    found = list_namespaces()
    ours = [ns for ns in found if ns.inode in world.inodes.values()]
    initial = [ns for ns in found if ns.initial]
    max_entries = int(Path("/proc/sys/net/netfilter/nf_conntrack_max").read_text())

    usage = namespace_usage([*initial, *ours], max_entries, read_count)

    counts = {u.namespace.inode: (u.count, u.error) for u in usage}
    assert counts[world.inodes[a]] == (3, "")
    assert counts[world.inodes[b]] == (5, "")
    assert counts[world.inodes["proc"]] == (7, "")
    host_count = int(Path("/proc/sys/net/netfilter/nf_conntrack_count").read_text())
    initial_count, error = counts[initial[0].inode]
    assert error == ""
    assert initial_count is not None
    assert abs(initial_count - host_count) < 1000  # other traffic may come and go
    ranked = [u.namespace.inode for u in usage if u.namespace.inode in world.inodes.values()]
    assert ranked == [world.inodes["proc"], world.inodes[b], world.inodes[a]]
    seven = next(u for u in usage if u.count == 7 and not u.namespace.initial)
    assert seven.share() == pytest.approx(100 * 7 / max_entries)


def test_usage_of_a_namespace_whose_holder_exited(world: World) -> None:
    held = by_inode(list_namespaces(), world.inodes["proc"])
    world.holder.kill()
    world.holder.wait(timeout=30)

    (usage,) = namespace_usage([held], 1000, read_count, each=5, total=10)

    assert usage.count is None
    assert "vanished" in usage.error
    assert usage.error.startswith(f"netns of pid {world.holder.pid}")
