"""CT402 and CT505: what the table holds, when a table was read (live, or a snapshot's
proc/net/nf_conntrack or conntrack -L)."""

from __future__ import annotations

from ctguard.facts import Facts, TableFacts
from ctguard.findings import Severity
from ctguard.missing import Missing
from ctguard.model.composition import KINDS, dominant_kinds
from ctguard.model.thresholds import Thresholds
from ctguard.model.values import runtime
from ctguard.rules import Outcome, found, passed, rule, skipped
from ctguard.rules.remedies import persist_file
from ctguard.sources.local_port_range import ephemeral_range
from ctguard.sources.sysctl_runtime import ConntrackSysctls
from ctguard.table.candidates import Candidate, PassedOver, notrack_candidates
from ctguard.table.whatif import WhatIf, current_timeouts, what_if

WHO_OPENS = "ctguard analyze --by src,dport,state"


def _gate(facts: Facts, limits: Thresholds) -> TableFacts | Outcome:
    if isinstance(facts.table, Missing):
        return skipped(f"no table to look at: {facts.table.reason}")
    entries = facts.table.summary.entries
    if entries < limits.table_min_entries:
        return passed(
            f"{entries} entries in the table: too few for the composition to matter"
            f" (from {limits.table_min_entries:g})"
        )
    return facts.table


def _timeouts(facts: Facts) -> dict[str, int]:
    return (
        current_timeouts(facts.sysctls.values)
        if isinstance(facts.sysctls, ConntrackSysctls)
        else {}
    )


def _sysctl_command(facts: Facts, name: str, value: int) -> str:
    command = f"sysctl -w net.netfilter.nf_conntrack_{name}={value}"
    return f"ip netns exec {facts.netns} {command}" if facts.netns else command


def _what_if_line(row: WhatIf, entries: int) -> str:
    share = 100.0 * row.expired / entries if entries else 0.0
    return (
        f"what if {row.timeout} {row.current} -> {row.proposed} s: {row.expired:,} entries"
        f" ({share:.1f} % of the table) would already have expired"
    )


@rule("CT402")
def unhealthy_composition(facts: Facts, limits: Thresholds) -> Outcome:
    table = _gate(facts, limits)
    if isinstance(table, Outcome):
        return table
    summary = table.summary
    evidence: list[str] = []
    commands: list[str] = []
    current = _timeouts(facts)
    for kind, count, share in dominant_kinds(summary, limits.composition_share):
        evidence.append(f"{kind.label}: {count:,} of {summary.entries:,} entries ({share:.1f} %)")
        now = current.get(kind.timeout)
        if now is not None and now > kind.proposed:
            row = what_if(table.tally, current, {kind.timeout: kind.proposed})[0]
            evidence.append(_what_if_line(row, summary.entries))
            commands.append(_sysctl_command(facts, kind.timeout, kind.proposed))
        elif now is not None:
            evidence.append(f"{kind.timeout} is already {now} s")
    if not evidence:
        kinds = ", ".join(kind.label for kind in KINDS)
        return passed(f"no single kind ({kinds}) holds {limits.composition_share:g} % of the table")
    if not commands:
        fix = "The timeout is already short: find who opens these flows:\n" + WHO_OPENS
    else:
        persist = (
            "and set it wherever this namespace is created (container runtime, pod sysctls)."
            if facts.netns
            else f"and persist it in {persist_file(facts)}."
        )
        fix = (
            "Shorten the timeout that keeps this majority alive (the what-if line shows what"
            " it frees):\n"
            + "\n".join(commands)
            + f"\n{persist}\nThen find who opens these flows:\n{WHO_OPENS}"
        )
    return found(Severity.WARNING, evidence, fix)


@rule("CT505")
def dominant_port(facts: Facts, limits: Thresholds) -> Outcome:
    table = _gate(facts, limits)
    if isinstance(table, Outcome):
        return table
    summary = table.summary
    top = max(summary.dports.items(), key=lambda kv: (kv[1], kv[0]), default=None)
    if top is None:
        return passed("no entry has ports")
    (protocol, port), count = top
    share = 100.0 * count / summary.entries
    evidence = [f"{protocol}/{port}: {count:,} of {summary.entries:,} entries ({share:.1f} %)"]
    if share < limits.port_share:
        return passed(
            f"the busiest port holds {share:.1f} % (from {limits.port_share:g} %)", evidence
        )
    ephemeral = ephemeral_range(facts.local_ports)
    candidates = notrack_candidates(summary, ephemeral, min_entries=int(limits.table_min_entries))
    row = candidates.for_port(protocol, port)
    if protocol not in ("tcp", "udp"):  # no bypass we would propose
        return passed(
            f"{protocol}/{port} dominates; NOTRACK is offered for tcp and udp only", evidence
        )
    if row is None:  # directions unknown: a wrong --direction would untrack nothing
        return passed(f"{protocol}/{port} dominates, but {candidates.skipped}", evidence)
    if isinstance(row, PassedOver):
        return passed(
            f"{protocol}/{port} dominates but is no NOTRACK candidate: {row.why}", evidence
        )
    candidate = row
    evidence.append(f"no NATed entry on {protocol}/{port}")
    usage = runtime(facts, "nf_conntrack_count"), runtime(facts, "nf_conntrack_max")
    full = bool(
        usage[0] is not None and usage[1] and 100.0 * usage[0] / usage[1] >= limits.usage_warning
    )
    evidence.append(
        f"{protocol}/{port} entries by direction: "
        + ", ".join(f"{way} {count:,}" for way, count in candidate.split)
    )
    fix = (
        f"Take {protocol}/{port} out of conntrack with raw-table NOTRACK"
        f" ({_WAYS[candidate.direction]}) and an accept for UNTRACKED packets in the filter"
        f" table, or they are dropped (CT501):\n"
        f"{candidate.command} --apply --verify  (installs, proves and journals it; refuses NAT)\n"
        + _by_hand(candidate, ephemeral)
    )
    return found(Severity.WARNING if full else Severity.INFO, evidence, fix)


_WAYS = {
    "server": "the host serves it: packets to it in, from it out",
    "client": "the host's own connections to it: packets to it out, replies from it in",
    "both": "both ways: the host serves it and connects to it, or loopback",
}


def _by_hand(candidate: Candidate, ephemeral: tuple[int, int]) -> str:
    protocol, port = candidate.protocol, candidate.port
    if candidate.direction != "server":  # the reply rules need ip_local_port_range
        low, high = ephemeral
        return (
            f"Without --apply, `{candidate.command}` prints the rules it would add. It"
            f" untracks the replies of the host's own connections on ip_local_port_range"
            f" {low}-{high} only; each of them in the table left from a port in it (a client"
            f" that later binds its own port, outside it, would keep its replies tracked)."
        )
    return (
        f"By hand, iptables: -t raw -A PREROUTING -p {protocol} --dport {port} -j NOTRACK;"
        f" -t raw -A OUTPUT -p {protocol} --sport {port} -j NOTRACK;"
        f" -A INPUT -p {protocol} --dport {port} -m conntrack --ctstate UNTRACKED -j ACCEPT"
        f" (and the same for ip6tables)."
    )
