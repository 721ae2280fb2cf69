"""Fix text several rules share: concrete commands that work today, sized for this host.

Commands of later ctguard releases are named only as "(coming: ...)"; the manual fix
always comes first and is complete on its own.
"""

from __future__ import annotations

from ctguard.facts import Facts
from ctguard.missing import Missing
from ctguard.model.host_sizing import MAX, host_sizing, peak
from ctguard.model.values import configured, runtime
from ctguard.sources.kernel import KernelVersion

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


def raise_max_lines(facts: Facts) -> list[str]:
    """Commands that give a full table room: the max (and buckets) ``plan`` would write."""
    sizing = host_sizing(facts)
    if isinstance(sizing, Missing):
        return [f"{sizing.reason}: size it by hand, about twice the peak, within memory (CT201)"]
    target, maximum = sizing.max.value, runtime(facts, MAX)
    if maximum is not None and target <= maximum:
        most, source = peak(facts)
        if 2 * most > maximum:  # the memory budget, not the load, caps the max
            lower = (
                f" Today's {maximum} is more than memory holds (CT201): lower it only once"
                f" fewer than {target} entries are tracked."
                if target < maximum
                else ""
            )
            return [*sizing.notes, *([lower.strip()] if lower else [])]
        room = f"nf_conntrack_max ({maximum}) already leaves room for twice the most entries"
        room += f" seen ({most}, {source})"
        if target < maximum:
            return [f"{room}, but more than memory holds: lower it to {target} (CT201)"]
        return [f"{room}: any drops came before it was raised, or in a burst"]
    lines = [f"sysctl -w net.netfilter.nf_conntrack_max={target}"]
    buckets = sizing.buckets
    if buckets.value > (buckets.current or 0):
        lines.append(buckets_command(facts, buckets.value))
    lines.append(
        f"persist: net.netfilter.nf_conntrack_max = {target} in {persist_file(facts)}"
        " (and see CT302-CT304 so it survives module reloads; or: ctguard plan, ctguard apply)"
    )
    lines += sizing.notes
    return lines
