"""The counters the last ``ctguard apply`` on a target recorded, read back from its journal
for the doctor (``Facts.baseline``), and read now for the journal of a new apply.

Only an entry that is still applied counts (a rolled-back fix is no fix), for the same
namespace, in this boot: counters start again at every boot (``boot_id`` differs). A
module reload also resets them; the doctor sees that as counters lower than recorded
(model/evidence.py). The state directory is the one apply uses by default: on this machine
only when nobody but root could have written it, or the ``--root`` tree's own.
"""

from __future__ import annotations

from ctguard.errors import CtguardError
from ctguard.facts import read_safely
from ctguard.host.root import HostRoot
from ctguard.host.target import Opened
from ctguard.missing import Missing
from ctguard.model.evidence import HISTORY_COUNTERS
from ctguard.remediation.journal import APPLIED, Baseline, list_entries
from ctguard.remediation.state_dir import DEFAULT_STATE_DIR, StateDir
from ctguard.sources.stats import ConntrackStats, CounterBaseline, read_stats

BOOT_ID = "/proc/sys/kernel/random/boot_id"


def boot_id(host: HostRoot) -> str | None:
    text = host.try_read_text(BOOT_ID, 4096)
    return text.strip() or None if isinstance(text, str) else None


def counters_now(opened: Opened) -> Baseline:
    """The counters a new apply records (none when they cannot be read), and the boot."""
    stats = opened.run(lambda host, commands: read_safely(read_stats, host, commands))
    counters: dict[str, int] = {}
    if isinstance(stats, ConntrackStats):
        for name in HISTORY_COUNTERS.values():
            value = stats.get(name)
            if value is not None:
                counters[name] = value
    return Baseline(counters, boot_id(opened.host))


def _state_dir(opened: Opened) -> StateDir:
    if opened.target.root is not None:
        return StateDir.in_tree(opened.host.base, DEFAULT_STATE_DIR)
    return StateDir.on_machine(DEFAULT_STATE_DIR)


def recorded_baseline(opened: Opened) -> CounterBaseline | Missing:
    """The counters of the newest apply still in place on this target, this boot."""
    try:
        entries = list_entries(_state_dir(opened))
    except (OSError, CtguardError) as exc:
        return Missing(f"the journal was not read: {exc}")
    now = boot_id(opened.host)
    for entry in entries:  # newest first
        if entry.state != APPLIED or not entry.counters:
            continue
        if entry.meta.get("netns") != opened.target.netns:
            continue
        if entry.boot_id != now:
            return Missing(f"the last apply ({entry.id}) was in another boot")
        return CounterBaseline(entry.created, entry.id, dict(entry.counters))
    return Missing("no ctguard apply recorded counters")
