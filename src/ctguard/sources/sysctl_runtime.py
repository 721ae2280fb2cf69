"""Runtime conntrack sysctls: ``/proc/sys/net/netfilter/nf_conntrack_*``.

These files exist only while nf_conntrack is loaded (or built in). Outside the initial
network namespace ``nf_conntrack_max``/``_buckets``/``_expect_max`` are read-only views of
the global values (kernel 5.12+), and ``/proc/sys/net/nf_conntrack_max`` is absent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ctguard.errors import ParseError
from ctguard.host.root import SMALL_FILE_BYTES, HostRoot
from ctguard.missing import Missing

NETFILTER_DIR = "/proc/sys/net/netfilter"
MAX_FILE = f"{NETFILTER_DIR}/nf_conntrack_max"  # exists while conntrack is loaded
LEGACY_MAX = "/proc/sys/net/nf_conntrack_max"  # init netns only
COUNT_FILE = f"{NETFILTER_DIR}/nf_conntrack_count"  # per namespace
_INTEGER = re.compile(r"-?[0-9]{1,20}")
GLOBAL_KEYS = ("nf_conntrack_max", "nf_conntrack_buckets", "nf_conntrack_expect_max")


def parse_sysctl_int(text: str, name: str = "value") -> int:
    """One integer sysctl value.

    >>> parse_sysctl_int("262144\\n")
    262144
    """
    value = text.strip()
    if not _INTEGER.fullmatch(value):
        shown = value[:40] if value else "an empty file"
        raise ParseError(f"{name}: expected an integer, got {shown!r}")
    return int(value)


def as_the_kernel_reads(name: str, value: int) -> tuple[int, str | None]:
    """A value as the kernel uses it, and a note when that is not what the file says;
    ParseError for one no kernel reports. The one place these are judged: status, plan and
    doctor all read the values through ConntrackSysctls.

    >>> as_the_kernel_reads("nf_conntrack_max", -1)
    (4294967295, 'nf_conntrack_max is -1: the kernel reads it as unsigned')
    """
    if name == "nf_conntrack_max" and value < 0:
        # the kernel compares it as unsigned int: old proc_dointvec kernels let -1 in
        return value & 0xFFFFFFFF, f"nf_conntrack_max is {value}: the kernel reads it as unsigned"
    if name in ("nf_conntrack_count", "nf_conntrack_buckets") and value < 0:
        raise ParseError(f"{name} is negative ({value}): not a value a kernel reports")
    return value, None


@dataclass(frozen=True)
class ConntrackSysctls:
    """Integer values keyed by file name (``nf_conntrack_max`` ...), as the kernel uses
    them (as_the_kernel_reads); ``notes`` say where that differs from the files."""

    values: Mapping[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def get(self, name: str) -> int | None:
        return self.values.get(name)

    @property
    def count(self) -> int | None:
        return self.values.get("nf_conntrack_count")

    @property
    def max(self) -> int | None:
        return self.values.get("nf_conntrack_max")

    @property
    def buckets(self) -> int | None:
        return self.values.get("nf_conntrack_buckets")

    def with_values(
        self, updates: Mapping[str, int], notes: tuple[str, ...] = ()
    ) -> ConntrackSysctls:
        return ConntrackSysctls(
            {**self.values, **updates}, tuple(dict.fromkeys(self.notes + notes))
        )

    def with_globals_of(self, init: ConntrackSysctls) -> ConntrackSysctls:
        """A namespace's values with the global ones (max, buckets) of the initial one."""
        return self.with_values(
            {k: v for k in GLOBAL_KEYS if (v := init.get(k)) is not None}, init.notes
        )


IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"  # per namespace


def read_ip_forward(host: HostRoot) -> int | Missing:
    """1 when this namespace routes IPv4 (forwarded packets then meet the forward hook)."""
    text = host.try_read_text(IP_FORWARD, SMALL_FILE_BYTES)
    return text if isinstance(text, Missing) else parse_sysctl_int(text, IP_FORWARD)


def read_global_max(host: HostRoot) -> int | None:
    """nf_conntrack_max as the initial namespace sees it (the limit every namespace's table
    counts against), or None when conntrack exposes it nowhere. One file, not all of them:
    `top` and `analyze --netns all` read it on every refresh."""
    for path in (MAX_FILE, LEGACY_MAX):
        text = host.try_read_text(path, SMALL_FILE_BYTES)
        if not isinstance(text, Missing):
            return as_the_kernel_reads("nf_conntrack_max", parse_sysctl_int(text, path))[0]
    return None


def read_conntrack_sysctls(
    host: HostRoot, directory: str = NETFILTER_DIR
) -> ConntrackSysctls | Missing:
    """All integer ``nf_conntrack_*`` files; Missing when conntrack exposes none.

    ``directory`` is another copy of the files, e.g. a snapshot's initial-namespace values.
    """
    values: dict[str, int] = {}
    for path in host.glob(directory, "nf_conntrack_*"):
        name = path.rsplit("/", 1)[1]
        try:
            text = host.read_text(path, SMALL_FILE_BYTES)
        except (FileNotFoundError, PermissionError, IsADirectoryError):
            continue  # write-only, a directory, or vanished while listing
        except OSError as exc:
            raise ParseError(f"{path}: {exc.strerror or exc}") from None
        values[name] = parse_sysctl_int(text, path)
    if "nf_conntrack_max" not in values and directory == NETFILTER_DIR and host.exists(LEGACY_MAX):
        legacy = host.try_read_text(LEGACY_MAX, SMALL_FILE_BYTES)
        if not isinstance(legacy, Missing):
            values["nf_conntrack_max"] = parse_sysctl_int(legacy, LEGACY_MAX)
    if not values:
        return Missing(f"no nf_conntrack_* files under {directory}")
    notes: list[str] = []
    for name, value in values.items():
        values[name], note = as_the_kernel_reads(name, value)
        notes += [note] if note else []
    return ConntrackSysctls(dict(sorted(values.items())), tuple(notes))


def read_count() -> int:
    """nf_conntrack_count of the calling process's network namespace.

    /proc/sys/net follows the reader's namespace, not the /proc mount's, so this is
    correct after setns(2) without remounting /proc.
    """
    text = HostRoot("/").read_text(COUNT_FILE, SMALL_FILE_BYTES)
    try:
        return int(text.strip())
    except ValueError as exc:
        raise ParseError(f"{COUNT_FILE}: not a number: {text.strip()[:40]!r}") from exc
