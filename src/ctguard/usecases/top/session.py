"""``ctguard top`` on a live host: the probe started in its namespace, the sampler wired.

The probe runs in a ``NetnsWorker`` even without ``--netns`` (then in ctguard's own
namespace), so the event listener is drained between refreshes the same way in both.
The global max is read here, in the initial namespace, since namespaces share it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial

from ctguard.errors import CtguardError
from ctguard.host.netns import netns_path
from ctguard.host.netns_worker import NetnsWorker
from ctguard.host.root import HostRoot
from ctguard.sources.sysctl_runtime import read_global_max
from ctguard.usecases.top.frames import CounterSample
from ctguard.usecases.top.namespaces import busiest_namespaces
from ctguard.usecases.top.probe import COUNTERS_TIMEOUT, Probe, RemoteProbe
from ctguard.usecases.top.sampler import CounterReader, TopSampler


@contextmanager
def top_session(
    netns: str | None,
    source: str,
    top: int,
    interval: float,
    probe: Callable[[str, int], object] = Probe,
) -> Iterator[TopSampler]:
    """A sampler over the namespace ``netns`` (None: this one, plus the busiest
    namespaces); the probe's worker is stopped on the way out, whatever happens.

    ``probe(source, top)`` makes the probe inside the namespace (tests pass a fake).
    """
    if os.geteuid() != 0:
        raise CtguardError(
            "ctguard top needs root (/proc/net/nf_conntrack is 0440; events need CAP_NET_ADMIN)"
        )
    path, label = (netns_path(netns), f"netns {netns}") if netns is not None else (None, "")
    host = HostRoot("/")
    start = partial(probe, source, top)
    with NetnsWorker(path, label, start, timeout=COUNTERS_TIMEOUT) as worker:
        remote = RemoteProbe(worker)
        yield TopSampler(
            counters=with_global_max(remote.counters, host),
            table=remote.table,
            interval=interval,
            namespaces=None if netns else busiest_namespaces(lambda: read_global_max(host), top),
            netns=netns,
        )


def with_global_max(read: CounterReader, host: HostRoot | None = None) -> CounterReader:
    """``read``, with the global max read here (in the initial namespace) each time."""
    root = host or HostRoot("/")

    def counters() -> CounterSample:
        return replace(read(), max=read_global_max(root))

    return counters
