"""``build_plan(facts, ...) -> Plan``: pure. What to set, why, and the files that keep it.

The plan takes the values of the one sizing policy (model/host_sizing.py), then places them
where they survive a reboot, a module reload and a firewall restart on *this* host
(docs/design.md §7, §8): a winning sysctl.d drop-in (or a block in a sysctl.conf that is
read last), a udev rule that re-applies them when nf_conntrack loads, ``options
nf_conntrack hashsize=`` for a modular conntrack, the RHEL iptables service's load list,
and the stock NF_MODULES_COMMON line. Keys an agent owns (kube-proxy, tuned) are not
written: the plan says which knob of the agent to set.

A plan is a fixpoint: applied, the same host plans nothing (``apply`` is idempotent).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from ctguard.errors import OptionError
from ctguard.facts import Facts
from ctguard.missing import Missing
from ctguard.model.composition import dominant_kinds
from ctguard.model.evidence import Treated, split_claims
from ctguard.model.firewall import nat_rules
from ctguard.model.host_sizing import BUCKETS, MAX, host_sizing
from ctguard.model.sizing import (
    DEFAULT_BUDGET_PCT,
    Sizing,
    SizingTarget,
    TimeoutNeed,
    entry_cost,
    size_timeouts,
)
from ctguard.model.thresholds import Thresholds
from ctguard.remediation.changes import PER_NETNS, Note, SetSysctl, WriteFile
from ctguard.remediation.host_changes import host_changes
from ctguard.remediation.host_settings import FileReader, Want
from ctguard.sources.meminfo import Meminfo
from ctguard.sources.ruleset import Ruleset
from ctguard.sources.sysctl_runtime import GLOBAL_KEYS, NETFILTER_DIR, ConntrackSysctls
from ctguard.table.whatif import current_timeouts, what_if

ESTABLISHED = "tcp_timeout_established"


@dataclass(frozen=True)
class PlanOptions:
    target_max: int | None = None
    budget_pct: float = DEFAULT_BUDGET_PCT
    established_timeout: int | None = None
    timeouts: Mapping[str, int] = field(default_factory=dict)  # short name -> seconds
    force: bool = False


@dataclass(frozen=True)
class Plan:
    netns: str | None
    sizing: Sizing | Missing
    timeouts: tuple[SizingTarget, ...]
    files: tuple[WriteFile, ...]
    sysctls: tuple[SetSysctl, ...]
    notes: tuple[Note, ...]
    conflicts: tuple[str, ...]  # other files' lines left alone, and why they do not matter
    addresses: tuple[str, ...]  # finding IDs found now that the next doctor no longer finds
    refusal: str | None  # set: refused unless --force
    forced: bool = False
    # found now, their cause removed, their evidence (counters, log, entries) clears later
    treats: tuple[Treated, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.files and not self.sysctls

    @property
    def refused(self) -> bool:
        return self.refusal is not None and not self.forced


# -- inputs -------------------------------------------------------------------------------
def _runtime(facts: Facts) -> dict[str, int]:
    return dict(facts.sysctls.values) if isinstance(facts.sysctls, ConntrackSysctls) else {}


def _nat(facts: Facts) -> bool:
    return isinstance(facts.ruleset, Ruleset) and bool(nat_rules(facts.ruleset))


def _timeout_needs(facts: Facts, found: Collection[str], limits: Thresholds) -> list[TimeoutNeed]:
    """What the table shows dominating: idle established flows (CT401), or one kind of
    short-lived entry (CT402)."""
    needs: list[TimeoutNeed] = []
    if "CT401" in found:
        needs.append(TimeoutNeed(ESTABLISHED, 0, "idle ESTABLISHED flows fill the table (CT401)"))
    if "CT402" in found and not isinstance(facts.table, Missing):
        table = facts.table
        current = current_timeouts(_runtime(facts))
        for kind, count, share in dominant_kinds(table.summary, limits.composition_share):
            row = what_if(table.tally, current, {kind.timeout: kind.proposed})[0]
            why = f"{kind.label} is {share:.0f} % of the table, {count:,} entries (CT402)"
            needs.append(TimeoutNeed(kind.timeout, kind.proposed, why, row.expired))
    return needs


# -- the plan -----------------------------------------------------------------------------
def build_plan(
    facts: Facts,
    options: PlanOptions,
    read: FileReader,
    found: Collection[str],
    limits: Thresholds | None = None,
) -> Plan:
    """Everything to change on this host (or namespace), with the reason for each change.

    ``found``: IDs the doctor found on these facts; ``read``: current bytes of the files
    the plan edits (the only host access, done by the caller through HostRoot)."""
    limits = limits or Thresholds()
    runtime = _runtime(facts)
    sizing = host_sizing(facts, options.target_max, options.budget_pct, options.force, limits)
    cost = entry_cost(facts.slab, facts.kernel, facts.sysctls)
    mem_total = facts.meminfo.mem_total if isinstance(facts.meminfo, Meminfo) else 0
    short = current_timeouts(runtime)
    timeouts = size_timeouts(
        short,
        _timeout_needs(facts, found, limits),
        cost,
        mem_total,
        _nat(facts),
        options.established_timeout,
    )
    wants: dict[str, Want] = {}
    for target in timeouts:
        ids = {"CT401"} if target.name.endswith(ESTABLISHED) else {"CT402"}
        wants[target.name] = Want(target.value, target.reason, ids)
    for name, value in options.timeouts.items():
        if short and name not in short:  # the host lists its timeouts: this is none of them
            raise OptionError(
                "--timeout",
                f"the host has no timeout named {name!r}"
                " ('sysctl -a --pattern nf_conntrack_.*timeout' lists them)",
            )
        full = f"nf_conntrack_{name}"
        wants[full] = Want(value, "--timeout")
        timeouts = [t for t in timeouts if t.name != full]
        timeouts.append(SizingTarget(full, short.get(name), value, "--timeout"))
    notes: list[Note] = []
    refusal = sizing.refusal if isinstance(sizing, Sizing) else None
    if facts.netns is not None:
        return _namespace_plan(
            facts, options, sizing, tuple(timeouts), wants, runtime, refusal, limits
        )
    if isinstance(sizing, Sizing):
        wants[MAX] = Want(sizing.max.value, sizing.max.reason, {"CT201", "CT106"})
        wants[BUCKETS] = Want(sizing.buckets.value, sizing.buckets.reason, {"CT105", "CT303"})
        notes += [Note(text) for text in sizing.notes]
    else:
        notes.append(Note(sizing.reason))
    if "CT102" in found:
        notes.append(
            Note(
                "packets were dropped when the table was full (CT102): the size above is from"
                " today's count; if the table held more when it overflowed, give --target-max"
            )
        )
    changes = host_changes(facts, read, runtime, wants, found)
    fixed, treated = split_claims(changes.addressed & set(found), facts, limits)
    return Plan(
        netns=None,
        sizing=sizing,
        timeouts=tuple(timeouts),
        files=changes.files,
        sysctls=changes.sysctls,
        notes=(*notes, *changes.notes),
        conflicts=changes.conflicts,
        addresses=fixed,
        refusal=refusal,
        forced=options.force,
        treats=treated,
    )


def _namespace_plan(
    facts: Facts,
    options: PlanOptions,
    sizing: Sizing | Missing,
    timeouts: tuple[SizingTarget, ...],
    wants: Mapping[str, Want],
    runtime: Mapping[str, int],
    refusal: str | None,
    limits: Thresholds,
) -> Plan:
    """Inside a namespace only its own values can be set, and only at runtime: sysctl
    files configure the initial namespace (a container runtime sets a pod's)."""
    changes = [
        SetSysctl(
            name,
            f"{NETFILTER_DIR}/{name}",
            runtime.get(name),
            want.value,
            PER_NETNS,
            want.why,
            addresses=tuple(sorted(want.ids)),
        )
        for name, want in sorted(wants.items())
        if name in runtime and runtime[name] != want.value and name not in GLOBAL_KEYS
    ]
    changing = [
        name
        for name in (MAX, BUCKETS)
        if isinstance(sizing, Sizing) and (sizing.max if name == MAX else sizing.buckets).changes
    ]
    notes = [
        Note(f"{name} is global: set from the initial namespace ('ctguard plan' without --netns)")
        for name in changing
    ]
    if not changing:
        notes.append(
            Note(
                "nf_conntrack_max and nf_conntrack_buckets are global: set from the initial"
                " namespace ('ctguard plan' without --netns)"
            )
        )
    notes.append(
        Note(
            f"namespace {facts.netns}: values set now last until the namespace goes; set them"
            " where it is created too (container runtime, pod sysctls)"
        )
    )
    addressed = {i for change in changes for i in change.addresses}
    fixed, treated = split_claims(addressed, facts, limits)
    return Plan(
        facts.netns,
        sizing,
        timeouts,
        (),
        tuple(changes),
        tuple(notes),
        (),
        fixed,
        refusal,
        options.force,
        treated,
    )
