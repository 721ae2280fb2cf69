"""What-if timeouts: how much of the table would already be gone under shorter timeouts.

An entry showing ``remaining`` seconds under a current timeout ``T`` last saw a packet
``T - remaining`` seconds ago (every packet re-arms the timer to T). Under a proposed
timeout ``P`` it would have expired once ``T - remaining >= P``. Exact per entry: the
Tally keeps every distinct (protocol, state, flag, remaining).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ctguard.errors import CtguardError
from ctguard.table.keys import FLAG_ASSURED
from ctguard.table.summary import REMAINING_BITS, REMAINING_MASK, decode_timeout
from ctguard.table.tally import Tally

SYSCTL_PREFIX = "net.netfilter.nf_conntrack_"
STREAM_PROTOCOLS = ("udp", "udplite", "gre")  # assured entries run on <proto>_timeout_stream
STATE_TIMEOUT_PROTOCOLS = ("tcp", "sctp", "dccp")
# the TCP states whose timeout sysctl is named differently from the state
TCP_STATE_SYSCTL = {"SYN_SENT2": "syn_sent", "NONE": "syn_sent"}


@dataclass(frozen=True)
class WhatIf:
    timeout: str  # short sysctl name, e.g. tcp_timeout_established
    current: int
    proposed: int
    affected: int  # entries governed by this timeout
    expired: int  # of which would already have expired


class WhatIfError(CtguardError):
    pass


def parse_what_if(spec: str) -> dict[str, int]:
    """``tcp_timeout_established=600,udp_timeout=30`` (full sysctl names work too).

    >>> parse_what_if("net.netfilter.nf_conntrack_udp_timeout=30, tcp_timeout_time_wait=30")
    {'udp_timeout': 30, 'tcp_timeout_time_wait': 30}
    """
    proposed: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, eq, value = item.partition("=")
        name = name.strip().removeprefix(SYSCTL_PREFIX).removeprefix("nf_conntrack_")
        if not eq or not name or not _decimal(value.strip()):
            raise WhatIfError(
                f"--what-if {item!r}: expected NAME=SECONDS, e.g. tcp_timeout_established=600"
            )
        if "timeout" not in name:
            raise WhatIfError(f"--what-if {name!r} is not a conntrack timeout")
        proposed[name] = int(value)
    if not proposed:
        raise WhatIfError("--what-if needs at least one NAME=SECONDS")
    return proposed


def _decimal(text: str) -> bool:
    """Digits 0-9 only: str.isdigit() also takes '²', which int() refuses."""
    return text.isascii() and text.isdigit()


def timeout_name(protocol: str, state: str, flag: int, available: Mapping[str, int]) -> str | None:
    """The short sysctl name of the timeout that governs entries of this kind."""
    if protocol in STATE_TIMEOUT_PROTOCOLS:
        if not state or state == "OTHER":
            return None
        suffix = TCP_STATE_SYSCTL.get(state, state.lower()) if protocol == "tcp" else state.lower()
        return f"{protocol}_timeout_{suffix}"
    if protocol in STREAM_PROTOCOLS:
        base = protocol
        if protocol == "udplite" and "udplite_timeout" not in available:
            base = "udp"  # udplite shares UDP's timeouts since Linux 5.x
        return f"{base}_timeout_stream" if flag == FLAG_ASSURED else f"{base}_timeout"
    if protocol in ("icmp", "icmpv6"):
        return f"{protocol}_timeout"
    return "generic_timeout"


def what_if(tally: Tally, current: Mapping[str, int], proposed: Mapping[str, int]) -> list[WhatIf]:
    """One row per proposed timeout, in the order given. ``current`` holds the host's
    timeouts by short name (``tcp_timeout_established``: 432000)."""
    unknown = [name for name in proposed if name not in current]
    if unknown:
        raise WhatIfError(
            f"--what-if: the host has no timeout named {unknown[0]!r} "
            "(see: sysctl -a --pattern 'nf_conntrack_.*timeout')"
        )
    affected = dict.fromkeys(proposed, 0)
    expired = dict.fromkeys(proposed, 0)
    names: dict[int, str | None] = {}  # per (protocol, state, flag): one key per second
    for key, count in tally.timeouts.items():
        head, stored = key >> REMAINING_BITS, key & REMAINING_MASK
        if not stored:
            continue  # offloaded (no timeout shown): the flowtable, not this timeout, decides
        if head not in names:
            kind = decode_timeout(key)
            names[head] = timeout_name(kind.protocol, kind.state, kind.flag, current)
        name = names[head]
        if name is None or name not in proposed:
            continue
        affected[name] += count
        if current[name] - (stored - 1) >= proposed[name]:
            expired[name] += count
    return [
        WhatIf(name, current[name], value, affected[name], expired[name])
        for name, value in proposed.items()
    ]


# nf_conntrack_events_retry_timeout (kernels before 5.x): how soon a lost event is sent
# again, not how long an entry lives
NOT_FLOW_TIMEOUTS = frozenset({"events_retry_timeout"})


def current_timeouts(values: Mapping[str, int]) -> dict[str, int]:
    """The flow timeouts (how long an entry lives in a state) by short name, from
    ``nf_conntrack_*`` sysctl file names: what --what-if may change and the exporter shows."""
    short = {name.removeprefix("nf_conntrack_"): value for name, value in values.items()}
    return {
        name: value
        for name, value in short.items()
        if "timeout" in name and name not in NOT_FLOW_TIMEOUTS
    }
