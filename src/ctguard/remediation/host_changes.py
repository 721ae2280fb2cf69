"""Where a plan's values go on one host, so they survive a reboot, a module reload and a
firewall restart (docs/design.md §7, §9). Pure: files are read through the ``FileReader`` given.

The steps, in order, each in its own module: keys an agent owns are left to it
(agent_keys, CT306); values the sysctl files ask for but the kernel lacks are wanted too
(runtime_values, CT301); the values that must survive a reboot go into the sysctl file
(sysctl_file); the hash size into modprobe.d or a command line note (hashsize, CT303); the
RHEL iptables service's NF_MODULES_COMMON and load list (rhel_service, CT305, CT304); a
re-apply hook when nf_conntrack is a module (reapply_hook, CT302); last the runtime values.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from ctguard.facts import Facts
from ctguard.model.host_sizing import BUCKETS
from ctguard.remediation.agent_keys import agent_notes, agent_owners
from ctguard.remediation.change_set import ChangeSet
from ctguard.remediation.changes import Note, SetSysctl, WriteFile
from ctguard.remediation.hashsize import keep_hashsize
from ctguard.remediation.host_settings import FileReader, Want, read_settings
from ctguard.remediation.reapply_hook import reapply_on_load
from ctguard.remediation.rhel_service import service_changes
from ctguard.remediation.runtime_values import (
    configured_is_running,
    configured_wants,
    set_runtime_values,
)
from ctguard.remediation.sysctl_file import write_sysctl_file


@dataclass(frozen=True)
class HostChanges:
    """What the plan changes on this host (initial namespace) besides its sizing notes."""

    files: tuple[WriteFile, ...]
    sysctls: tuple[SetSysctl, ...]
    notes: tuple[Note, ...]
    conflicts: tuple[str, ...]  # other files' lines left alone, and why they do not matter
    addressed: frozenset[str]  # finding IDs the changes fix (found now or not)


def host_changes(
    facts: Facts,
    read: FileReader,
    runtime: Mapping[str, int],
    wants: Mapping[str, Want],
    found: Collection[str],
) -> HostChanges:
    """The changes that put ``wants`` (runtime name -> value) in place on this host."""
    host = read_settings(facts, read, runtime)
    wanted = dict(wants)
    for name, value in host.ours_now.items():
        wanted.setdefault(name, Want(value, "kept: set by ctguard's earlier apply"))
    owners = agent_owners(facts)
    changes = ChangeSet(notes=agent_notes(facts, owners, wanted, runtime))
    wanted = {name: want for name, want in wanted.items() if name not in owners}
    wanted.update(configured_wants(host, owners, wanted))
    persisted = write_sysctl_file(host, wanted, changes)
    keep_hashsize(host, wanted.get(BUCKETS), persisted.values, found, changes)
    service_reapplies = service_changes(host, persisted.values, changes)
    if not service_reapplies:  # else the RHEL service's load list is the re-apply hook
        reapply_on_load(host, persisted, changes)
    set_runtime_values(host, wanted, found, changes)
    if configured_is_running(host, persisted.values, changes.sysctls):
        changes.addressed.add("CT301")
    else:
        changes.addressed.discard("CT301")
    return HostChanges(
        files=tuple(changes.files),
        sysctls=tuple(changes.sysctls),
        notes=tuple(changes.notes),
        conflicts=tuple(changes.conflicts),
        addressed=frozenset(changes.addressed - changes.withdrawn),
    )
