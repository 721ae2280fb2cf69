"""CT601: counters read from somewhere other than procfs."""

from __future__ import annotations

from ctguard.facts import Facts
from ctguard.findings import Severity
from ctguard.missing import Missing
from ctguard.model.thresholds import Thresholds
from ctguard.rules import Outcome, found, passed, rule, skipped
from ctguard.sources.stats import STAT_FILE


@rule("CT601")
def counters_not_in_procfs(facts: Facts, _limits: Thresholds) -> Outcome:
    if not facts.presence.loaded:
        return skipped("nf_conntrack is not loaded")
    stats = facts.stats
    if isinstance(stats, Missing):
        return found(
            Severity.INFO,
            [f"no counters at all: {stats.reason}"],
            "Install conntrack-tools (conntrack -S) or enable CONFIG_NF_CONNTRACK_PROCFS.",
        )
    if stats.source == "procfs":
        return passed(f"{STAT_FILE} is readable")
    evidence = [f"counters read from {stats.source}: {stats.fallback_reason or 'procfs absent'}"]
    fix = (
        f"Nothing to fix for ctguard (it falls back to netlink). Tools that read {STAT_FILE}"
        " (node_exporter's conntrack stats, scripts) see nothing: use `conntrack -S`"
        " (coming: ctguard exporter), or build the kernel with CONFIG_NF_CONNTRACK_PROCFS=y."
    )
    return found(Severity.INFO, evidence, fix)
