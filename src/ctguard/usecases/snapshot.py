"""``ctguard snapshot``: capture every file and command output ctguard reads, to audit
elsewhere with ``--root`` (this host, or inside a named namespace)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ctguard.errors import CtguardError, UsageError
from ctguard.host.commands import LiveCommands
from ctguard.host.root import SMALL_FILE_BYTES, HostRoot
from ctguard.host.target import Target, open_target
from ctguard.missing import Missing
from ctguard.sources.sysctl_runtime import NETFILTER_DIR

CAPTURE_TIMEOUT = 3600.0  # every program has its own; this bounds a wedged helper process


@dataclass(frozen=True)
class SnapshotOptions:
    output: str | None = None  # FILE.tar.gz or DIR/; None: a name made from host and time
    table: bool = True
    redact: bool = False


@dataclass(frozen=True)
class SnapshotReport:
    path: str  # where it was written
    manifest: dict[str, Any]  # ctguard_manifest.json as written


def _init_values(host: HostRoot) -> tuple[tuple[str, str], ...]:
    """The initial namespace's conntrack sysctls, kept beside a namespace's snapshot."""
    values = []
    for path in host.glob(NETFILTER_DIR, "nf_conntrack_*"):
        text = host.try_read_text(path, SMALL_FILE_BYTES)
        if not isinstance(text, Missing):
            values.append((path.rsplit("/", 1)[1], text))
    return tuple(values)


def default_name(host: HostRoot, now: datetime) -> str:
    name = host.try_read_text("/proc/sys/kernel/hostname")
    safe = "host" if isinstance(name, Missing) else re.sub(r"[^A-Za-z0-9._-]", "_", name.strip())
    return f"ctguard-{safe or 'host'}-{now.strftime('%Y%m%dT%H%M%SZ')}.tar.gz"


def snapshot(target: Target, options: SnapshotOptions, now: datetime) -> SnapshotReport:
    # imported here, not at the top: keeps `ctguard status` start-up fast
    from ctguard.snapshot.capture import CaptureOptions, capture
    from ctguard.snapshot.writer import open_writer

    if not target.live:
        raise UsageError("a snapshot is taken of this host or a namespace, not of --root")
    with open_target(target) as opened:
        path = options.output or default_name(opened.host, now)
        capture_options = CaptureOptions(
            table=options.table,
            redact=options.redact,
            netns=target.netns,
            init_values=_init_values(opened.host) if target.netns is not None else (),
            netns_born=opened.netns_born(),
        )
        try:
            manifest = opened.run(
                lambda host, _commands: capture(
                    host, LiveCommands(), open_writer(path), capture_options, now
                ),
                timeout=CAPTURE_TIMEOUT,
            )
        except OSError as exc:
            raise CtguardError(f"writing {path}: {exc.strerror or exc}") from None
    return SnapshotReport(path, manifest)
