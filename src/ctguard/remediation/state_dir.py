"""Where ctguard keeps its journal and backups, whether it may trust what it finds there,
and the lock that lets one apply or rollback at a time use it.

The trust model (docs/trust-model.md):

- A state directory on this machine (``/var/lib/ctguard``, or ``--state-dir DIR``) is
  *trusted* only when nobody but root (or the user running ctguard) could have written it:
  every directory from ``/`` down to it is owned by root or by us and is not writable by
  group or others (a sticky one like ``/tmp`` is allowed above it), and the state directory,
  its entries and their files are root's or ours, not writable by group or others, and not
  links.
  Otherwise ctguard refuses to use it at all.
- The state directory inside a ``--root`` tree is *data*: the tree may come from another
  machine or another person. ctguard reads it through the same link-proof walk as every
  other file of the tree, writes only inside the tree, and never runs a command nor
  touches a namespace because such a journal says so (``trusted`` is False).
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ctguard.errors import CtguardError
from ctguard.remediation.failures import describe
from ctguard.remediation.tree_fs import Tree, host_parts

DEFAULT_STATE_DIR = "/var/lib/ctguard"
JOURNAL_SUBDIR = "journal"
JOURNAL_FILE = "journal.json"
BACKUP_SUBDIR = "files"
PRIVATE_DIR_MODE = 0o700  # the state directory holds copies of configuration files
PARENT_DIR_MODE = 0o755  # /var, /var/lib made in an image tree stay usable by everyone
# ctguard backs up configuration files; anything larger is not one of its backups.
MAX_BACKUP_BYTES = 16 * 1024 * 1024
LOCK_WAIT = 5.0  # seconds a second apply or rollback waits for the first


class UntrustedStateError(CtguardError):
    """A state directory that someone other than root could have written."""


class BusyError(CtguardError):
    """Another apply or rollback holds the state directory's lock."""


@dataclass
class StateDir:
    """A state directory: ``path`` (links resolved) inside ``tree``."""

    tree: Tree
    path: str
    trusted: bool  # on this machine and checked: the commands its journal lists may run

    @classmethod
    def on_machine(cls, given: str | os.PathLike[str]) -> StateDir:
        """``--state-dir DIR`` or the default on this machine; UntrustedStateError when
        someone other than root could have written it."""
        tree = Tree("/")
        state = cls(tree, _resolved(tree, os.path.abspath(given)), trusted=True)
        state.check_trust()
        return state

    @classmethod
    def in_tree(
        cls, root: Tree | str | os.PathLike[str], path: str = DEFAULT_STATE_DIR
    ) -> StateDir:
        """The state directory of a ``--root`` tree: data, never trusted."""
        tree = Tree.of(root)
        return cls(tree, _resolved(tree, path), trusted=False)

    @classmethod
    def of(cls, given: StateDir | str | os.PathLike[str]) -> StateDir:
        return given if isinstance(given, StateDir) else cls.on_machine(given)

    # -- names ----------------------------------------------------------------------------
    def sub(self, *names: str) -> str:
        """The host path of ``names`` below the state directory."""
        return "/" + "/".join([*host_parts(self.path), *names])

    def journal_dir(self) -> str:
        return self.sub(JOURNAL_SUBDIR)

    def entry_dir(self, entry_id: str) -> str:
        return self.sub(JOURNAL_SUBDIR, entry_id)

    def journal_file(self, entry_id: str) -> str:
        return self.sub(JOURNAL_SUBDIR, entry_id, JOURNAL_FILE)

    def backup(self, entry_id: str, name: str) -> str:
        return self.sub(JOURNAL_SUBDIR, entry_id, BACKUP_SUBDIR, name)

    def shown(self, path: str | None = None) -> str:
        """A host path of the state directory as a path on this machine, for messages."""
        return str(self.tree.local(path or self.path))

    # -- trust ----------------------------------------------------------------------------
    def check_trust(self) -> None:
        """UntrustedStateError unless only root (or we) could have written the directories
        from ``/`` down to the state directory (the part of them that exists)."""
        if not self.trusted:
            return
        parts = [*host_parts(self.path), JOURNAL_SUBDIR]
        for depth in range(len(parts) + 1):
            here = "/" + "/".join(parts[:depth])
            st = os.stat(here, follow_symlinks=False) if depth == 0 else self.tree.lstat(here)
            if st is None:
                return  # apply creates the rest, with its own modes
            # the state directory and its journal/ are ctguard's own: no sticky exception
            self._check_one(here, st, ancestor=depth < len(parts) - 1)

    def check_own(self, path: str) -> None:
        """UntrustedStateError unless ``path`` (below the state directory) is ours and
        writable by no one else. A no-op for a tree's state directory, which is data."""
        if not self.trusted:
            return
        st = self.tree.lstat(path)
        if st is not None:
            self._check_one(path, st, ancestor=False)

    def _check_one(self, path: str, st: os.stat_result, ancestor: bool) -> None:
        me = os.geteuid()
        why = None
        if stat.S_ISLNK(st.st_mode):
            why = "is a symbolic link"
        elif st.st_uid not in (0, me):
            why = f"is owned by uid {st.st_uid}"
        elif st.st_mode & 0o022 and not (ancestor and st.st_mode & stat.S_ISVTX):
            why = f"is writable by {'group and others' if st.st_mode & 0o002 else 'its group'}"
        if why is not None:
            raise UntrustedStateError(
                f"refusing the state directory {self.shown()}: {self.shown(path)} {why}, so its"
                " journal could have been written by someone else; fix the ownership and mode"
                " (chown root:root, chmod go-w) or give another --state-dir"
            )

    # -- reading --------------------------------------------------------------------------
    def read(self, path: str, max_size: int) -> bytes:
        """A regular file below the state directory, checked and bounded; OSError else."""
        self.check_own(path)
        data = self.tree.read(path, max_size)
        if data is None:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", self.shown(path))
        return data

    def exists(self) -> bool:
        st = self.tree.lstat(self.path)
        return st is not None and stat.S_ISDIR(st.st_mode)

    # -- the lock -------------------------------------------------------------------------
    @contextmanager
    def lock(self, create: bool, written: Tree | None = None) -> Iterator[None]:
        """Hold an flock on the state directory itself while one apply or rollback runs
        (no lock file to leave behind), and on the root of the ``written`` tree unless it
        is this host's / (two applies to one tree with two state directories); a second
        waits up to LOCK_WAIT seconds, then BusyError. ``create``: make the state
        directory first (apply); a rollback has nothing to do without one."""
        if create:
            self.tree.make_dirs(self.path, PRIVATE_DIR_MODE, PARENT_DIR_MODE)
        self.check_trust()
        wait = LOCK_WAIT  # read now: tests shorten it
        with self.tree.dir_fd(self.path) as fd:
            _flock(fd, wait, self.shown())
            if written is None or written.is_live:
                yield  # closing the descriptor releases the lock
                return
            with written.own_root_fd() as root_fd:
                _flock(root_fd, wait, str(written.base))
                yield


def _flock(fd: int, wait: float, what: str) -> None:
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise BusyError(
                    f"another ctguard apply or rollback is using {what} (waited {wait:g} s for"
                    " its lock); run this again once that one has finished"
                ) from None
            time.sleep(0.05)


def _resolved(tree: Tree, path: str) -> str:
    try:
        return tree.realpath(path)
    except OSError as exc:
        where = tree.local(path) if path.startswith("/") else path
        raise CtguardError(f"cannot resolve the state directory {where}: {describe(exc)}") from None
