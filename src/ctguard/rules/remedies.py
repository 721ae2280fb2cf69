"""Fix text several rules share: concrete commands that work today, sized for this host.

Commands of later ctguard releases are named only as "(coming: ...)"; the manual fix
always comes first and is complete on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath

from ctguard.facts import Facts
from ctguard.missing import Missing
from ctguard.model.host_sizing import MAX, host_sizing, peak
from ctguard.model.rhel_iptables import restart_greps
from ctguard.model.sizing import buckets_writable
from ctguard.model.sysctl_files import DROPIN_NAMES, SYSCTL_D, choose_placement
from ctguard.model.thresholds import Thresholds
from ctguard.model.values import runtime
from ctguard.sources.iptables_service import IptablesService
from ctguard.sources.sysctl_conf import SYSCTL_CONF, runtime_name

WHAT_FILLS = "ctguard analyze --by dport,state,timeout   # what fills the table, in one pass"


def persist_file(facts: Facts, names: tuple[str, ...] = ("nf_conntrack_max",)) -> str:
    """Where to persist conntrack values so they win at boot: the file ``plan`` would write
    (a drop-in that sorts last, or ctguard's block in /etc/sysctl.conf when that is read
    last and sets them)."""
    config = facts.sysctl_config
    if isinstance(config, Missing):
        return f"{SYSCTL_D}/{DROPIN_NAMES[0]}"
    ours = frozenset(p for p in config.files if PurePosixPath(p).name in DROPIN_NAMES)
    service = facts.iptables_service
    grepped = restart_greps(service.complete if isinstance(service, IptablesService) else None)
    # sysctl.conf's own values, kept: where plan repeats them when the init script does
    # not grep sysctl.conf (model/sysctl_files._agrees_unread)
    conf = {
        name: int(a.value.strip())
        for a in config.assignments
        if a.path == SYSCTL_CONF and (name := runtime_name(a.key)) in names
        and a.value.strip().isdigit()
    }  # fmt: skip
    kept: Mapping[str, int] | tuple[str, ...] = conf if set(conf) == set(names) else names
    return choose_placement(config, kept, ours, None, grepped).path


def buckets_command(facts: Facts, buckets: int) -> str:
    """Resize the hash table now: the sysctl is writable since 4.7, the parameter before."""
    if not buckets_writable(facts.kernel):
        return f"echo {buckets} > /sys/module/nf_conntrack/parameters/hashsize"
    return f"sysctl -w net.netfilter.nf_conntrack_buckets={buckets}"


def raise_max_lines(facts: Facts, limits: Thresholds) -> list[str]:
    """Commands that give a full table room: the max (and buckets) ``plan`` would write."""
    sizing = host_sizing(facts, limits=limits)
    if isinstance(sizing, Missing):
        return [f"{sizing.reason}: size it by hand, about twice the peak, within memory (CT201)"]
    target, maximum = sizing.max.value, runtime(facts, MAX)
    if maximum is not None and target <= maximum:
        most, source = peak(facts)
        if 2 * most > maximum and target < maximum:  # memory, not the load, caps the max
            return [
                *sizing.notes,
                f"Today's {maximum} is more than memory holds (CT201): lower it only once"
                f" fewer than {target} entries are tracked.",
            ]
        if 2 * most > maximum:  # doctor accepts today's max: plan keeps it (CT101)
            used = 100.0 * most / maximum
            return [
                f"nf_conntrack_max ({maximum}) stays: the most entries seen ({most}, {source})"
                f" fill {used:.0f} % of it, below CT101's warning; if drops go on, shorten the"
                " timeouts of what fills it (CT401/CT402) rather than raise it"
            ]
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
