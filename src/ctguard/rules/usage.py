"""CT101-CT106: how full the table is and what the kernel counted dropping."""

from __future__ import annotations

from ctguard.facts import INIT_NETNS_INODE, Facts
from ctguard.findings import Severity
from ctguard.missing import Missing
from ctguard.model.evidence import unchanged_since_apply
from ctguard.model.host_sizing import host_sizing
from ctguard.model.sizing import Sizing, buckets_for, default_max, usage_severity
from ctguard.model.thresholds import Thresholds
from ctguard.model.values import counter, runtime, table_count, where
from ctguard.rules import Outcome, found, passed, rule, skipped
from ctguard.rules.remedies import (
    WHAT_FILLS,
    buckets_command,
    persist_file,
    raise_max_lines,
)
from ctguard.sources.kernel import KernelVersion
from ctguard.sources.kernel_log import LogHit, TableFullLog

NOT_LOADED = "nf_conntrack is not loaded: there is no table"


def _usage(facts: Facts) -> tuple[int, int] | str:
    count, maximum = table_count(facts), runtime(facts, "nf_conntrack_max")
    if count is None or maximum is None:
        missing = facts.sysctls.reason if isinstance(facts.sysctls, Missing) else "no value"
        return f"nf_conntrack_count/max not readable ({missing})"
    return count, maximum


@rule("CT101")
def table_usage(facts: Facts, limits: Thresholds) -> Outcome:
    if not facts.presence.loaded:
        return skipped(NOT_LOADED)
    usage = _usage(facts)
    if isinstance(usage, str):
        return skipped(usage)
    count, maximum = usage
    if maximum == 0:
        return passed("nf_conntrack_max is 0 (unlimited): see CT106")
    pct = 100.0 * count / maximum
    scope = f" in namespace {facts.netns} (the max is global)" if facts.netns else ""
    evidence = [
        f"nf_conntrack_count = {count}, nf_conntrack_max = {maximum}: {pct:.1f} % used{scope}"
    ]
    severity = usage_severity(count, maximum, limits)
    if severity is Severity.OK:
        return passed(f"{pct:.1f} % used (warning at {limits.usage_warning:g} %)", evidence)
    fix = "\n".join([WHAT_FILLS, *raise_max_lines(facts, limits)])
    return found(severity, evidence, fix)


def _our_log_keys(facts: Facts) -> tuple[int | None, ...]:
    """Kernel-log namespace keys that are this namespace's lines."""
    if facts.netns is None and facts.netns_inode in (None, INIT_NETNS_INODE):
        # the initial namespace logs "table full" without a namespace (older kernels name
        # none for any namespace, so those lines may be a container's)
        return (None, INIT_NETNS_INODE)
    return (facts.netns_inode,) if facts.netns_inode is not None else ()


def _log_evidence(facts: Facts) -> tuple[list[str], int, bool, list[str]]:
    """(evidence lines, our line count, seen in this boot's dmesg, unread sources)."""
    keys = _our_log_keys(facts)
    evidence: list[str] = []
    unread: list[str] = []
    total, in_dmesg = 0, False
    for log in facts.kernel_logs:
        if isinstance(log, Missing):
            unread.append(log.reason)
            continue
        ours = sum(n for k, n in log.by_netns.items() if k in keys)
        others = sum(n for k, n in log.by_netns.items() if k not in keys)
        if ours:
            last: LogHit = max((log.last[k] for k in keys if k in log.last), key=lambda h: h.line)
            cut = " (tail of the file read)" if log.truncated else ""
            evidence.append(f"{log.source}: {ours} 'table full' lines{cut}, last: {last.text}")
            total += ours
            in_dmesg = in_dmesg or log.source == "dmesg"
        if others:
            evidence.append(f"{log.source}: {others} more lines belong to other namespaces")
    return evidence, total, in_dmesg, unread


