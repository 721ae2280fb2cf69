"""Values several rules read the same way: table size, counters, configured conntrack keys."""

from __future__ import annotations

from dataclasses import dataclass

from ctguard.facts import Facts
from ctguard.missing import Missing
from ctguard.sources.kernel import KernelVersion
from ctguard.sources.modprobe_conf import ModprobeConfig
from ctguard.sources.stats import ConntrackStats
from ctguard.sources.sysctl_conf import SysctlAssignment, SysctlConfig, runtime_name
from ctguard.sources.sysctl_runtime import ConntrackSysctls


def runtime(facts: Facts, name: str) -> int | None:
    sysctls = facts.sysctls
    return sysctls.get(name) if isinstance(sysctls, ConntrackSysctls) else None


NF_CONNTRACK = "nf_conntrack"


def hooks_on_demand(facts: Facts) -> bool:
    """Since 4.10 ("netfilter: conntrack: register hooks in netns when needed by ruleset",
    nf_ct_netns_get) a namespace without a rule needing conntrack tracks nothing, so an
    idle (even built-in) conntrack costs nothing there."""
    kernel = facts.kernel
    return isinstance(kernel, KernelVersion) and kernel.at_least(4, 10)


def table_count(facts: Facts) -> int | None:
    """Entries now: the sysctl, else the stat file's global ``entries``."""
    count = runtime(facts, "nf_conntrack_count")
    if count is None and isinstance(facts.stats, ConntrackStats):
        count = facts.stats.entries
    return count


def counter(facts: Facts, name: str) -> int | None:
    return facts.stats.get(name) if isinstance(facts.stats, ConntrackStats) else None


def where(facts: Facts) -> str:
    """How the counters' period reads in evidence: they start with the table."""
    if facts.netns:
        return f"since namespace {facts.netns} was created"
    if facts.presence.kind == "module":
        return "since nf_conntrack was loaded"
    return "since boot"


@dataclass(frozen=True)
class Configured:
    """The last assignment of one runtime setting across all its key aliases."""

    name: str  # runtime file name, nf_conntrack_max
    assignment: SysctlAssignment

    @property
    def quoted(self) -> str:
        return quote(self.assignment)

    @property
    def value(self) -> int | None:
        text = self.assignment.value.strip()
        return int(text) if text.isdigit() else None


def conntrack_assignments(config: SysctlConfig) -> list[SysctlAssignment]:
    """Every assignment of a conntrack key, in the order the files are applied."""
    return [a for a in config.assignments if runtime_name(a.key) is not None]


def configured(config: SysctlConfig | Missing) -> dict[str, Configured]:
    """Runtime name -> the assignment that wins at boot (aliases are one setting)."""
    if isinstance(config, Missing):
        return {}
    result: dict[str, Configured] = {}
    for assignment in conntrack_assignments(config):
        name = runtime_name(assignment.key)
        if name is not None:
            result[name] = Configured(name, assignment)
    return result


def differs(item: Configured, running: int) -> bool:
    """CT301's judgement for one key: the running value is not the one the files configure
    (a configured value that is not a number is the kernel's to reject, not a drift)."""
    return item.value is not None and item.value != running


def setting_drift(
    config: SysctlConfig | Missing, sysctls: ConntrackSysctls | Missing
) -> dict[str, bool]:
    """Runtime name -> ``differs`` for each conntrack key the sysctl files configure with a
    number and the running kernel has; empty when either side is unreadable."""
    if isinstance(sysctls, Missing):
        return {}
    result: dict[str, bool] = {}
    for name, item in sorted(configured(config).items()):
        running = sysctls.get(name)
        if running is not None and item.value is not None:
            result[name] = differs(item, running)
    return result


def load_blocked(facts: Facts) -> str | None:
    """The modprobe.d line that stops every load of nf_conntrack (``install ... /bin/false``).

    ``blacklist`` only stops loading by alias; ``install`` replaces every load, including
    one pulled in as a dependency (modprobe.d(5)).
    """
    if not isinstance(facts.modprobe, ModprobeConfig):
        return None
    for d in facts.modprobe.for_module(NF_CONNTRACK, "install"):
        if d.install_program in ("false", "true"):
            return f"{d.path}:{d.line}: {d.text.strip()}"
    return None


def quote(a: SysctlAssignment) -> str:
    return f"{a.path}:{a.line}: {a.text.strip()}"
