"""``ctguard exporter --netns all``: each network namespace's table size and counters.

Every namespace has its own table and its own counters (they all count against the one
global nf_conntrack_max), so a container filling its table drops packets the host's own
numbers never show. On each scrape the namespaces are listed (host/namespaces.py: named
ones and those held by processes) and read from one thread that joins each in turn
(host/netns_thread.py: no fork per namespace). The namespace the exporter runs in is the
unlabelled host series and is not read again here.

Cardinality is bounded: at most ``max_netns`` namespaces are read, those seen longest
first (an inode number says nothing of age: freed numbers are handed out again), named
ones first among those seen together; the rest are counted in ``left_out``. A new
namespace never pushes out one already exported, so series do not come and go with
churn. The whole walk has a time budget; a namespace that vanished, could not be entered
or timed out is reported down with why, never a failed scrape.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ctguard.errors import CtguardError
from ctguard.facts import read_safely
from ctguard.host.commands import LiveCommands
from ctguard.host.namespaces import Namespace, list_namespaces
from ctguard.host.namespaces import own_inode as namespaces_own_inode
from ctguard.host.netns_thread import NamespaceThread, thread_proc
from ctguard.host.root import HostRoot
from ctguard.missing import Missing
from ctguard.sources.stats import STAT_FILE_UNDER, ConntrackStats, read_stats, stats_source
from ctguard.sources.sysctl_runtime import read_count

DEFAULT_MAX_NETNS = 100  # a dense Kubernetes node runs 110 pods
EACH = 1.0  # seconds one namespace may take
BUDGET = 4.0  # seconds all of them may take in one scrape (see exporter.DOCTOR_WAIT)


@dataclass(frozen=True)
class NamespaceSample:
    """One namespace's reading; ``error`` says why it is down (``up`` False)."""

    netns: str  # its name under /run/netns, else its inode
    container: str  # short container id from cgroups, "" when none
    pod: str  # Kubernetes pod UID from cgroups, "" when none
    entries: int | None = None
    stats: Mapping[str, int] = field(default_factory=dict)
    stats_source: str = ""  # "": the namespace was not read (not "none": no counters there)
    up: bool = False
    error: str = ""


@dataclass(frozen=True)
class NamespacesSample:
    found: int  # namespaces listed, besides the exporter's own
    left_out: int  # found but not read: past --max-netns
    namespaces: tuple[NamespaceSample, ...]


def netns_label(namespace: Namespace) -> str:
    r"""The ``netns`` label: the first name, else the inode (what ``lsns -t net`` shows).

    A name is any bytes but "/" and NUL; bytes that are not UTF-8 are shown escaped, as a
    label must be text:

    >>> netns_label(Namespace(7, ("web\udcff",), (), "", "", False))
    'web\\xff'
    """
    if not namespace.names:
        return str(namespace.inode)
    return os.fsencode(namespace.names[0]).decode("utf-8", "backslashreplace")


def _chosen(namespaces: list[Namespace], seen: dict[int, int], limit: int) -> list[Namespace]:
    """The ``limit`` namespaces seen longest (``seen``: inode -> the sample that first saw
    it; updated here, and forgotten once a namespace is gone)."""
    listed = {ns.inode for ns in namespaces}
    for inode in [i for i in seen if i not in listed]:
        del seen[inode]
    now = max(seen.values(), default=-1) + 1
    for ns in namespaces:
        seen.setdefault(ns.inode, now)
    return sorted(namespaces, key=lambda ns: (seen[ns.inode], not ns.names, ns.inode))[:limit]


Reading = tuple[int | Missing, ConntrackStats | Missing]


def read_here() -> Reading:
    """The calling thread's namespace: its entry count and counters."""
    stat_file = thread_proc() + STAT_FILE_UNDER
    return read_safely(read_count), read_safely(
        read_stats, HostRoot("/"), LiveCommands(), stat_file
    )


def _sample(namespace: Namespace, reading: Reading) -> NamespaceSample:
    count, stats = reading
    errors = [x.reason for x in (count, stats) if isinstance(x, Missing)]
    return NamespaceSample(
        netns_label(namespace),
        namespace.container or "",
        namespace.pod or "",
        entries=None if isinstance(count, Missing) else count,
        stats=dict(stats.totals) if isinstance(stats, ConntrackStats) else {},
        stats_source=stats_source(stats),
        # up: entered and its table size read; counters a kernel cannot give (no procfs, no
        # ctnetlink) are the stats source "none", the host's own alert, not a namespace down
        up=not isinstance(count, Missing),
        error="; ".join(errors),
    )


class NamespacesReader:
    """Reads up to ``max_netns`` namespaces per ``sample()``; ``close()`` ends its thread."""

    def __init__(
        self,
        max_netns: int = DEFAULT_MAX_NETNS,
        own_inode: Callable[[], int | None] | None = None,
        lister: Callable[[], list[Namespace]] = list_namespaces,
        read: Callable[[], Reading] = read_here,
    ) -> None:
        self.max_netns = max_netns
        self._lister = lister
        self._read = read
        self._own_inode = own_inode or namespaces_own_inode
        self._thread = NamespaceThread()
        self._seen: dict[int, int] = {}

    def close(self) -> None:
        self._thread.close()

    def sample(self) -> NamespacesSample:
        own = self._own_inode()
        listed = [ns for ns in self._lister() if ns.inode != own]
        chosen = _chosen(listed, self._seen, self.max_netns)
        deadline = time.monotonic() + BUDGET
        samples = []
        for namespace in chosen:
            label = netns_label(namespace)
            blank = NamespaceSample(label, namespace.container or "", namespace.pod or "")
            left = deadline - time.monotonic()
            if left <= 0:
                samples.append(_failed(blank, f"skipped: the {BUDGET:g} s budget was spent"))
                continue
            try:
                reading = self._thread.run(
                    namespace.path, f"netns {label}", self._read, min(EACH, left),
                    namespace.inode,
                )  # fmt: skip
            except (CtguardError, OSError) as exc:
                samples.append(_failed(blank, str(exc)))
                continue
            samples.append(_sample(namespace, reading))
        return NamespacesSample(len(listed), len(listed) - len(chosen), tuple(samples))


def _failed(blank: NamespaceSample, error: str) -> NamespaceSample:
    return NamespaceSample(blank.netns, blank.container, blank.pod, error=error)
