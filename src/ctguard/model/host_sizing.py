"""The one sizing policy for a host: what ``plan`` writes and what every fix text quotes.

``host_sizing(facts)`` turns the facts into ``size_table``'s input (memory, entry cost, the
peak seen, today's and the configured values). CT101-CT106 and CT201 name these numbers in
their fixes; ``plan`` writes them; a test checks that they agree on every fixture root.
"""

from __future__ import annotations

from ctguard.facts import Facts
from ctguard.missing import Missing
from ctguard.model.sizing import DEFAULT_BUDGET_PCT, Sizing, SizingInput, entry_cost, size_table
from ctguard.model.thresholds import Thresholds
from ctguard.model.values import configured, runtime
from ctguard.sources.meminfo import Meminfo
from ctguard.sources.stats import ConntrackStats

MAX = "nf_conntrack_max"
BUCKETS = "nf_conntrack_buckets"


def peak(facts: Facts) -> tuple[int, str]:
    """The most entries seen, and where: the count now, the stat file, or the table read.

    Drops (CT102) say the table was full once, at whatever max it had then: the counters
    outlive any change, so they cannot size it (a plan must be a fixpoint)."""
    seen: list[tuple[int, str]] = []
    count = runtime(facts, "nf_conntrack_count")
    if count is not None:
        seen.append((count, "nf_conntrack_count now"))
    if isinstance(facts.stats, ConntrackStats) and facts.stats.entries is not None:
        seen.append((facts.stats.entries, "stat entries"))
    if not isinstance(facts.table, Missing):
        seen.append((facts.table.summary.entries, "entries in the table read"))
    return max(seen, default=(0, "no count readable"))


def configured_max(facts: Facts) -> int | None:
    setting = configured(facts.sysctl_config).get(MAX)
    return setting.value if setting is not None else None


def host_sizing(
    facts: Facts,
    target_max: int | None = None,
    budget_pct: float = DEFAULT_BUDGET_PCT,
    force: bool = False,
    limits: Thresholds | None = None,
) -> Sizing | Missing:
    """The max and buckets this host should have, each with its reason and memory cost."""
    mem = facts.meminfo
    if not isinstance(mem, Meminfo):
        return Missing(f"memory unknown ({mem.reason}): the max is not sized")
    most, source = peak(facts)
    return size_table(
        SizingInput(
            mem_total=mem.mem_total,
            mem_available=mem.mem_available,
            cost=entry_cost(facts.slab, facts.kernel, facts.sysctls),
            kernel=facts.kernel,
            current_max=runtime(facts, MAX),
            current_buckets=runtime(facts, BUCKETS),
            peak=most,
            peak_source=source,
            target_max=target_max,
            budget_pct=budget_pct,
            force=force,
            configured_max=configured_max(facts),
            limits=limits or Thresholds(),
        )
    )
