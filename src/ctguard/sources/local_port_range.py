"""``/proc/sys/net/ipv4/ip_local_port_range``: the ports this host's own connections leave
from, so the ports their replies come back to (``notrack --direction client`` untracks and
accepts replies on these only)."""

from __future__ import annotations

from dataclasses import dataclass

from ctguard.errors import ParseError
from ctguard.host.root import HostRoot
from ctguard.missing import Missing

LOCAL_PORT_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"
# The kernel's default (Documentation/networking/ip-sysctl.rst, ip_local_port_range).
DEFAULT_LOCAL_PORT_RANGE = (32768, 60999)
_MAX_PORT = 65535


@dataclass(frozen=True)
class LocalPortRange:
    low: int
    high: int


def parse_local_port_range(text: str) -> LocalPortRange:
    """Two port numbers, low then high (the kernel separates them with a tab).

    >>> parse_local_port_range("32768\\t60999\\n")
    LocalPortRange(low=32768, high=60999)
    """
    words = text.split()
    if len(words) != 2 or not all(word.isdigit() for word in words):
        shown = text.strip()[:40] or "an empty file"
        raise ParseError(f"{LOCAL_PORT_RANGE}: expected two port numbers, got {shown!r}")
    low, high = int(words[0]), int(words[1])
    if not 0 < low <= high <= _MAX_PORT:
        raise ParseError(f"{LOCAL_PORT_RANGE}: {low} {high} is not a range of ports, low-high")
    return LocalPortRange(low, high)


def ephemeral_range(ports: LocalPortRange | Missing | None) -> tuple[int, int]:
    """Where this host's own connections start from, as every check weighs it (CT501, CT505,
    ``notrack``, ``analyze``): the range read, else the kernel's default (what most hosts
    run)."""
    return (
        (ports.low, ports.high) if isinstance(ports, LocalPortRange) else DEFAULT_LOCAL_PORT_RANGE
    )


def read_local_port_range(host: HostRoot) -> LocalPortRange | Missing:
    text = host.try_read_text(LOCAL_PORT_RANGE, 256)
    return text if isinstance(text, Missing) else parse_local_port_range(text)
