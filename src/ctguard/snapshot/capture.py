"""Capture every input of docs/design.md §5 from a host into a SnapshotWriter.

A capture that fails (permission, a program missing) is recorded in the manifest and
the capture goes on; only the writer failing stops it.
"""

from __future__ import annotations

import json
import posixpath
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from ctguard import __version__
from ctguard.host import caps
from ctguard.host.caps import MAX_FILE_BYTES, cap_of
from ctguard.host.commands import CAPTURE_DIR, NETLINK_STATS, Commands
from ctguard.host.netns import netns_inode
from ctguard.host.root import HostRoot
from ctguard.missing import Missing
from ctguard.schemas import SNAPSHOT as MANIFEST_FORMAT
from ctguard.snapshot import layout
from ctguard.snapshot.redact import Redactor
from ctguard.snapshot.writer import SnapshotWriter
from ctguard.sources.agents import tuned_profile_paths
from ctguard.sources.manifest import INIT_NETNS_DIR, MANIFEST, utc_text
from ctguard.sources.modules import ctnetlink_absent_reason
from ctguard.sources.stats import STAT_FILE
from ctguard.sources.sysctl_runtime import MAX_FILE, NETFILTER_DIR
from ctguard.sources.tuned_config import read_active

_CHUNK = 1 << 20


@dataclass
class CaptureLog:
    captured: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    def fail(self, what: str, why: str) -> None:
        self.failed.append({"what": what, "why": why})


@dataclass(frozen=True)
class CaptureOptions:
    table: bool = True
    redact: bool = False
    netns: str | None = None
    # (file name, text) of the initial namespace's /proc/sys/net/netfilter, read by the
    # parent before the capture enters ``netns``
    init_values: tuple[tuple[str, str], ...] = ()
    netns_born: float | None = None  # host.netns.netns_born, read by the parent too


