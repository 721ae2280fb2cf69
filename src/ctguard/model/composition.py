"""Unhealthy majorities of a conntrack table (CT402) and the timeout that governs each."""

from __future__ import annotations

from dataclasses import dataclass

from ctguard.table.summary import TableSummary


@dataclass(frozen=True)
class Kind:
    """An unhealthy majority and the one timeout that governs it."""

    label: str
    state: tuple[str, str] | None  # (protocol, state) counted; None: unreplied UDP
    timeout: str  # short sysctl name
    proposed: int  # seconds; why each value is safe is in the comment beside it


# TIME_WAIT entries only keep conntrack's view of a closed connection; 30 s still covers
# late retransmissions on any sane RTT (the socket's own TIME_WAIT is not affected).
# An unreplied UDP flow that waited 10 s for its first answer is a lost query: resolvers
# retry on a new port. A SYN unanswered for 30 s has been retried by the client 3-4 times.
KINDS = (
    Kind("tcp TIME_WAIT", ("tcp", "TIME_WAIT"), "tcp_timeout_time_wait", 30),
    Kind("udp unreplied", None, "udp_timeout", 10),
    Kind("tcp SYN_SENT", ("tcp", "SYN_SENT"), "tcp_timeout_syn_sent", 30),
)


def _count(summary: TableSummary, kind: Kind) -> int:
    return summary.unreplied_udp if kind.state is None else summary.states.get(kind.state, 0)


def dominant_kinds(summary: TableSummary, min_share: float) -> list[tuple[Kind, int, float]]:
    """(kind, entries, % of the table) of every kind holding ``min_share`` % or more."""
    found = []
    for kind in KINDS:
        count = _count(summary, kind)
        share = 100.0 * count / summary.entries if summary.entries else 0.0
        if summary.entries and share >= min_share:
            found.append((kind, count, share))
    return found