def _table_full_drops(facts: Facts, drop: int) -> tuple[int, str]:
    """Drops for a full table, and the counters the figure came from.

    Since 4.6 (clash resolution, nf_ct_resolve_clash) an unresolved clash counts in both
    ``drop`` and ``insert_failed``, and since 5.15 a chain-too-long insert counts in
    ``insert_failed`` and ``chaintoolong`` but not ``drop``: so table-full drops =
    drop - (insert_failed - chaintoolong). Before 4.6 a clash never counted ``drop``, so
    ``drop`` is taken as it is (the kernel log line confirms it).
    """
    failed = counter(facts, "insert_failed")
    kernel = facts.kernel
    clashes_drop = counter(facts, "clash_resolve") is not None or (
        isinstance(kernel, KernelVersion) and kernel.at_least(4, 6)
    )
    if failed is None or not clashes_drop:
        return drop, f"stat drop = {drop}"
    toolong = counter(facts, "chaintoolong") or 0
    clashes = max(0, failed - toolong)
    shown = f"stat drop = {drop} - (insert_failed {failed} - chaintoolong {toolong})"
    return max(0, drop - clashes), shown


@rule("CT102")
def table_full_drops(facts: Facts, limits: Thresholds) -> Outcome:
    drop = counter(facts, "drop")
    log_evidence, log_lines, in_dmesg, unread = _log_evidence(facts)
    read_logs = [log for log in facts.kernel_logs if isinstance(log, TableFullLog)]
    if drop is None and not read_logs:
        why = facts.stats.reason if isinstance(facts.stats, Missing) else "no drop counter"
        return skipped(f"no drop counter ({why}) and no kernel log readable")
    evidence: list[str] = []
    full_drops = 0
    if drop is not None:
        full_drops, shown = _table_full_drops(facts, drop)
        evidence.append(f"{shown}: {full_drops} packets dropped for a full table {where(facts)}")
    evidence += log_evidence
    if full_drops == 0 and log_lines == 0:
        evidence += [f"not read: {why}" for why in unread]
        counted = "counted or logged" if drop is not None else "logged (no drop counter)"
        return passed(f"no table-full drops {counted}", evidence)
    quiet = unchanged_since_apply(facts, "drop") if drop is not None else None
    if quiet:
        evidence += [quiet, *(f"not read: {why}" for why in unread)]
        return passed("no packet dropped since ctguard apply", evidence)
    severity = Severity.CRITICAL if full_drops or in_dmesg else Severity.WARNING
    if severity is Severity.WARNING:
        evidence.append("only older log files show it: it happened before, not since boot")
    evidence += [f"not read: {why}" for why in unread]
    fix = "\n".join(
        [
            "New connections fail while the table is full. Find what fills it, then size it:",
            WHAT_FILLS,
            *raise_max_lines(facts, limits),
        ]
    )
    return found(severity, evidence, fix)


def _loaded_counter(facts: Facts, name: str) -> int | Outcome:
    """A counter a rule needs, or the skip that says why it is not there."""
    if not facts.presence.loaded:
        return skipped(NOT_LOADED)
    value = counter(facts, name)
    if value is None:
        return skipped(f"no {name} counter: {getattr(facts.stats, 'reason', 'not read')}")
    return value


@rule("CT103")
def early_drops(facts: Facts, limits: Thresholds) -> Outcome:
    early = _loaded_counter(facts, "early_drop")
    if isinstance(early, Outcome):
        return early
    evidence = [f"stat early_drop = {early} {where(facts)}"]
    if early == 0:
        return passed("no entry was early-dropped", evidence)
    quiet = unchanged_since_apply(facts, "early_drop")
    if quiet:
        return passed("no entry early-dropped since ctguard apply", [*evidence, quiet])
    evidence.append(
        "the table was full of unassured entries (e.g. unreplied UDP): the kernel evicted them"
        " without logging"
    )
    fix = "\n".join(
        [
            "Shorten the timeouts of unassured flows, e.g.:",
            "sysctl -w net.netfilter.nf_conntrack_udp_timeout=10",
            f"(persist it in {persist_file(facts)}). The table's size:",
            *raise_max_lines(facts, limits),
        ]
    )
    return found(Severity.WARNING, evidence, fix)


@rule("CT104")
def insert_failures(facts: Facts, _limits: Thresholds) -> Outcome:
    failed = _loaded_counter(facts, "insert_failed")
    if isinstance(failed, Outcome):
        return failed
    toolong = counter(facts, "chaintoolong") or 0
    evidence = [f"stat insert_failed = {failed} {where(facts)}"]
    if toolong:
        evidence[0] += f", {toolong} of them because a hash chain was too long (CT105)"
    if failed - toolong <= 0:
        return passed("no insert failures from clashes", evidence)
    quiet = unchanged_since_apply(facts, "insert_failed")
    if quiet:
        return passed("no insert failure since ctguard apply", [*evidence, quiet])
    fix = (
        "Clashes are races between packets of one new flow (often DNS over UDP from"
        " containers: A and AAAA queries on one socket). See: ctguard explain CT104\n"
        "Workarounds: resolver option 'single-request-reopen', or a node-local DNS cache."
    )
    return found(Severity.INFO, evidence, fix)


