"""CT307 and CT401: timeouts that differ between namespaces or keep idle entries for days."""

from __future__ import annotations

from collections.abc import Mapping

from ctguard.facts import Facts, TableFacts
from ctguard.findings import Severity
from ctguard.missing import Missing
from ctguard.model.firewall import nat_rules
from ctguard.model.sizing import NAT_MIN_ESTABLISHED
from ctguard.model.thresholds import Thresholds
from ctguard.model.values import runtime, table_count
from ctguard.rules import Outcome, found, passed, rule, skipped
from ctguard.rules.remedies import WHAT_FILLS, persist_file
from ctguard.sources.ruleset import Ruleset
from ctguard.sources.sysctl_runtime import ConntrackSysctls
from ctguard.table.whatif import what_if

# Per-namespace behaviour keys compared between namespaces (a new namespace starts from
# the compiled-in defaults, not from the host's values: nf_conntrack_*_init_net()).
_PER_NETNS_PREFIXES = ("nf_conntrack_tcp_", "nf_conntrack_udp_", "nf_conntrack_icmp")
_PER_NETNS_KEYS = ("nf_conntrack_generic_timeout", "nf_conntrack_acct")


def _behaviour(values: Mapping[str, int]) -> dict[str, int]:
    return {
        k: v for k, v in values.items() if k.startswith(_PER_NETNS_PREFIXES) or k in _PER_NETNS_KEYS
    }


def _differences(here: ConntrackSysctls, there: ConntrackSysctls) -> list[tuple[str, int, int]]:
    mine, theirs = _behaviour(here.values), _behaviour(there.values)
    return [(k, mine[k], theirs[k]) for k in sorted(mine) if k in theirs and mine[k] != theirs[k]]


@rule("CT307")
def namespaces_differ(facts: Facts, _limits: Thresholds) -> Outcome:
    if not isinstance(facts.sysctls, ConntrackSysctls):
        return skipped(f"no runtime values: {facts.sysctls.reason}")
    pairs: list[tuple[str, ConntrackSysctls, ConntrackSysctls]] = []
    if facts.netns is not None:
        if not isinstance(facts.init_sysctls, ConntrackSysctls):
            return skipped("the initial namespace's values were not read")
        pairs.append((facts.netns, facts.sysctls, facts.init_sysctls))
    elif isinstance(facts.other_netns, Missing):
        return skipped(facts.other_netns.reason)
    else:
        pairs += [(n, v, facts.sysctls) for n, v in sorted(facts.other_netns.items())]
        if not pairs:
            why = (
                "no named namespace on this host"
                if facts.live
                else "a snapshot holds one namespace"
            )
            return skipped(f"{why}; examine one with --netns NAME")
    evidence: list[str] = []
    fixes: list[str] = []
    for name, inside, init in pairs:
        for key, mine, theirs in _differences(inside, init):
            evidence.append(f"namespace {name}: {key} = {mine}, initial namespace: {theirs}")
            fixes.append(f"ip netns exec {name} sysctl -w net.netfilter.{key}={theirs}")
    if not evidence:
        return passed(f"{len(pairs)} namespace(s) use the initial namespace's timeouts")
    fix = (
        "A new namespace starts from compiled-in timeouts, not the host's. Set them inside"
        " each namespace (container runtimes: the pod's sysctls), e.g.:\n"
        + "\n".join(dict.fromkeys(fixes))
    )
    return found(Severity.INFO, evidence, fix)


IDLE_LONG = 3600  # an ESTABLISHED flow silent for an hour is, for conntrack, idle


def _idle_share(
    table: TableFacts, timeout: int, limits: Thresholds, evidence: list[str]
) -> Outcome | None:
    """With the table: do ESTABLISHED entries idle for over an hour dominate it?"""
    entries = table.summary.entries
    if entries < limits.table_min_entries:
        return passed(f"long, but the table holds only {entries} entries", evidence)
    row = what_if(
        table.tally, {"tcp_timeout_established": timeout}, {"tcp_timeout_established": IDLE_LONG}
    )[0]
    share = 100.0 * row.expired / entries
    evidence.append(
        f"{row.expired:,} of {entries:,} entries ({share:.1f} %) are ESTABLISHED flows idle"
        f" for over {IDLE_LONG // 3600} h"
    )
    if share < limits.established_usage:
        return passed(
            f"long, but idle ESTABLISHED flows are {share:.1f} % of the table"
            f" (warning from {limits.established_usage:g} %)",
            evidence,
        )
    return None


def _usage_proxy(facts: Facts, limits: Thresholds, evidence: list[str]) -> Outcome | None:
    """Without the table: a long timeout matters once the table fills."""
    count, maximum = table_count(facts), runtime(facts, "nf_conntrack_max")
    if maximum == 0:
        return skipped("the table is unlimited (CT106): no usage to weigh the timeout against")
    if count is None or maximum is None:
        return skipped("table usage unknown: cannot tell whether idle entries crowd it")
    pct = 100.0 * count / maximum
    evidence.append(f"table {pct:.1f} % full (no table read: usage stands in for idle flows)")
    if pct < limits.established_usage:
        return passed(
            f"long, but the table is only {pct:.1f} % full"
            f" (warning from {limits.established_usage:g} %)",
            evidence,
        )
    return None


@rule("CT401")
def long_established_timeout(facts: Facts, limits: Thresholds) -> Outcome:
    timeout = runtime(facts, "nf_conntrack_tcp_timeout_established")
    if timeout is None:
        return skipped("nf_conntrack_tcp_timeout_established not readable")
    evidence = [f"nf_conntrack_tcp_timeout_established = {timeout} s ({timeout / 3600:g} h)"]
    if timeout <= limits.established_timeout:
        return passed(f"{timeout} s", evidence)
    if isinstance(facts.table, TableFacts):
        verdict = _idle_share(facts.table, timeout, limits, evidence)
    else:
        verdict = _usage_proxy(facts, limits, evidence)
    if verdict is not None:
        return verdict
    nat = isinstance(facts.ruleset, Ruleset) and bool(nat_rules(facts.ruleset))
    floor = NAT_MIN_ESTABLISHED if nat else 3600
    if nat:
        evidence.append("NAT rules present: keep it >= 7440 s (RFC 5382)")
    command = f"sysctl -w net.netfilter.nf_conntrack_tcp_timeout_established={floor}"
    persist = f"and persist it in {persist_file(facts)}."
    if facts.netns:
        # sysctl files configure the initial namespace only: set it inside this one
        command = f"ip netns exec {facts.netns} {command}"
        persist = "and set it wherever this namespace is created (container runtime, pod sysctls)."
    fix = (
        "Idle established flows hold entries for days. Shorten it (look at what the table"
        f" holds first):\n{WHAT_FILLS}\n{command}\n{persist}"
    )
    return found(Severity.WARNING, evidence, fix)