class _Capture:
    def __init__(
        self, host: HostRoot, commands: Commands, writer: SnapshotWriter, opts: CaptureOptions
    ) -> None:
        self.host, self.commands, self.writer, self.opts = host, commands, writer, opts
        self.log = CaptureLog()
        self.redactor = Redactor() if opts.redact else None
        self.links: set[str] = set()

    # -- kernel files ---------------------------------------------------------------
    def kernel_file(self, path: str) -> None:
        try:
            data = self.host.read_bytes(path)
        except FileNotFoundError:
            self.log.absent.append(path)
            return
        except OSError as exc:
            self.log.fail(path, exc.strerror or str(exc))
            return
        self.writer.add_bytes(path, data)
        self.log.captured.append(path)

    def kernel_dir(self, directory: str) -> None:
        names = self.host.listdir(directory)
        if not names:
            self.log.absent.append(directory)
        for name in names:
            path = f"{directory}/{name}"
            if self.host.is_file(path):
                self.kernel_file(path)

    def holders(self) -> None:
        for name in self.host.listdir(layout.HOLDERS_DIR):
            self.writer.add_bytes(f"{layout.HOLDERS_DIR}/{name}", b"")
            self.log.captured.append(f"{layout.HOLDERS_DIR}/{name}")

    # -- configuration ----------------------------------------------------------------
    def _relative_link(self, link: str) -> str:
        """The link's target, made relative and kept inside the snapshot."""
        target = self.host.readlink(link)
        base = posixpath.dirname(link)
        absolute = target if target.startswith("/") else posixpath.join(base, target)
        absolute = posixpath.normpath(absolute)
        return posixpath.relpath(absolute, base)

    def _real_dir(self, path: str) -> str:
        """Record links among ``path``'s parents (e.g. /lib -> usr/lib); return the real path."""
        current = "/"
        for part in [p for p in path.split("/") if p]:
            step = posixpath.join(current, part)
            if self.host.is_symlink(step):
                if step not in self.links:
                    self.links.add(step)
                    self.writer.add_symlink(step, self._relative_link(step))
                current = self.host.realpath(step)
            else:
                current = step
        return current

    def config_file(self, path: str) -> None:
        real = posixpath.join(self._real_dir(posixpath.dirname(path)), posixpath.basename(path))
        kind = self.host.file_kind(real)
        if kind == "absent":
            self.log.absent.append(path)
        elif kind == "link":
            if real not in self.links:
                self.links.add(real)
                self.writer.add_symlink(real, self._relative_link(real))
                self.log.captured.append(real)
            resolved = self.host.realpath(real)
            if resolved != real and self.host.is_file(resolved):
                self.config_file(resolved)
        elif kind == "file":
            if real in self.log.captured:
                return
            try:
                self.writer.add_bytes(real, self.host.read_bytes(real))
                self.log.captured.append(real)
            except OSError as exc:
                self.log.fail(real, exc.strerror or str(exc))

    def config_dir(self, directory: str) -> None:
        real = self._real_dir(directory)
        if real != directory and real in layout.CONFIG_DIRS:
            return  # e.g. /lib/sysctl.d on a merged-/usr host: captured as /usr/lib/sysctl.d
        if not self.host.is_dir(real):
            self.log.absent.append(directory)
            return
        for name in self.host.listdir(real):
            self.config_file(f"{real}/{name}")

    def marker(self, path: str) -> None:
        real = posixpath.join(self._real_dir(posixpath.dirname(path)), posixpath.basename(path))
        if not self.host.is_file(real):
            self.log.absent.append(path)
        elif real not in self.log.captured:  # /lib/systemd is /usr/lib/systemd on merged /usr
            self.writer.add_bytes(real, b"")
            self.log.captured.append(real)

    def tuned_profiles(self) -> None:
        """What decides tuned's conntrack settings (CT303, CT306): tuned-main.conf, the active
        profile files (or the OpenShift Node Tuning Operator's), each active profile in every
        directory tuned searches (found or recorded absent), and the include chains."""
        active = read_active(self.host)
        if not isinstance(active, Missing):
            for name in active.names[:8]:
                if "/" in name or name in (".", ".."):
                    continue
                for directory in active.main.profile_dirs:
                    self._safely(f"{directory}/{name}/tuned.conf", self.config_file)
        for path in tuned_profile_paths(self.host):
            if path not in self.log.captured:
                self._safely(path, self.config_file)

    # -- logs, table, commands --------------------------------------------------------
    def _filtered(self, data: bytes) -> bytes:
        return self.redactor.redact(data) if self.redactor else data

    def log_file(self, path: str) -> None:
        if not self.host.is_file(path):
            self.log.absent.append(path)
            return
        try:
            data = self.host.read_tail(path, layout.LOG_TAIL_BYTES)
        except OSError as exc:
            self.log.fail(path, exc.strerror or str(exc))
            return
        self.writer.add_bytes(path, self._filtered(data))
        self.log.captured.append(path)

    def _spool(self, src: BinaryIO, dest: Path) -> bool:
        """Copy a table dump in chunks, redacting whole lines when asked. False, and
        ``dest`` incomplete, when it would pass what a snapshot may store of a table
        (caps.MAX_TABLE_BYTES: a reader refuses an archive with a larger one)."""
        limit = caps.MAX_TABLE_BYTES
        written = 0
        with open(dest, "wb") as out:
            rest = b""
            while chunk := src.read(_CHUNK):
                lines, _, rest = (rest + chunk).rpartition(b"\n")
                if lines:
                    data = self._filtered(lines + b"\n")
                    written += len(data)
                    if written > limit:
                        return False
                    out.write(data)
                if len(rest) > limit:  # no line end in sight
                    return False
            if rest:
                data = self._filtered(rest)
                if written + len(data) > limit:
                    return False
                out.write(data)
        return True

    def _too_large(self, where: str) -> None:
        self.log.fail(
            where,
            f"the table dump is larger than {caps.MAX_TABLE_BYTES} bytes, the most a "
            "snapshot stores of one (ctguard analyze reads it on the host, or from a dump file)",
        )

    def table(self, ctnetlink_allowed: bool) -> None:
        """/proc/net/nf_conntrack, or `conntrack -L` where procfs lacks it. A table over
        what a snapshot stores is recorded as not stored (conntrack -L would be as large)."""
        with tempfile.TemporaryDirectory(prefix="table-", dir=self.writer.scratch) as tmp:
            spool = Path(tmp) / "table"
            try:
                with self.host.open_binary(layout.TABLE_FILE) as src:
                    stored = self._spool(src, spool)
                if not stored:
                    self._too_large(layout.TABLE_FILE)
                    return
                self.writer.add_file(layout.TABLE_FILE, spool)
                self.log.captured.append(layout.TABLE_FILE)
                return
            except FileNotFoundError:
                self.log.absent.append(layout.TABLE_FILE)
            except OSError as exc:
                self.log.fail(layout.TABLE_FILE, exc.strerror or str(exc))
            where = f"{CAPTURE_DIR}/conntrack-L"
            if not ctnetlink_allowed:
                self.log.fail(where, "not asked: it would load nf_conntrack_netlink")
                return
            raw = Path(tmp) / "conntrack-L"
            with open(raw, "wb") as dest:
                failed = self.commands.output_to("conntrack-L", dest)
            if failed is not None:
                self.log.fail(where, failed.reason)
                return
            with open(raw, "rb") as src:
                stored = self._spool(src, spool)
            if not stored:
                self._too_large(where)
                return
            self.writer.add_file(where, spool)
            self.log.captured.append(where)

    def command(self, name: str) -> None:
        """One program's output; a long one (ps, dmesg) up to what an archive member may
        hold (its head or tail, as read), so the reader cuts it as it would live."""
        cap = cap_of(name)
        if cap.keep != "whole":
            cap = replace(cap, max_bytes=MAX_FILE_BYTES, max_lines=None)
        out = self.commands.excerpt(name, cap)
        where = f"{CAPTURE_DIR}/{name}"
        if isinstance(out, Missing):
            self.log.fail(where, out.reason)
            return
        data = out.text.encode()
        if name in layout.REDACTED_COMMANDS:
            data = self._filtered(data)
        self.writer.add_bytes(where, data)
        self.log.captured.append(where)

    # -- all of it --------------------------------------------------------------------
    def _safely(self, what: str, step: Callable[[str], None]) -> None:
        """One capture step; a host file that cannot be read is recorded, not fatal."""
        try:
            step(what)
        except OSError as exc:  # SnapshotWriteError is not an OSError: it stops the capture
            self.log.fail(what, exc.strerror or str(exc))

    def _netns_inode(self) -> int | None:
        try:
            link = self.host.readlink("/proc/self/ns/net")  # "net:[4026531840]"
        except OSError:
            return None
        return netns_inode(link)

    def run(self, created: datetime) -> dict[str, Any]:
        for path in layout.KERNEL_FILES:
            self._safely(path, self.kernel_file)
        for directory in layout.KERNEL_DIRS:
            self._safely(directory, self.kernel_dir)
        self._safely(layout.HOLDERS_DIR, lambda _: self.holders())
        for path in layout.CONFIG_FILES:
            self._safely(path, self.config_file)
        for directory in layout.CONFIG_DIRS:
            self._safely(directory, self.config_dir)
        for name, text in self.opts.init_values:
            if "/" not in name and name.startswith("nf_conntrack_"):
                path = f"{INIT_NETNS_DIR}{NETFILTER_DIR}/{name}"
                self.writer.add_bytes(path, text.encode())
                self.log.captured.append(path)
        for path in layout.PRESENCE_MARKERS:
            self._safely(path, self.marker)
        self._safely("tuned profiles", lambda _: self.tuned_profiles())
        for path in layout.LOG_FILES:
            self._safely(path, self.log_file)
        tracked = self.host.exists(MAX_FILE)
        blocked = ctnetlink_absent_reason(self.host) if self.host.is_live else None
        for name in layout.COMMANDS:
            if name in layout.CTNETLINK_COMMANDS and not tracked:
                self.log.absent.append(f"{CAPTURE_DIR}/{name}")
            elif name in layout.CTNETLINK_COMMANDS and blocked:
                self.log.fail(f"{CAPTURE_DIR}/{name}", f"not asked: {blocked}")
            else:
                self.command(name)
        if tracked and not blocked and not self.host.exists(STAT_FILE):
            self.command(NETLINK_STATS)
        if self.opts.table and tracked:
            self.table(ctnetlink_allowed=not blocked)
        hostname = self.host.try_read_text("/proc/sys/kernel/hostname")
        manifest = {
            "format": MANIFEST_FORMAT,
            "ctguard_version": __version__,
            "created_utc": utc_text(created),
            "hostname": None if isinstance(hostname, Missing) else hostname.strip(),
            "netns": self.opts.netns,
            "netns_inode": self._netns_inode(),
            "netns_born": self.opts.netns_born,
            "table": self.opts.table,
            "redacted": self.opts.redact,
            "captured": sorted(self.log.captured),
            "absent": sorted(self.log.absent),
            "failed": self.log.failed,
        }
        self.writer.add_bytes(MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
        return manifest


def capture(
    host: HostRoot,
    commands: Commands,
    writer: SnapshotWriter,
    opts: CaptureOptions,
    created: datetime | None = None,
) -> dict[str, Any]:
    """Write a snapshot; returns its manifest. The writer is committed or aborted."""
    try:
        manifest = _Capture(host, commands, writer, opts).run(created or datetime.now(UTC))
    except BaseException:
        writer.abort()
        raise
    writer.commit()
    return manifest
