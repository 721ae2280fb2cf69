"""What a command works on, opened in one place: this host, a named network namespace, or a
snapshot (a directory or a ``.tar.gz`` from ``ctguard snapshot``).

``open_target(root, netns)`` checks the options and opens the snapshot (an archive is
extracted, safely, for the duration); ``Opened.run(job)`` runs a reading job where the
data is: here, or in a child that joined the namespace. Every use case reads through it,
so one code path audits a live host, a namespace and a snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from ctguard.errors import UsageError
from ctguard.host.commands import CapturedCommands, Commands, LiveCommands
from ctguard.host.netns import netns_born, run_in_netns
from ctguard.host.root import HostRoot

T = TypeVar("T")
Job = Callable[[HostRoot, Commands], T]


@dataclass(frozen=True)
class Target:
    """The ``--root`` / ``--netns`` a command was given (both None: this host)."""

    root: str | None = None
    netns: str | None = None

    def __post_init__(self) -> None:
        if self.root is not None and self.netns is not None:
            raise UsageError("--root and --netns cannot be combined (a snapshot is not live)")

    @property
    def live(self) -> bool:
        return self.root is None

    @property
    def label(self) -> str:
        if self.root is not None:
            return self.root
        return f"netns {self.netns}" if self.netns is not None else "this host"


@dataclass(frozen=True)
class Opened:
    """An open target: where its files are and how its commands are read."""

    target: Target
    # the snapshot tree, or "/": for a namespace target that is the initial namespace's
    # files (its global values); the namespace's own are read in the job
    host: HostRoot

    @property
    def commands(self) -> Commands:
        return LiveCommands() if self.target.live else CapturedCommands(self.host)

    def run(self, job: Job[T], timeout: float = 120.0) -> T:
        """``job(host, commands)`` where the data is; in a namespace the result must be
        picklable (it comes back from a child process)."""
        netns = self.target.netns
        if netns is None:
            return job(self.host, self.commands)
        return run_in_netns(netns, lambda: job(HostRoot("/"), LiveCommands()), timeout)

    def netns_born(self) -> float | None:
        netns = self.target.netns
        return netns_born(netns) if netns is not None else None


@contextmanager
def open_target(target: Target) -> Iterator[Opened]:
    """Open a target for reading; a snapshot archive is extracted until the block ends."""
    if target.root is None:
        yield Opened(target, HostRoot("/"))
        return
    from ctguard.host.archive import open_root

    with open_root(target.root) as host:
        yield Opened(target, host)
