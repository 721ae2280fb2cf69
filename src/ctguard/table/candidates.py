"""NOTRACK candidates: (protocol, port) pairs that hold much of the table and see no NAT.

Untracked packets are never NATed, so a port with any NATed entry is not a candidate
(docs/design.md §7), nor a port that NAT translates flows *to* (DNAT 8080 -> 8983: the replies from
8983 must stay tracked to be translated back). The port is the original direction's
destination port: for inbound connections, the local service.
"""

from __future__ import annotations

from dataclasses import dataclass

from ctguard.table.summary import TableSummary

MIN_SHARE = 5.0  # % of the table below which bypassing the port is not worth the risk


@dataclass(frozen=True)
class Candidate:
    protocol: str
    port: int
    entries: int
    share: float  # % of all entries

    @property
    def command(self) -> str:
        return f"ctguard notrack --port {self.port} --proto {self.protocol}"


def notrack_candidates(summary: TableSummary, min_share: float = MIN_SHARE) -> list[Candidate]:
    if not summary.entries:
        return []
    rows = [
        Candidate(protocol, port, count, 100.0 * count / summary.entries)
        for (protocol, port), count in summary.dports.items()
        if protocol in ("tcp", "udp")
        and not summary.dports_nat.get((protocol, port))
        and not summary.nat_targets.get((protocol, port))
    ]
    rows = [row for row in rows if row.share >= min_share]
    return sorted(rows, key=lambda row: (-row.entries, row.protocol, row.port))
