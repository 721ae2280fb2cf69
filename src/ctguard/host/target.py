"""What a command works on, opened in one place: this host, a named network namespace, or a
snapshot (a directory or a ``.tar.gz`` from ``ctguard snapshot``).

``open_target(root, netns)`` checks the options and opens the snapshot (an archive is
extracted, safely, for the duration); ``Opened.run(job)`` runs a reading job where the
data is: here, or in a child that joined the namespace. Every use case reads through it,
so one code path audits a live host, a namespace and a snapshot.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from ctguard.errors import OptionError, UsageError
from ctguard.host.commands import CapturedCommands, Commands, LiveCommands
from ctguard.host.netns import netns_born, run_in_netns
from ctguard.host.root import HostRoot

T = TypeVar("T")
Job = Callable[[HostRoot, Commands], T]


def is_host_root(path: str) -> bool:
    """``path`` is this host's own ``/``, however it is named (``/``, ``//``, a link, a bind
    mount, ``/proc/1/root``): the same directory, by device and inode."""
    try:
        return os.path.samestat(os.stat(path), os.stat("/"))
    except (OSError, ValueError):
        return False


@dataclass(frozen=True)
class Target:
    """The ``--root`` / ``--netns`` a command was given (both None: this host).

    ``--root /`` (this host's ``/`` under any name) is this host, for every command: its
    files, its running values and its commands, exactly as without ``--root`` (a snapshot
    reading of ``/`` would miss the commands and read nothing else). ``root`` is then None
    and ``host_root_given`` keeps what was typed: a command that writes refuses it
    (``usecases/site.py``), so that ``--root /`` never writes this host's files in place
    of a tree, nor behaves unlike the same command without ``--root``.
    """

    root: str | None = None
    netns: str | None = None
    host_root_given: str | None = field(default=None, init=False, compare=False)

    def __post_init__(self) -> None:
        if self.root is not None and self.netns is not None:
            raise UsageError("--root and --netns cannot be combined (a snapshot is not live)")
        if self.root is not None and is_host_root(self.root):
            object.__setattr__(self, "host_root_given", self.root)
            object.__setattr__(self, "root", None)

    def check_writes(self, writes: str | None) -> None:
        """A command that writes (``writes``: its name, None when it only reads) refuses
        ``--root /``: with --root it writes a directory tree, and this host is not one;
        without --root it writes this host, as root, after its own checks."""
        if writes is not None and self.host_root_given is not None:
            raise OptionError(
                "--root",
                f"{self.host_root_given!r} is this host's / (leave --root out to work on this"
                " host, as root)",
            )

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
