"""Every network namespace on the host, and how much of the conntrack table each one fills.

Each namespace has its own table, but they all count against the one global
``nf_conntrack_max`` (read in the initial namespace), so a crowded container can starve
the host. A namespace is found either by name (``ip netns add`` bind-mounts it under
/run/netns) or through a process inside it (``/proc/PID/ns/net``), which is how Docker,
containerd, CRI-O and podman namespaces show up; both lead to the same nsfs inode, which
is what identifies a namespace.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ctguard.errors import CtguardError
from ctguard.host.netns import netns_inode, run_in_netns_path
from ctguard.host.root import SMALL_FILE_BYTES, HostRoot

T = TypeVar("T")

MAX_PIDS = 64  # pids kept per namespace: enough to name holders, bounded on busy hosts

StatFn = Callable[[str], os.stat_result]


@dataclass(frozen=True)
class Namespace:
    """One network namespace, found by name, by process, or both."""

    inode: int
    names: tuple[str, ...]  # under /run/netns, sorted
    pids: tuple[int, ...]  # processes inside it, sorted, at most MAX_PIDS
    holder: str  # who keeps it alive, for an operator: "netns web1", "pid 42 nginx"
    path: str  # an nsfs path to setns(2) into
    initial: bool
    container: str | None = None  # short id of the container holding it, from cgroups
    pod: str | None = None  # Kubernetes pod UID, from cgroups


@dataclass(frozen=True)
class Process:
    """What the holder text needs to know about one process."""

    pid: int
    comm: str
    container: str | None  # first 12 hex chars of the container id
    pod: str | None = None  # the Kubernetes pod UID, dashed


# Container runtimes put the full 64-hex container id in the process's cgroup path:
# cgroup v1 docker "/docker/<id>"; systemd cgroup driver "<runtime>-<id>.scope" with
# docker, cri-containerd (containerd's CRI plugin), crio and libpod (podman); the kubelet's
# cgroupfs driver the bare id under the pod's directory ".../pod<UID>/<id>". The
# "crio-conmon-"/"libpod-conmon-" scopes hold the monitor, which stays on the host.
_CONTAINER_ID = re.compile(
    r"(?:/docker/|(?:docker|cri-containerd|crio|libpod)-|/pod[0-9a-f_-]{36}/)"
    r"(?P<id>[0-9a-f]{64})(?:\.scope)?(?:/|$)"
)


def container_id(cgroup_text: str) -> str | None:
    """The short container id in the text of ``/proc/PID/cgroup``, if any.

    >>> container_id("0::/system.slice/docker-3f2a9c1b7d0e" + "a" * 52 + ".scope\\n")
    '3f2a9c1b7d0e'
    >>> container_id("12:memory:/docker/" + "b" * 64 + "\\n")
    'bbbbbbbbbbbb'
    >>> container_id("0::/kubepods.slice/cri-containerd-" + "c" * 64 + ".scope")
    'cccccccccccc'
    >>> container_id("0::/machine.slice/libpod-conmon-" + "d" * 64 + ".scope")
    >>> container_id("0::/user.slice/user-1000.slice/session-3.scope\\n")
    """
    for line in cgroup_text.splitlines():
        path = line.split(":", 2)[-1]
        match = _CONTAINER_ID.search(path)
        if match:
            return match["id"][:12]
    return None


# The kubelet names a pod's cgroup after its UID: cgroupfs driver ".../kubepods[/QOS]/pod<UID>/",
# systemd driver "kubepods[-QOS]-pod<UID with _ for ->.slice". Seen from a process in its own
# cgroup namespace (containerd on cgroup v2 gives each container one) the path is relative,
# "/../../burstable/pod<UID>/<id>", and "kubepods" may not be in it.
_POD_UID = re.compile(
    r"[/-]pod(?P<uid>[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_]"
    r"[0-9a-f]{12})(?:\.slice)?(?:/|$)"
)


def pod_uid(cgroup_text: str) -> str | None:
    """The Kubernetes pod UID in the text of ``/proc/PID/cgroup``, if any.

    >>> pod_uid("0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
    ...         "dc380811_8168_4a9e_9b4a_56ded1b6fe9c.slice/cri-containerd-" + "a" * 64 + ".scope")
    'dc380811-8168-4a9e-9b4a-56ded1b6fe9c'
    >>> pod_uid("4:cpuset:/kubepods/pod8a0412cb-ae87-4bd5-b49d-690fd86f942e/" + "b" * 64)
    '8a0412cb-ae87-4bd5-b49d-690fd86f942e'
    >>> pod_uid("0::/system.slice/docker-" + "c" * 64 + ".scope")
    """
    for line in cgroup_text.splitlines():
        match = _POD_UID.search(line.split(":", 2)[-1])
        if match:
            return match["uid"].replace("_", "-")
    return None


def holder_text(names: Sequence[str], process: Process | None, initial: bool) -> str:
    """Who holds a namespace, in the words an operator searches for.

    >>> holder_text((), None, initial=True)
    'initial namespace'
    >>> holder_text(("web1",), Process(7, "sleep", None), initial=False)
    'netns web1'
    >>> holder_text((), Process(1234, "nginx", "3f2a9c1b7d0e"), initial=False)
    'pid 1234 nginx, container 3f2a9c1b7d0e'
    >>> holder_text((), Process(1234, "nginx", None), initial=False)
    'pid 1234 nginx'
    """
    if initial:
        return "initial namespace"
    if names:
        return "netns " + ", ".join(names)
    if process is None:
        return "no process"
    text = f"pid {process.pid} {process.comm}".rstrip()
    return f"{text}, container {process.container}" if process.container else text


def _pick_holder(pids: Sequence[int], describe: Callable[[int], Process | None]) -> Process | None:
    """The lowest pid in a container, else the lowest pid still alive.

    A container's init is the more useful answer than some ``nsenter`` or ``ip netns
    exec`` that joined it later; pids come sorted, so the first of each kind is lowest.
    """
    first: Process | None = None
    for pid in pids:
        process = describe(pid)
        if process is None:
            continue  # exited since its link was read
        if process.container:
            return process
        first = first or process
    return first


def build_namespaces(
    pid_inodes: Mapping[int, int],
    name_inodes: Mapping[str, int],
    initial_inode: int | None,
    describe: Callable[[int], Process | None],
    proc: str = "/proc",
    netns_dir: str = "/run/netns",
) -> list[Namespace]:
    """Merge processes and names into one record per inode: initial first, then by inode."""
    pids_of: dict[int, list[int]] = {}
    for pid in sorted(pid_inodes):
        pids_of.setdefault(pid_inodes[pid], []).append(pid)
    names_of: dict[int, list[str]] = {}
    for name in sorted(name_inodes):
        names_of.setdefault(name_inodes[name], []).append(name)
    records = []
    for inode in pids_of.keys() | names_of.keys():
        pids = tuple(pids_of.get(inode, ())[:MAX_PIDS])
        names = tuple(names_of.get(inode, ()))
        initial = inode == initial_inode
        # a named namespace may still be a pod's (CNI names them): its container says which
        process = None if initial else _pick_holder(pids, describe)
        path = f"{netns_dir}/{names[0]}" if names else f"{proc}/{pids[0]}/ns/net"
        holder = holder_text(names, process, initial)
        container = process.container if process else None
        pod = process.pod if process else None
        records.append(Namespace(inode, names, pids, holder, path, initial, container, pod))
    return sorted(records, key=lambda ns: (not ns.initial, ns.inode))


def _link_inode(root: HostRoot, path: str) -> int | None:
    try:
        return netns_inode(root.readlink(path))
    except OSError:  # ENOENT/ESRCH: exited meanwhile; EACCES: not ptrace-readable
        return None


def _initial_inode(root: HostRoot, proc: str) -> int | None:
    """The inode of pid 1's namespace, or of kthreadd's when pid 1's link is not readable
    (some sandboxes deny it even to root); kernel threads always live in init_net."""
    inode = _link_inode(root, f"{proc}/1/ns/net")
    if inode is not None:
        return inode
    try:
        comm = root.read_text(f"{proc}/2/comm", SMALL_FILE_BYTES).strip()
    except OSError:
        return None
    return _link_inode(root, f"{proc}/2/ns/net") if comm == "kthreadd" else None


def _describe(root: HostRoot, proc: str, pid: int) -> Process | None:
    try:
        comm = root.read_text(f"{proc}/{pid}/comm", SMALL_FILE_BYTES).strip()
        cgroup = root.read_text(f"{proc}/{pid}/cgroup", SMALL_FILE_BYTES)
    except OSError:
        return None
    return Process(pid, comm, container_id(cgroup), pod_uid(cgroup))


def _name_inodes(netns_dir: str, nsfs_dev: int | None, stat: StatFn) -> dict[str, int]:
    """Names under ``netns_dir`` that are bind mounts of a namespace, with its inode.

    A file left behind by a crashed ``ip netns add`` (or after a reboot, /run not being a
    tmpfs) is not a mount: it lives on the directory's filesystem, not on nsfs.
    """
    try:
        names = sorted(os.listdir(netns_dir))
    except OSError:
        return {}
    found: dict[str, int] = {}
    for name in names:
        try:
            st = stat(f"{netns_dir}/{name}")
        except OSError:
            continue
        if nsfs_dev is not None and st.st_dev == nsfs_dev:
            found[name] = st.st_ino
    return found


def list_namespaces(
    proc: str = "/proc", netns_dir: str = "/run/netns", stat: StatFn = os.stat
) -> list[Namespace]:
    """Every network namespace held by a process or a name under ``netns_dir``.

    Namespaces pinned only by an open fd or by a bind mount elsewhere (another mount
    namespace, a runtime's own directory) are not seen.
    """
    root = HostRoot("/")
    pid_inodes: dict[int, int] = {}
    try:
        entries = os.listdir(proc)
    except OSError:
        entries = []
    for entry in entries:
        if entry.isdigit():
            inode = _link_inode(root, f"{proc}/{entry}/ns/net")
            if inode is not None:
                pid_inodes[int(entry)] = inode
    try:
        nsfs_dev: int | None = stat(f"{proc}/self/ns/net").st_dev
    except OSError:
        nsfs_dev = None
    names = _name_inodes(netns_dir, nsfs_dev, stat)
    return build_namespaces(
        pid_inodes,
        names,
        _initial_inode(root, proc),
        lambda pid: _describe(root, proc, pid),
        proc,
        netns_dir,
    )


@dataclass(frozen=True)
class NamespaceUsage:
    """The number of entries in one namespace's table, or why it is unknown."""

    namespace: Namespace
    count: int | None
    error: str = ""
    max_entries: int = 0  # the global nf_conntrack_max the count is measured against

    def share(self, max_entries: int | None = None) -> float | None:
        """``count`` as a percentage of ``max_entries`` (default: the one stored)."""
        limit = self.max_entries if max_entries is None else max_entries
        if self.count is None or limit <= 0:
            return None
        return 100.0 * self.count / limit


def own_inode() -> int | None:
    """The inode of the namespace ctguard itself runs in."""
    try:
        return os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return None


def _label(namespace: Namespace) -> str:
    if namespace.names:
        return f"netns {namespace.names[0]}"
    if namespace.initial:
        return "the initial netns"
    return f"netns of pid {namespace.pids[0]}" if namespace.pids else f"netns {namespace.inode}"


def run_in_namespace(namespace: Namespace, job: Callable[[], T], timeout: float) -> T:
    """``job()`` inside ``namespace``: directly in ctguard's own one, else in a forked
    child that joins it (root)."""
    if namespace.inode == own_inode():
        return job()
    return run_in_netns_path(namespace.path, job, timeout, _label(namespace))


def _usage(
    namespace: Namespace, own: int | None, count: Callable[[], int], timeout: float
) -> tuple[int | None, str]:
    if namespace.inode != own and os.geteuid() != 0:
        return None, "needs root (setns)"
    try:
        return run_in_namespace(namespace, count, timeout), ""
    except (CtguardError, OSError) as exc:
        return None, str(exc)


def namespace_usage(
    namespaces: Iterable[Namespace],
    max_entries: int,
    count: Callable[[], int],
    each: float = 5.0,
    total: float = 30.0,
) -> list[NamespaceUsage]:
    """Entry count of each namespace, largest first (unknown last, ties by inode).

    ``count()`` reads the calling process's namespace (sources.sysctl_runtime.read_count);
    it runs inside its namespace by a forked child (setns needs root), at
    most ``each`` seconds apiece and ``total`` seconds in all; a namespace that vanished,
    timed out or was not reached gets ``count=None`` and the reason in ``error``.
    """
    own = own_inode()
    deadline = time.monotonic() + total
    usages = []
    for namespace in namespaces:
        left = deadline - time.monotonic()
        if left <= 0:
            found, error = None, f"skipped: time budget of {total:g} s spent"
        else:
            found, error = _usage(namespace, own, count, min(each, left))
        usages.append(NamespaceUsage(namespace, found, error, max_entries))
    return sorted(usages, key=lambda u: (u.count is None, -(u.count or 0), u.namespace.inode))
