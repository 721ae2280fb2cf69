"""Which findings rest on evidence that outlasts its cause: the one home of that judgement.

Most findings read the state now (a value, a file, a rule): once a fix is in place the
next ``doctor`` no longer finds them. Some read history instead, and stay found after
their cause is gone:

- a counter of ``/proc/net/stat/nf_conntrack`` (``drop``, ``early_drop``,
  ``insert_failed``, ``chaintoolong``) only counts up, from the moment the table was
  made (module load, boot, namespace creation), until it is made again;
- "table full" lines stay in the kernel log (dmesg until reboot, log files until rotated);
- entries already in the table keep the timeout they were given when last refreshed: a
  shorter timeout only applies to entries created or refreshed after it is set.

``plan`` lists such a finding, when it removes its cause, under "treats" with the reason
here, never under "addresses" (what the next doctor no longer finds). ``lasting_evidence``
answers for these facts: CT105 rests on history only while ``chaintoolong`` is above 0
(its bucket ratio is the state now).

``ctguard apply`` records the counters in its journal; ``unchanged_since_apply`` lets the
doctor tell "counted before the apply, none since" from "still happening". It never hides
a live count: a counter that rose is still found, and counters lower than recorded (the
table was made again: a module reload) void the record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from ctguard.facts import Facts
from ctguard.missing import Missing
from ctguard.model.composition import dominant_kinds
from ctguard.model.thresholds import Thresholds
from ctguard.model.values import counter, runtime
from ctguard.sources.stats import CounterBaseline

# Counters a finding rests on (their sums over CPUs): what apply records as a baseline.
HISTORY_COUNTERS = {
    "CT102": "drop",
    "CT103": "early_drop",
    "CT104": "insert_failed",
    "CT105": "chaintoolong",
}

_RERUN = "re-run doctor later"


def _counter_reason(name: str, facts: Facts) -> str:
    since = (
        f"until namespace {facts.netns} is made again"
        if facts.netns
        else "until nf_conntrack is loaded again (reboot, or a module reload)"
        if facts.presence.kind == "module"
        else "until reboot"
    )
    now = counter(facts, name)
    value = f"{name} = {now}" if now is not None else name
    return (
        f"{value} only counts up, {since}; apply records it, and doctor then passes it"
        " while it does not rise"
    )


def _table_reason(facts: Facts, limits: Thresholds) -> str:
    """How long the entries already in the table keep their old timeout."""
    kinds: list[str] = []
    if not isinstance(facts.table, Missing):
        for kind, _count, _share in dominant_kinds(facts.table.summary, limits.composition_share):
            now = runtime(facts, f"nf_conntrack_{kind.timeout}")
            kinds.append(kind.label + (f" ({now} s)" if now is not None else ""))
    which = f"{' and '.join(kinds)} entries" if kinds else "entries"
    return f"{which} already in the table keep the old timeout; they are gone within it: {_RERUN}"


def _when(taken: str) -> str:
    try:
        return datetime.fromisoformat(taken).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return taken


def unchanged_since_apply(facts: Facts, name: str) -> str | None:
    """The evidence line when counter ``name`` has not moved since the last ``ctguard
    apply`` recorded it (for the same table: boot, module load, namespace), else None: no
    record, the counter rose, or some counter is lower than recorded (reset since: the
    record says nothing)."""
    base = facts.baseline
    if not isinstance(base, CounterBaseline) or name not in base.counters:
        return None
    for recorded, then in base.counters.items():
        now = counter(facts, recorded)
        if now is None or now < then:
            return None
    value = base.counters[name]
    if counter(facts, name) != value:
        return None
    unchecked = (
        "" if base.same_table else "; that it is the same table was not checked (no boot id)"
    )
    return (
        f"stat {name} = {value}, unchanged since ctguard apply at {_when(base.taken)}"
        f" (journal {base.entry}): history from before it, none since{unchecked}"
    )


def lasting_evidence(rule_id: str, facts: Facts, limits: Thresholds | None = None) -> str | None:
    """Why finding ``rule_id`` stays found once its cause is removed (how and when its
    evidence clears), or None when it reads the state now and goes away with the fix."""
    if rule_id == "CT102":
        log = (
            "'table full' lines stay in the kernel log (dmesg until reboot, log files until"
            " rotated)"
        )
        if counter(facts, "drop") is None:
            return f"{log}: {_RERUN}"
        return f"{_counter_reason('drop', facts)}; {log}"
    if rule_id == "CT105" and not counter(facts, "chaintoolong"):
        return None  # the ratio max / buckets alone: the state now
    if rule_id in HISTORY_COUNTERS:
        return _counter_reason(HISTORY_COUNTERS[rule_id], facts)
    if rule_id == "CT402":
        return _table_reason(facts, limits or Thresholds())
    if rule_id == "CT505":
        return f"entries already in the table stay until their timeout ends: {_RERUN}"
    return None


@dataclass(frozen=True)
class Treated:
    """A finding whose cause a plan removes while its evidence stays for a while."""

    id: str
    why: str  # how and when the evidence clears


def split_claims(
    ids: Iterable[str], facts: Facts, limits: Thresholds | None = None
) -> tuple[tuple[str, ...], tuple[Treated, ...]]:
    """The IDs a fix works on, as (fixed: the next doctor no longer finds them, treated:
    their evidence clears later), each sorted; an ID is in one of them only."""
    fixed: list[str] = []
    treated: list[Treated] = []
    for rule_id in sorted(set(ids)):
        why = lasting_evidence(rule_id, facts, limits)
        if why is None:
            fixed.append(rule_id)
        else:
            treated.append(Treated(rule_id, why))
    return tuple(fixed), tuple(treated)
