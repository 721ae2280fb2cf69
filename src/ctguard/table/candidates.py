"""NOTRACK candidates: (protocol, port) pairs that hold much of the table, see no NAT, and
whose entries all go one way ctguard's ``notrack --direction`` can untrack.

Untracked packets are never NATed, so a port with any NATed entry is not a candidate
(docs/design.md §7), nor a port that NAT translates flows *to* (DNAT 8080 -> 8983: the replies from
8983 must stay tracked to be translated back). The port is the original direction's
destination port, and an entry's direction says whose port it is (summary.Shape.direction):

- ``server``: opened to the host's own address: the host serves the port, and
  ``--direction server`` untracks it (dport P in, sport P out);
- ``client``: opened by the host (its own DNS queries to resolvers): the port is the remote
  one, and only ``--direction client`` untracks it (dport P out, replies from P in). An
  entry is the host's own by its original source (one of the host's addresses, the
  destination not), whatever its source port; but that direction untracks only the replies
  that come back to ip_local_port_range, so a port some of whose own connections leave from
  another source port (ntpd's 123, a resolver's own port range) is passed over;
- ``local``: both ends are the host's (loopback): only ``--direction both`` untracks it;
- ``forwarded``: neither end is the host's. ``notrack`` adds its rules on prerouting and
  output and its accepts on input and output: forwarded packets to or from P would be
  untracked too, with no accept on the forward hook. Such a port is passed over.

A port whose entries go several ways is one candidate with ``--direction both``, so the
command untracks every entry it counts. A port inside ip_local_port_range is an ephemeral
port (a client's source port the peer happened to reach), not a service, and is passed
over; so is every port while the table holds fewer than MIN_ENTRIES entries (a sample
too small to tell, and a table that small is under no pressure), and every port while
the host's addresses are unknown (a dump file): its direction cannot be told, and the
wrong ``--direction`` untracks nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from ctguard.table.summary import DIRECTIONS, TableSummary

MIN_SHARE = 5.0  # % of the table below which bypassing the port is not worth the risk
MIN_ENTRIES = 1000  # entries the table must hold before any port is proposed


@dataclass(frozen=True)
class Candidate:
    protocol: str
    port: int
    direction: str  # the --direction that untracks these entries: server | client | both
    entries: int
    share: float  # % of all entries
    split: tuple[tuple[str, int], ...]  # (summary direction, entries), largest first

    @property
    def command(self) -> str:
        return (
            f"ctguard notrack --port {self.port} --proto {self.protocol}"
            f" --direction {self.direction}"
        )


@dataclass(frozen=True)
class PassedOver:
    """A port as large as a candidate that is not one, and why."""

    protocol: str
    port: int
    entries: int
    share: float
    why: str


@dataclass(frozen=True)
class Candidates:
    rows: tuple[Candidate, ...]
    passed_over: tuple[PassedOver, ...] = ()
    skipped: str = ""  # why no port could be weighed at all ("": none)

    def for_port(self, protocol: str, port: int) -> Candidate | PassedOver | None:
        rows: list[Candidate | PassedOver] = [*self.rows, *self.passed_over]
        return next((r for r in rows if (r.protocol, r.port) == (protocol, port)), None)


def notrack_candidates(
    summary: TableSummary,
    ephemeral: tuple[int, int],
    min_share: float = MIN_SHARE,
    min_entries: int = MIN_ENTRIES,
) -> Candidates:
    """``ephemeral``: the host's ip_local_port_range, low and high (sources.local_port_range;
    the kernel's default when unread)."""
    if summary.entries < min_entries:
        return Candidates(
            (),
            skipped=f"{summary.entries:,} entries: too few to propose NOTRACK"
            f" (from {min_entries:,})",
        )
    if summary.no_local_addresses:
        return Candidates(
            (),
            skipped=f"no --direction can be chosen: {summary.no_local_addresses}",
        )
    rows: list[Candidate] = []
    passed: list[PassedOver] = []
    for (protocol, port), count in summary.dports.items():
        share = 100.0 * count / summary.entries
        if protocol not in ("tcp", "udp") or share < min_share:
            continue
        split = _split(summary, protocol, port)
        why = _why_not(summary, protocol, port, split, ephemeral)
        if why:
            passed.append(PassedOver(protocol, port, count, share, why))
            continue
        ways = {way for way, _ in split}
        direction = "both" if "local" in ways or len(ways) > 1 else ways.pop()
        rows.append(Candidate(protocol, port, direction, count, share, split))
    return Candidates(
        tuple(sorted(rows, key=lambda row: (-row.entries, row.protocol, row.port))),
        tuple(sorted(passed, key=lambda row: (-row.entries, row.protocol, row.port))),
    )


def _split(summary: TableSummary, protocol: str, port: int) -> tuple[tuple[str, int], ...]:
    counts = [(way, summary.dport_directions.get((protocol, port, way), 0)) for way in DIRECTIONS]
    return tuple(sorted(((w, n) for w, n in counts if n), key=lambda item: -item[1]))


def _why_not(
    summary: TableSummary,
    protocol: str,
    port: int,
    split: tuple[tuple[str, int], ...],
    ephemeral: tuple[int, int],
) -> str:
    nated = summary.dports_nat.get((protocol, port), 0)
    if nated:
        return (
            f"{nated:,} of its entries are NATed: untracked packets are never NATed,"
            " so NOTRACK would break them"
        )
    translated = summary.nat_targets.get((protocol, port), 0)
    if translated:
        return f"{translated:,} NATed entries are translated to it: their replies need conntrack"
    low, high = ephemeral
    if low <= port <= high:
        return (
            f"inside ip_local_port_range {low}-{high}: an ephemeral port"
            " the host's own connections leave from, not a service"
        )
    forwarded = dict(split).get("forwarded", 0)
    if forwarded:
        return (
            f"{forwarded:,} of its entries are forwarded through the host: notrack would"
            " untrack them too, with no accept on the forward hook"
        )
    fixed = summary.client_fixed_sports.get((protocol, port), 0)
    if fixed:
        return (
            f"{fixed:,} of the host's own connections to it leave from source ports outside"
            f" ip_local_port_range {low}-{high} (a client bound to its own ports):"
            " --direction client untracks only the replies that come back to that range,"
            " so theirs would stay tracked, seen as new flows a stateful filter drops"
        )
    return ""
