"""Kernel "table full, dropping packet" lines in ``dmesg`` and the syslog files.

The kernel logs one (rate-limited) line when a new connection finds the table full and
nothing can be early-dropped (nf_conntrack_core.c, ``__nf_conntrack_alloc``). Its text
changed over time:

- 2.6 ``ip_conntrack``: ``ip_conntrack: table full, dropping packet.``
- 2.6.15+ ``nf_conntrack``: ``nf_conntrack: table full, dropping packet.`` (RHEL 6);
  later without the final dot and, once ``pr_fmt`` was added, with the prefix twice:
  ``nf_conntrack: nf_conntrack: table full, dropping packet``;
- 6.x names the namespace: ``nf_conntrack: nf_conntrack: table full in netns
  4026532177, dropping packet``.

Syslog files can be gigabytes, so only their tail is read, and one regular expression
scan with a literal prefix finds the lines: no per-line Python work for other lines.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from ctguard.host.caps import LOG_TAIL_BYTES, Excerpt
from ctguard.host.commands import Commands
from ctguard.host.root import HostRoot
from ctguard.missing import Missing

KERNEL_LOG_FILES = ("/var/log/kern.log", "/var/log/messages", "/var/log/syslog")

# The pattern starts with a literal, so the regex engine skips ahead to "_conntrack: "
# as fast as str.find; the "nf"/"ip" before it is checked only where that matched.
_TABLE_FULL = re.compile(
    r"_conntrack: (?:nf_conntrack: )?table full"
    r"(?:, | in netns (?P<netns>[0-9]{1,20}), )dropping packet"
)
_MODULES = ("nf", "ip")  # nf_conntrack, and ip_conntrack before 2.6.15
_PREFIX = re.compile(
    r"[ \t]*(?:<[0-9]{1,3}>)?"  # dmesg -r keeps the syslog priority
    r"(?:\[[ \t]*(?P<mono>[0-9]{1,12}\.[0-9]{1,9})\]"  # dmesg: seconds since boot
    r"|\[(?P<ctime>[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8} [0-9]{4})\]"  # dmesg -T
    r"|(?P<iso>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}(?:\.[0-9]{1,9})?"
    r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?)[ \t]"  # rsyslog RFC 3339, journalctl -o short-iso
    r"|(?P<bsd>[A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8})[ \t])"  # classic syslog (RFC 3164)
)
_MAX_TEXT = 4096  # a printk record is at most 1 KiB; longer "lines" are junk
_PREFIX_SPAN = 128


@dataclass(frozen=True)
class LogHit:
    line: int  # 1-based line number within the text parsed
    text: str  # the whole line (stripped)
    timestamp: str | None  # as found: "1234.567890", "Nov 25 10:00:01", an ISO time...
    netns: int | None  # the inode from "in netns N"; None when the line names no namespace


@dataclass(frozen=True)
class TableFullLog:
    source: str  # "dmesg" or the host path ("/var/log/messages")
    count: int  # matching lines
    by_netns: Mapping[int | None, int]  # None: the line names no namespace
    first: Mapping[int | None, LogHit]
    last: Mapping[int | None, LogHit]
    truncated: bool = False  # only the tail of the file was read


def _timestamp(text: str, start: int, end: int) -> str | None:
    prefix = _PREFIX.match(text, start, min(end, start + _PREFIX_SPAN))
    if prefix is None:
        return None
    return prefix["mono"] or prefix["ctime"] or prefix["iso"] or prefix["bsd"]


def _older_than(text: str, at: int, line_end: int, since: float) -> bool:
    """Does the line holding ``at`` carry a dmesg time (seconds since boot) before ``since``?"""
    start = text.rfind("\n", 0, at) + 1
    prefix = _PREFIX.match(text, start, min(line_end, start + _PREFIX_SPAN))
    return prefix is not None and prefix["mono"] is not None and float(prefix["mono"]) < since


def parse_kernel_log(text: str, source: str, netns_born: float | None = None) -> TableFullLog:
    """Count "table full" lines, per network namespace, with the first and last of each.

    Lines end with "\\n" (a "\\r" before it is stripped with the other blanks).

    >>> log = parse_kernel_log(
    ...     "Mar  4 20:14:37 web03 kernel: nf_conntrack: table full, dropping packet.\\n"
    ...     "Mar  4 20:14:42 web03 kernel: __ratelimit: 1874 callbacks suppressed\\n"
    ...     "[ 8812.104361] nf_conntrack: nf_conntrack: table full in netns 4026532177, "
    ...     "dropping packet\\n", "/var/log/messages")
    >>> log.count, dict(log.by_netns)
    (2, {None: 1, 4026532177: 1})
    >>> log.first[None].timestamp, log.last[4026532177].line, log.last[4026532177].timestamp
    ('Mar  4 20:14:37', 3, '8812.104361')

    ``netns_born`` (seconds since boot): dmesg lines naming a namespace that are older
    than that are left out (they were logged by an earlier namespace with its inode).
    """
    counts: dict[str | None, int] = {}
    first: dict[str | None, int] = {}  # offsets of the first and last matching line
    last: dict[str | None, int] = {}
    line_end = -1
    for found in _TABLE_FULL.finditer(text):
        at = found.start()
        if at <= line_end or at < 2 or not text.startswith(_MODULES, at - 2, at):
            continue  # a second message on a counted line, or not a conntrack module
        line_end = text.find("\n", found.end())
        line_end = len(text) if line_end < 0 else line_end
        netns = found["netns"]
        if (
            netns is not None
            and netns_born is not None
            and _older_than(text, at, line_end, netns_born)
        ):
            continue  # an earlier namespace that had the same inode number
        counts[netns] = counts.get(netns, 0) + 1
        first.setdefault(netns, at)
        last[netns] = at
    return _summary(text, source, counts, first, last)


def _summary(
    text: str,
    source: str,
    counts: Mapping[str | None, int],
    first_at: Mapping[str | None, int],
    last_at: Mapping[str | None, int],
) -> TableFullLog:
    """Build the few LogHits wanted, counting line numbers in one pass over the text."""
    offsets = sorted({*first_at.values(), *last_at.values()})
    hits: dict[int, LogHit] = {}
    line_number, counted_to = 1, 0
    for at in offsets:
        start = text.rfind("\n", 0, at) + 1
        end = text.find("\n", at)
        end = len(text) if end < 0 else end
        line_number += text.count("\n", counted_to, start)
        counted_to = start
        line = text[start : min(end, start + _MAX_TEXT)].strip()
        hits[at] = LogHit(line_number, line, _timestamp(text, start, end), None)
    by_netns: dict[int | None, int] = {}
    first: dict[int | None, LogHit] = {}
    last: dict[int | None, LogHit] = {}
    for raw, count in counts.items():
        netns = None if raw is None else int(raw)  # "0042" and "42" are one namespace
        by_netns[netns] = by_netns.get(netns, 0) + count
        head, tail = hits[first_at[raw]], hits[last_at[raw]]
        if netns not in first or head.line < first[netns].line:
            first[netns] = replace(head, netns=netns)
        if netns not in last or tail.line > last[netns].line:
            last[netns] = replace(tail, netns=netns)
    return TableFullLog(source, sum(by_netns.values()), by_netns, first, last)


def _tail_text(data: bytes, tail_bytes: int) -> tuple[str, bool]:
    """Decode a tail read one byte longer than ``tail_bytes``; drop a partial first line.

    The extra byte tells whether the window starts a line: it is the byte before it.
    """
    truncated = len(data) > tail_bytes
    if truncated:
        data = data[data.find(b"\n") + 1 :] if b"\n" in data else b""
    return data.decode("utf-8", errors="replace"), truncated


def read_log_file(
    host: HostRoot, path: str, tail_bytes: int = LOG_TAIL_BYTES, namespaced: bool = True
) -> TableFullLog | Missing:
    """Scan the last ``tail_bytes`` of one log file; ``namespaced`` False leaves out the
    lines that name a namespace."""
    data = host.try_read_tail(path, tail_bytes + 1)
    if isinstance(data, Missing):
        return data
    text, truncated = _tail_text(data, tail_bytes)
    log = parse_kernel_log(text, path)
    by_netns = log.by_netns
    if not namespaced:
        by_netns = {netns: n for netns, n in by_netns.items() if netns is None}
    first = {k: v for k, v in log.first.items() if k in by_netns}
    last = {k: v for k, v in log.last.items() if k in by_netns}
    return TableFullLog(log.source, sum(by_netns.values()), by_netns, first, last, truncated)


def _dmesg(dmesg: Excerpt | Missing, netns_born: float | None) -> TableFullLog | Missing:
    if isinstance(dmesg, Missing):
        return dmesg
    log = parse_kernel_log(dmesg.text, "dmesg", netns_born)
    return replace(log, truncated=True) if dmesg.cut else log


def read_kernel_logs(
    host: HostRoot, commands: Commands, netns_born: float | None = None
) -> tuple[TableFullLog | Missing, ...]:
    """``dmesg`` first, then each syslog file that exists (absent ones are not listed).

    journald-only hosts have no syslog file; dmesg alone then covers the kernel ring
    buffer, which is small and restarts at boot.
    """
    results: list[TableFullLog | Missing] = [_dmesg(commands.excerpt("dmesg"), netns_born)]
    # a file outlives namespaces and boots, and a namespace number is handed out again: where
    # the namespace's age is known (dmesg is filtered by it), a file line naming a
    # namespace cannot be told to be this one's, and is left out
    namespaced = netns_born is None
    results.extend(
        read_log_file(host, path, namespaced=namespaced)
        for path in KERNEL_LOG_FILES
        if host.exists(path)
    )
    return tuple(results)
