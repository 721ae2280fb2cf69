"""The write side of a target, for plan, apply, rollback, notrack and disable.

``host.target`` opens what a command reads (a snapshot archive is extracted). A ``Site``
adds what a command that changes a host needs: the directory tree written (opened once and
checked: never this host's ``/`` under another name), the runtime values (the tree's files,
or a namespace's /proc/sys), the state directory of the journal, the identity a saved plan
is bound to, a reader of the host's files for the planners, and who runs commands.

A snapshot archive is read in its extracted copy (plan, ``apply --dry-run``); writing into
one is refused before anything is read: extract it first.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ctguard.errors import CtguardError, OptionError
from ctguard.host.root import HostRoot
from ctguard.host.target import Opened, Target, open_target
from ctguard.remediation.apply import NetnsRuntime, RuntimeFiles, Tree, TreeRuntime
from ctguard.remediation.command_runner import CommandRunner, LiveRunner, NetnsRunner
from ctguard.remediation.host_settings import FileReader
from ctguard.remediation.plan_file import HostIdentity
from ctguard.remediation.state_dir import DEFAULT_STATE_DIR, StateDir

# The operator's answer to a question asked before anything is written (the CLI asks on
# the terminal, or answers yes for --yes).
Confirm = Callable[[str], bool]


def ask(confirm: Confirm, question: str) -> None:
    if not confirm(question):
        raise CtguardError("nothing changed (not confirmed)")


@dataclass(frozen=True)
class Site:
    """An open target as the planners read it and the writer changes it."""

    target: Target
    opened: Opened
    checked: Tree | None = None  # the --root directory, opened once when it was checked

    @classmethod
    def live(cls, netns: str | None = None) -> Site:
        """This host, or a namespace of it (runtime values and commands inside it)."""
        target = Target(None, netns)
        return cls(target, Opened(target, HostRoot("/")))

    @property
    def host(self) -> HostRoot:
        """Where the host's files are read: the tree, an archive's extracted copy, or /."""
        return self.opened.host

    @property
    def archive(self) -> bool:
        return self.target.root is not None and self.checked is None

    @cached_property
    def tree(self) -> Tree:
        """The tree written: opened once, so the journal, the runtime values and the files
        of one command are the same directory even if the --root path is swapped meanwhile
        (an archive's extracted copy: read by a dry run only)."""
        if self.checked is not None:
            return self.checked
        return _open_tree(str(self.host.base) if self.archive else "/", self.target.root or "/")

    def runtime(self) -> RuntimeFiles:
        if self.target.netns is not None:
            return NetnsRuntime(self.target.netns)
        return TreeRuntime(self.tree)

    def runner(self) -> CommandRunner:
        """Runs firewall and module commands here, or inside the namespace."""
        netns = self.target.netns
        return NetnsRunner(netns) if netns is not None else LiveRunner()

    def file_reader(self) -> FileReader:
        """A host file's bytes (None when it does not exist), for the planners."""
        host = self.host

        def read(path: str) -> bytes | None:
            if not host.is_file(path):
                return None
            try:
                return host.read_bytes(path)
            except OSError as exc:
                raise CtguardError(f"cannot read {path}: {exc.strerror or exc}") from None

        return read

    def state_dir(self, given: str | None) -> StateDir:
        """The journal's home: ``--state-dir DIR`` or the default on this machine (checked:
        only root may have written it), or, for a tree, the tree's own (data, resolved
        inside the tree and never trusted to run a command)."""
        root = self.target.root
        try:
            if given is not None:
                return StateDir.on_machine(given)
            if root is not None:
                return StateDir.in_tree(self.tree, DEFAULT_STATE_DIR)
            return StateDir.on_machine(DEFAULT_STATE_DIR)
        except OSError as exc:
            where = given or f"{root or ''}{DEFAULT_STATE_DIR}"
            raise CtguardError(f"{where}: {exc.strerror or exc}; give --state-dir") from None

    def identity(self) -> HostIdentity:
        """What a saved plan is bound to: hostname, machine-id, root and namespace."""

        def first_line(path: str) -> str | None:
            text = self.host.try_read_text(path, 4096)
            return None if not isinstance(text, str) else (text.strip() or None)

        root = self.target.root
        return HostIdentity(
            first_line("/proc/sys/kernel/hostname"),
            first_line("/etc/machine-id"),
            str(Path(root).resolve()) if root is not None else "/",
            self.target.netns,
        )

    def need_root(self, what: str) -> None:
        """Writing this host's /etc and /proc/sys needs root: say so before anything else."""
        if self.target.root is None and os.geteuid() != 0:
            raise CtguardError(
                f"{what} writes /etc and /proc/sys: run it as root (sudo ctguard {what}),"
                " or try --dry-run / --root DIR"
            )


def check_root(root: str, writes: str | None) -> Tree | None:
    """A ``--root``: a directory that is not this host's ``/`` (however it is named: a
    link, a bind mount, /proc/1/root), checked on the directory opened and returned; or,
    when nothing is written (``writes`` None), a snapshot archive (None: open_target
    extracts it)."""
    if not root.strip():
        raise OptionError("--root", "is empty (leave --root out to work on this host)")
    if not os.path.isdir(root):
        if writes is None and os.path.isfile(root):
            return None
        if os.path.isfile(root):
            why = (
                f"{root!r} is a snapshot archive, not a directory: {writes} writes into a"
                f" directory tree; extract it first (mkdir DIR && tar -xzf {root} -C DIR)"
                " and give --root DIR"
            )
        elif writes is None:
            why = f"{root!r} is not a directory or a snapshot archive (.tar.gz)"
        else:
            why = (
                f"{root!r} is not a directory (plans are made for and applied to a directory"
                " tree; extract a snapshot archive first)"
            )
        raise OptionError("--root", why)
    try:
        tree = _open_tree(root, root)
    except CtguardError as exc:
        raise OptionError("--root", str(exc)) from None
    if tree.is_live:
        raise OptionError(
            "--root", f"{root!r} is this host's / (leave --root out to work on this host, as root)"
        )
    return tree


def _open_tree(path: str, shown: str) -> Tree:
    try:
        return Tree(path)
    except OSError as exc:
        raise CtguardError(f"{shown}: {exc.strerror or exc}") from None


@contextmanager
def open_site(target: Target, writes: str | None = None) -> Iterator[Site]:
    """The target checked, then opened for reading until the block ends. ``writes``: the
    command that will write (``"apply"``), None when it only reads (an archive is then
    accepted)."""
    target.check_writes(writes)
    checked = None if target.root is None else check_root(target.root, writes)
    with open_target(target) as opened:
        yield Site(target, opened, checked)


def site_to_write(target: Target, writes: str) -> Site:
    """The target checked for writing, without reading it (rollback reads only its journal)."""
    target.check_writes(writes)
    checked = None if target.root is None else check_root(target.root, writes)
    return Site(target, Opened(target, HostRoot(target.root or "/")), checked)
