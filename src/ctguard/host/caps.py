"""How much ctguard reads of each program output: the one home of the caps.

A busy host's ``ps`` can be tens of MB (63 MB took doctor 24 s and 670 MB), and a snapshot
may hold anything. Each output is read up to its cap, keeping what matters: the head of
``ps`` (every process up to the cap), the tail of ``dmesg`` (the latest messages), and
for outputs that are only right whole (counters, rulesets) nothing at all when they are
larger: a cut ruleset would look like one without the rules that were cut. What was cut
is said (``Excerpt.cut``), so a check that saw a part says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Literal

from ctguard.missing import Missing

MiB = 1024**2
# Files read whole (HostRoot.read_bytes' default): no file ctguard reads whole comes near;
# a crafted snapshot may. Also what one snapshot archive member may hold, and what a
# snapshot captures of one program.
MAX_FILE_BYTES = 64 * MiB
# A table dump in a snapshot (proc/net/nf_conntrack or ctguard_commands/conntrack-L): a
# 10 M entry dump is about 1.7 GB. The reader refuses an archive whose table member is
# larger; the capture stops at it and records why the table is not in the snapshot.
MAX_TABLE_BYTES = 4 * 1024**3
# Compressed input (a snapshot archive, a gzipped table dump): unpacked bytes per packed
# byte. gzip packs a conntrack dump about 10:1 (at most ~30:1 for a table of one repeated
# shape), tar's padding of small files about 20:1; zeros and newlines reach 1000:1. Any
# input may unpack to RATIO_FLOOR whatever its ratio.
MAX_RATIO = 100
RATIO_FLOOR = 64 * MiB


def max_unpacked(packed: int) -> int:
    """The most ``packed`` compressed bytes may unpack to."""
    return max(RATIO_FLOOR, MAX_RATIO * packed)


# procfs listings read whole: one line per possible CPU (/proc/net/stat/nf_conntrack:
# 8192 CPUs are 1.3 MB; conntrack -S prints ~250 B per CPU, 2 MB), per module
# (/proc/modules), per field (/proc/meminfo). A crafted 60 MB stat file took doctor 2.7 s
# and 170 MB.
PROC_LIST_BYTES = 4 * MiB
# Log files (kern.log, messages, syslog) and dmesg: the last 32 MiB, weeks of kernel
# messages on a busy host (the kernel's ring buffer is at most 32 MiB).
LOG_TAIL_BYTES = 32 * MiB

Keep = Literal["head", "tail", "whole"]


@dataclass(frozen=True)
class Cap:
    """At most ``max_bytes`` (and ``max_lines``) of an output, its ``keep`` end; "whole":
    all or nothing. ``lost``: what an operator misses when it is cut."""

    max_bytes: int
    keep: Keep = "whole"
    max_lines: int | None = None
    lost: str = ""


# ps -eo pid,args of a busy host: ~30k processes, a few long Java command lines; 8 MiB
# and 100,000 lines take doctor under a second. kube-proxy and tuned are looked for in it.
PS_CAP = Cap(8 * MiB, "head", 100_000, "processes after that were not seen")
CAPS: dict[str, Cap] = {
    "ps": PS_CAP,
    "dmesg": Cap(LOG_TAIL_BYTES, "tail", lost="older kernel messages were not read"),
    # a k8s node with thousands of services: tens of MB of rules
    "iptables-save": Cap(MAX_FILE_BYTES),
    "ip6tables-save": Cap(MAX_FILE_BYTES),
    "nft-json": Cap(MAX_FILE_BYTES),
    "ip-addr": Cap(16 * MiB),  # ~2 KB per interface: thousands of veths
    # the per-CPU counters of /proc/net/stat/nf_conntrack, ~250 B per CPU printed
    "conntrack-S": Cap(PROC_LIST_BYTES),
    "netlink-stats": Cap(PROC_LIST_BYTES),  # the same counters over netlink
    "conntrack-C": Cap(4096),
    "lsmod": Cap(1 * MiB),
    "uname-r": Cap(4096),
    "iptables-version": Cap(4096),
}
DEFAULT_CAP = Cap(MAX_FILE_BYTES)


def cap_of(name: str) -> Cap:
    return CAPS.get(name, DEFAULT_CAP)


@dataclass(frozen=True)
class Excerpt:
    """What was read of an output, and what was left out (None: nothing)."""

    text: str
    cut: str | None = None


def _mib(size: int) -> str:
    return f"{size / MiB:.1f} MiB" if size >= MiB else f"{size} bytes"


def excerpt(data: bytes, total: int, cap: Cap, what: str) -> Excerpt | Missing:
    """The excerpt of an output of ``total`` bytes, given ``data``: its first (head, whole)
    or last (tail) ``cap.max_bytes`` or fewer. Whole outputs over the cap are Missing."""
    if cap.keep == "whole":
        if total > cap.max_bytes:
            return Missing(f"{what} is {_mib(total)}, more than the {_mib(cap.max_bytes)} read")
        return Excerpt(data.decode("utf-8", "replace"))
    data = data[: cap.max_bytes] if cap.keep == "head" else data[-cap.max_bytes :]
    kept_lines = ""
    if cap.keep == "tail":
        if len(data) < total:
            data = data[data.find(b"\n") + 1 :]  # whole lines only
    else:
        if len(data) < total:
            data = data[: data.rfind(b"\n") + 1]
        at = -1
        for _ in range(cap.max_lines or 0):
            at = data.find(b"\n", at + 1)
            if at < 0:
                break
        if at >= 0 and at + 1 < len(data):
            data, kept_lines = data[: at + 1], f"{cap.max_lines} lines, "
    text = data.decode("utf-8", "replace")
    if len(data) == total:
        return Excerpt(text)
    if cap.keep == "head":
        note = f"{what} cut at {kept_lines}{_mib(len(data))} of {_mib(total)}; {cap.lost}"
    else:
        note = f"{what}: only its last {_mib(len(data))} of {_mib(total)} read; {cap.lost}"
    return Excerpt(text, note)


def read_capped(stream: BinaryIO, cap: Cap, what: str) -> Excerpt | Missing:
    """Read ``stream`` to its end, keeping at most ``cap.max_bytes`` (its head or tail)
    and counting the rest, in bounded memory."""
    kept = bytearray()
    total = 0
    while chunk := stream.read(1 << 16):
        total += len(chunk)
        if cap.keep == "tail":
            kept += chunk
            if len(kept) > 2 * cap.max_bytes:
                del kept[: len(kept) - cap.max_bytes]
        elif len(kept) <= cap.max_bytes:
            kept += chunk[: cap.max_bytes + 1 - len(kept)]
    return excerpt(bytes(kept), total, cap, what)
