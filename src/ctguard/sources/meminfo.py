"""``/proc/meminfo``: the memory the conntrack table competes for."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ctguard.errors import ParseError
from ctguard.host.caps import PROC_LIST_BYTES
from ctguard.host.root import HostRoot
from ctguard.missing import Missing

MEMINFO = "/proc/meminfo"
_DECIMAL = re.compile(r"-?[0-9]+")


@dataclass(frozen=True)
class Meminfo:
    mem_total: int  # bytes
    mem_available: int | None  # bytes; MemAvailable appeared in 3.14


def parse_meminfo(text: str) -> Meminfo:
    """Parse by field name; values are kB.

    >>> parse_meminfo("MemTotal:       24596776 kB\\nMemFree: 1 kB\\nMemAvailable: 2048 kB\\n")
    Meminfo(mem_total=25187098624, mem_available=2097152)
    """
    fields: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        parts = rest.split()
        if not sep or not parts:
            continue
        if not _DECIMAL.fullmatch(parts[0]):
            continue  # not how the kernel prints a number ("1_000", "+5", "0x10")
        number = int(parts[0])
        unit = parts[1] if len(parts) > 1 else ""
        fields[name.strip()] = number * 1024 if unit == "kB" else number
    if "MemTotal" not in fields:
        raise ParseError(f"{MEMINFO}: no MemTotal line")
    if fields["MemTotal"] <= 0:
        raise ParseError(f"{MEMINFO}: MemTotal is not positive")
    available = fields.get("MemAvailable")
    if available is not None and available < 0:  # the kernel clamps it at 0: damage
        available = None  # as on kernels before 3.14
    return Meminfo(fields["MemTotal"], available)


def read_meminfo(host: HostRoot) -> Meminfo | Missing:
    text = host.try_read_text(MEMINFO, PROC_LIST_BYTES)
    return text if isinstance(text, Missing) else parse_meminfo(text)
