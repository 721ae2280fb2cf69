"""CT201: a max whose table the machine's memory cannot hold (docs/design.md §7, §8)."""

from __future__ import annotations

from ctguard.facts import Facts
from ctguard.findings import Severity
from ctguard.missing import Missing
from ctguard.model.host_sizing import host_sizing
from ctguard.model.sizing import Sizing, entry_cost, judge_max
from ctguard.model.thresholds import Thresholds
from ctguard.model.units import human_bytes
from ctguard.model.values import configured, runtime
from ctguard.rules import Outcome, found, passed, rule, skipped
from ctguard.rules.remedies import persist_file
from ctguard.sources.meminfo import Meminfo


@rule("CT201")
def max_unsafe_for_memory(facts: Facts, limits: Thresholds) -> Outcome:
    mem = facts.meminfo
    if not isinstance(mem, Meminfo):
        return skipped(f"memory unknown: {mem.reason}")
    cost = entry_cost(facts.slab, facts.kernel, facts.sysctls)
    buckets = runtime(facts, "nf_conntrack_buckets") or 0
    candidates: list[tuple[str, int]] = []
    live_max = runtime(facts, "nf_conntrack_max")
    if live_max is not None:
        candidates.append((f"runtime nf_conntrack_max = {live_max}", live_max))
    setting = configured(facts.sysctl_config).get("nf_conntrack_max")
    if setting is not None and setting.value is not None and setting.value != live_max:
        candidates.append((f"configured for boot: {setting.quoted}", setting.value))
    if not candidates:
        why = facts.sysctls.reason if isinstance(facts.sysctls, Missing) else "not set"
        return skipped(f"no nf_conntrack_max at runtime or in sysctl files ({why})")
    evidence: list[str] = []
    worst = Severity.OK
    unsafe_live = False
    flagged: list[int] = []
    for label, value in candidates:
        if value == 0:
            evidence.append(f"{label}: unlimited (CT106)")
            continue
        judged = judge_max(value, buckets, cost, mem.mem_total, mem.mem_available, limits)
        evidence.append(
            f"{label}: a full table takes {human_bytes(judged.bytes)} ({judged.pct:.2f} % of"
            f" MemTotal {human_bytes(mem.mem_total)}) at {cost.bytes} B per entry ({cost.source})"
            + (f" + {buckets} buckets x 8 B" if buckets else "")
        )
        if judged.over_available:
            evidence.append(f"that is more than MemAvailable ({human_bytes(mem.mem_available)})")
        if not judged.acceptable:
            flagged.append(value)
            unsafe_live = unsafe_live or value == live_max
        worst = max(worst, judged.severity, key=lambda s: s.rank)
    if worst is Severity.OK:
        if all(value == 0 for _, value in candidates):
            return passed("nf_conntrack_max is 0 (unlimited): see CT106", evidence)
        return passed(f"below {limits.memory_warning:g} % of MemTotal", evidence)
    evidence.append(
        "entries are GFP_ATOMIC and not charged to any cgroup: a full table can OOM the"
        " machine (and reboot it where panic_on_oom is set)"
    )
    where_set = persist_file(facts)
    sizing = host_sizing(facts, limits=limits)
    if not isinstance(sizing, Sizing):
        return found(worst, evidence, sizing.reason)
    safe, buckets_to = sizing.max.value, sizing.buckets
    if safe >= min(flagged):  # the peak needs it: lowering would drop new flows
        return found(
            worst,
            evidence,
            f"Keep nf_conntrack_max at {safe} ({sizing.max.reason}): make the table hold fewer"
            " entries instead: shorten timeouts (CT401/CT402) or NOTRACK the busiest port"
            " ('ctguard analyze' names candidates).",
        )
    then = f"; a full table then takes {sizing.table_pct:.2f} % of MemTotal"
    then = "" if safe == live_max else then
    lines = [f"Lower the max to {safe} ({sizing.max.reason}{then}):"]
    count = runtime(facts, "nf_conntrack_count")
    if unsafe_live and count is not None and count >= safe:
        lines.append(
            f"now: the table holds {count} entries; lower the running value only once it holds"
            f" fewer than {safe}, or new flows are dropped (shorten timeouts first, CT401/CT402)"
        )
    elif unsafe_live:
        lines.append(f"sysctl -w net.netfilter.nf_conntrack_max={safe}")
    lines.append(f"in {where_set}: net.netfilter.nf_conntrack_max = {safe}")
    if buckets_to.changes:
        lines.append(
            f"and set the buckets to {buckets_to.value}, {buckets_to.reason}"
            " (CT105; persistent: CT303)"
        )
    lines.append(
        "If the peak needs more, NOTRACK hot ports or shorten timeouts instead"
        " (ctguard plan sizes it from the peak and a memory budget)."
    )
    return found(worst, evidence, "\n".join(lines))
