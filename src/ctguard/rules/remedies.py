"""Fix text several rules share: concrete commands that work today, sized for this host.

Commands of later ctguard releases are named only as "(coming: ...)"; the manual fix
always comes first and is complete on its own.
"""

from __future__ import annotations

from ctguard.facts import Facts
from ctguard.model.sizing import entry_cost, kernel_buckets, largest_safe_max, table_bytes
from ctguard.model.units import human_bytes
from ctguard.model.values import configured, runtime, table_count
from ctguard.sources.kernel import KernelVersion
from ctguard.sources.meminfo import Meminfo

SAFE_BUDGET_PCT = 5.0  # design §8: the default memory budget of a plan
SYSCTL_DROPIN = "/etc/sysctl.d/90-conntrack.conf"
WHAT_FILLS = "ctguard analyze --by dport,state,timeout   # what fills the table, in one pass"


def persist_file(facts: Facts) -> str:
    """Where to persist a conntrack value: the file that already sets the max (or another
    conntrack key), so it is one the host applies at boot; else a drop-in."""
    settings = configured(facts.sysctl_config)
    setting = settings.get("nf_conntrack_max") or next(iter(settings.values()), None)
    return setting.assignment.path if setting is not None else SYSCTL_DROPIN


def buckets_command(facts: Facts, buckets: int) -> str:
    """Resize the hash table now: the sysctl is writable since 4.7, the parameter before."""
    kernel = facts.kernel
    if isinstance(kernel, KernelVersion) and not kernel.at_least(4, 7):
        return f"echo {buckets} > /sys/module/nf_conntrack/parameters/hashsize"
    return f"sysctl -w net.netfilter.nf_conntrack_buckets={buckets}"


def safe_max(facts: Facts, buckets: int) -> int | None:
    """The largest power-of-two max whose full table fits the default memory budget."""
    if not isinstance(facts.meminfo, Meminfo):
        return None
    cost = entry_cost(facts.slab, facts.kernel, facts.sysctls)
    return largest_safe_max(facts.meminfo.mem_total, buckets, cost, SAFE_BUDGET_PCT)


def raise_max_lines(facts: Facts) -> list[str]:
    """Commands that give a full table room (twice today's entries) within the budget."""
    count, buckets = table_count(facts) or 0, runtime(facts, "nf_conntrack_buckets") or 0
    want = 1 << max(16, (2 * count - 1).bit_length())
    maximum = runtime(facts, "nf_conntrack_max")
    if maximum is not None and maximum >= want:
        return [
            f"nf_conntrack_max ({maximum}) already leaves room for twice today's {count}"
            " entries: the drops came before it was raised, or in a burst; keep it within"
            " memory (CT201)"
        ]
    safe = safe_max(facts, kernel_buckets(want // 4))
    if safe is None:
        return [f"size the max from memory first (MemTotal unknown), e.g. {want}"]
    if want > safe:
        need = table_bytes(want, want // 4, entry_cost(facts.slab, facts.kernel, facts.sysctls))
        return [
            f"room for twice today's {count} entries ({want}) needs {human_bytes(need)}, more"
            f" than {SAFE_BUDGET_PCT:g} % of memory: shorten timeouts or NOTRACK the busiest"
            " port instead of a bigger table"
        ]
    lines = [f"sysctl -w net.netfilter.nf_conntrack_max={want}"]
    if want > 4 * buckets:
        lines.append(buckets_command(facts, kernel_buckets(want // 4)))
    lines.append(
        f"persist: net.netfilter.nf_conntrack_max = {want} in {persist_file(facts)}"
        " (and see CT302-CT304 so it survives module reloads; or: ctguard plan, ctguard apply)"
    )
    return lines