@rule("CT105")
def long_chains(facts: Facts, limits: Thresholds) -> Outcome:
    if not facts.presence.loaded:
        return skipped(NOT_LOADED)
    maximum, buckets = runtime(facts, "nf_conntrack_max"), runtime(facts, "nf_conntrack_buckets")
    toolong = counter(facts, "chaintoolong")
    if not buckets or maximum is None:
        return skipped("nf_conntrack_max/buckets not readable")
    if maximum == 0 and not toolong:
        return passed("nf_conntrack_max is 0 (unlimited): see CT106")
    ratio = maximum / buckets
    evidence = [f"nf_conntrack_max / nf_conntrack_buckets = {maximum} / {buckets} = {ratio:.2f}"]
    if toolong:
        evidence.append(
            f"stat chaintoolong = {toolong}: inserts refused (and their packets dropped)"
            " because a hash chain grew too long"
        )
    if ratio <= limits.entries_per_bucket and not toolong:
        return passed(f"{ratio:.2f} entries per bucket at max", evidence)
    quiet = unchanged_since_apply(facts, "chaintoolong") if toolong else None
    if ratio <= limits.entries_per_bucket and quiet:
        return passed(
            f"{ratio:.2f} entries per bucket at max; no chain too long since ctguard apply",
            [*evidence, quiet],
        )
    return found(Severity.WARNING, evidence, _buckets_fix(facts, maximum, buckets, limits))


def _buckets_fix(facts: Facts, maximum: int, buckets: int, limits: Thresholds) -> str:
    """The buckets ``plan`` sizes for the max this host should have (CT201's, if lower)."""
    sizing = host_sizing(facts, limits=limits)
    if isinstance(sizing, Missing):  # memory unknown: the same ratio, for today's max
        target = buckets_for(maximum, facts.kernel)
        return (
            f"Raise the buckets for nf_conntrack_max {maximum}:\n"
            f"{buckets_command(facts, target)}\nand make it persistent (CT303)."
        )
    target, for_max = sizing.buckets.value, sizing.max.value
    lower = f"; first lower nf_conntrack_max to {for_max} (CT201)" if for_max < maximum else ""
    if target <= buckets:
        return (
            f"The buckets ({buckets}) already suit the max this host should have ({for_max}):"
            f" the ratio is long because the max is too high{lower}"
            if lower
            else f"The buckets ({buckets}) already suit nf_conntrack_max {for_max}; if"
            " chaintoolong keeps rising, see: ctguard explain CT105"
        )
    return (
        f"Raise the buckets to {target}, {sizing.buckets.reason}, for nf_conntrack_max"
        f" {for_max}{lower}:\n{buckets_command(facts, target)}\nand make it persistent (CT303)."
    )


@rule("CT106")
def unlimited_table(facts: Facts, limits: Thresholds) -> Outcome:
    if not facts.presence.loaded:
        return skipped(NOT_LOADED)
    maximum = runtime(facts, "nf_conntrack_max")
    if maximum is None:
        return skipped("nf_conntrack_max not readable")
    if maximum != 0:
        return passed(f"nf_conntrack_max = {maximum}")
    evidence = [
        "nf_conntrack_max = 0: entries are limited only by memory; they are allocated with"
        " GFP_ATOMIC and charged to no cgroup"
    ]
    sizing = host_sizing(facts, limits=limits)
    if isinstance(sizing, Sizing):
        limit, why = sizing.max.value, sizing.max.reason
    else:
        limit = default_max(None, facts.kernel)
        why = "memory unknown: what the kernel picks for 1 to 4 GiB of RAM"
    fix = (
        f"Bound it again ({why}):\n"
        f"sysctl -w net.netfilter.nf_conntrack_max={limit}\n"
        f"and find the file that sets 0 (grep -r nf_conntrack_max /etc/sysctl*)"
    )
    return found(Severity.CRITICAL, evidence, fix)
