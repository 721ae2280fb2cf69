"""The sysctl file that keeps a plan's values across a reboot: which wanted values must go
in it, and its new text. ``model/sysctl_files`` decides where it goes (a drop-in that sorts
last, or a block at the end of sysctl.conf); other files' lines are reported, not edited.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ctguard.model import rhel_iptables, sysctl_files
from ctguard.model.host_sizing import BUCKETS
from ctguard.remediation.change_set import ChangeSet
from ctguard.remediation.changes import EDIT, OURS, Note
from ctguard.remediation.host_settings import HostSettings, Want, decoded, persists
from ctguard.sources.sysctl_conf import SYSCTL_CONF


@dataclass(frozen=True)
class Persisted:
    """The values the sysctl file sets once the plan is applied, and that file's path."""

    values: Mapping[str, int]  # runtime name -> value
    path: str


def write_sysctl_file(
    host: HostSettings, wants: Mapping[str, Want], changes: ChangeSet
) -> Persisted:
    """The drop-in (or sysctl.conf block) with the values that must survive a reboot."""
    values: dict[str, int] = {}
    ids: set[str] = set()
    for name, want in wants.items():
        if name == BUCKETS and not _buckets_in_sysctl(host, want):
            continue
        if persists(host, name, want):
            values[name] = want.value
            ids |= want.ids
    dropins, span = host.our_dropins, host.our_span
    grepped = rhel_iptables.restart_greps(host.service)
    if grepped is not None:
        copies = _unreached(host, values, grepped)
        if copies:
            values.update(copies)
            ids.add("CT304")
    placement = sysctl_files.choose_placement(host.config, values, dropins, span, grepped)
    winner = "the ctguard block below it" if placement.block else placement.path
    changes.conflicts += [
        f"{line}  ({winner} wins)"
        for line in sysctl_files.conflicts(host.config, values, dropins, span)
    ]
    if placement.block:
        before = host.read(SYSCTL_CONF)
        # the file's own bytes kept as they are, invalid UTF-8 included
        after = sysctl_files.with_block(decoded(before) or "", values).encode(
            "utf-8", "surrogateescape"
        )
        changes.write(
            SYSCTL_CONF,
            before,
            after,
            0o644,
            f"conntrack values, in a marked block at the end ({placement.reason})",
            EDIT,
            ids,
        )
        for path in dropins:  # an earlier drop-in of ours would now be shadowed
            changes.notes.append(Note(f"{path}: an older ctguard drop-in; remove it by hand"))
    elif values or placement.path in dropins:
        before = host.read(placement.path)
        after = sysctl_files.dropin_text(values).encode()
        changes.write(
            placement.path,
            before,
            after,
            0o644,
            f"conntrack values that win at boot ({placement.reason})",
            OURS,
            ids,
        )
    return Persisted(values, placement.path)


def _unreached(
    host: HostSettings, values: Mapping[str, int], grepped: tuple[str, ...]
) -> dict[str, int]:
    """Values other files set where the iptables init script's fgrep never looks: a
    restart would lose them (CT304), so the file the script does read repeats them. Same
    value, so which file wins at boot does not matter."""
    return {
        name: int(a.value.strip())
        for name, a in host.others.items()
        if name not in values
        and a.value.strip().isdigit()
        and not sysctl_files.grepped_file(host.config, a.path, grepped)
    }


def _buckets_in_sysctl(host: HostSettings, want: Want) -> bool:
    """Built-in conntrack keeps buckets in sysctl.d (writable since 4.7); a module gets
    them from ``hashsize``, unless a sysctl file would re-apply another value."""
    if host.old_kernel:
        return False
    if not host.modular:
        return True
    other = host.others.get(BUCKETS)
    return other is not None and other.value.strip() != str(want.value)
