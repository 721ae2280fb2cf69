"""The counters the last ``ctguard apply`` on a target recorded, read back from its journal
for the doctor (``Facts.baseline``), and read now for the journal of a new apply.

Only an entry that is still applied counts (a rolled-back fix is no fix), for the same
namespace, and for the same table: counters start again with every new table (a boot, a
load of the nf_conntrack module, a namespace made again), so the record names the one it
counted in (``table_id``). A reset the identity misses still shows as counters lower than
recorded (model/evidence.py). The state directory is the one apply uses by default: on
this machine only when nobody but root could have written it, or the ``--root`` tree's own.
"""

from __future__ import annotations

import os

from ctguard.errors import CtguardError
from ctguard.facts import read_safely
from ctguard.host.commands import Commands
from ctguard.host.root import HostRoot
from ctguard.host.target import Opened
from ctguard.missing import Missing
from ctguard.model.evidence import HISTORY_COUNTERS
from ctguard.remediation.journal import APPLIED, Baseline, list_entries
from ctguard.remediation.state_dir import DEFAULT_STATE_DIR, StateDir
from ctguard.sources.stats import ConntrackStats, CounterBaseline, read_stats

BOOT_ID = "/proc/sys/kernel/random/boot_id"
MODULE_DIR = "/sys/module/nf_conntrack"
NET_NS = "/proc/self/ns/net"


def table_id(host: HostRoot) -> str | None:
    """What identifies the table the counters count since: the boot id, and on a live
    host the module's load (kernfs gives /sys/module/nf_conntrack a new inode each time
    it is made; a built-in one is never reloaded) and the namespace ("net:[inode]").
    None when the boot is unknown (a tree without it)."""
    text = host.try_read_text(BOOT_ID, 4096)
    boot = text.strip() if isinstance(text, str) else ""
    if not boot:
        return None
    parts = [f"boot {boot}"]
    if host.is_live:
        try:
            if os.path.exists(f"{MODULE_DIR}/initstate"):
                parts.append(f"module {os.stat(MODULE_DIR).st_ino}")
            parts.append(os.readlink(NET_NS))
        except OSError:
            return None
    return ", ".join(parts)


def _now(host: HostRoot, commands: Commands) -> Baseline:
    stats = read_safely(read_stats, host, commands)
    counters: dict[str, int] = {}
    if isinstance(stats, ConntrackStats):
        for name in HISTORY_COUNTERS.values():
            value = stats.get(name)
            if value is not None:
                counters[name] = value
    return Baseline(counters, table_id(host))


def counters_now(opened: Opened) -> Baseline:
    """The counters a new apply records (none when they cannot be read), and their table;
    read where the table is (inside the namespace of a --netns target)."""
    return opened.run(_now)


def _table_now(host: HostRoot, _commands: Commands) -> str | None:
    return table_id(host)


def _state_dir(opened: Opened) -> StateDir:
    if opened.target.root is not None:
        return StateDir.in_tree(opened.host.base, DEFAULT_STATE_DIR)
    return StateDir.on_machine(DEFAULT_STATE_DIR)


def recorded_baseline(opened: Opened) -> CounterBaseline | Missing:
    """The counters of the newest apply still in place on this target, same table."""
    try:
        entries = list_entries(_state_dir(opened))
    except (OSError, CtguardError) as exc:
        return Missing(f"the journal was not read: {exc}")
    for entry in entries:  # newest first
        if entry.state != APPLIED or not entry.counters:
            continue
        if entry.meta.get("netns") != opened.target.netns:
            continue
        now = opened.run(_table_now)
        if entry.table_id is None and now is None and opened.target.root is not None:
            # a tree without a boot id (a copy apply --root wrote into): counters that
            # reset and climbed back to exactly the record are the risk left; say so
            return CounterBaseline(entry.created, entry.id, dict(entry.counters), False)
        if entry.table_id is None or now is None:
            return Missing(f"the table the last apply counted in is not known ({entry.id})")
        if entry.table_id != now:
            return Missing(f"the counters were reset since the last apply ({entry.id})")
        return CounterBaseline(entry.created, entry.id, dict(entry.counters))
    return Missing("no ctguard apply recorded counters")
