"""Keys an agent writes at runtime (CT306): kube-proxy, tuned. A file ctguard wrote would
lose to the agent, so the plan leaves such a key to it and says which knob to set there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ctguard.facts import Facts
from ctguard.missing import Missing
from ctguard.model.boot_hashsize import tuned_fix, tuned_knob, tuned_owned
from ctguard.model.host_sizing import BUCKETS, MAX
from ctguard.remediation.changes import Note
from ctguard.remediation.host_settings import Want
from ctguard.sources.stats import ConntrackStats
from ctguard.sources.sysctl_conf import runtime_name


def agent_owners(facts: Facts) -> dict[str, str]:
    """Runtime name -> the agent that writes it at runtime."""
    owners: dict[str, str] = {}
    kube = facts.kube_proxy
    if kube is not None:
        for key in kube.managed_keys():
            name = runtime_name(key)
            if name is not None:
                owners[name] = "kube-proxy"
    if not isinstance(facts.tuned, Missing):
        # [sysctl], [net] and [modules] alike: tuned persists them, so a different value
        # belongs in the profile (a [sysctl] key a system file already beats is the file's)
        for name in tuned_owned(facts):
            owners.setdefault(name, f"tuned profile {facts.tuned.name}")
    if owners.get(MAX) == "kube-proxy":  # it sets hashsize = max / 4 too
        owners.setdefault(BUCKETS, "kube-proxy")
    return owners


def agent_notes(
    facts: Facts,
    owners: Mapping[str, str],
    wants: Mapping[str, Want],
    runtime: Mapping[str, int],
) -> list[Note]:
    """What to set in each agent for the wanted values it owns that differ now."""
    notes: list[Note] = []
    kube = facts.kube_proxy
    for name, agent in sorted(owners.items()):
        want = wants.get(name)
        if want is None or runtime.get(name) == want.value:
            continue
        if name == BUCKETS and agent == "kube-proxy":
            continue  # kube-proxy derives it from the max
        if agent == "kube-proxy" and kube is not None:
            value = _kube_value(facts, name, want.value)
            knob = kube.flag_for(f"net.netfilter.{name}")
            text = f"{name}: kube-proxy sets it: set {knob}={value} ({want.why})"
        elif not isinstance(facts.tuned, Missing) and agent.startswith("tuned"):
            lines = tuned_owned(facts).get(name, [])
            text = (
                f"{name}: {agent} sets it: set {tuned_knob(name)}={want.value} ({want.why})\n"
                + tuned_fix(facts.tuned, lines)
            )
        else:
            text = f"{name}: {agent} sets it: set {want.value} there ({want.why})"
        notes.append(Note(text, ("CT306",)))
    return notes


def _kube_value(facts: Facts, name: str, value: int) -> str:
    """The value in kube-proxy's terms: the max per CPU, a timeout in seconds."""
    if name == MAX:
        stats = facts.stats
        cpus = stats.cpus if isinstance(stats, ConntrackStats) and stats.cpus else None
        if cpus:
            return f"{math.ceil(value / cpus)} (x {cpus} CPUs = {value})"
        return f"{value} / number of CPUs"
    return f"{value}s"
