"""Where the hash table size is kept (CT303): ``options nf_conntrack hashsize=`` in a
modprobe.d file named to be read after the others that set it, for a modular conntrack;
for a built-in one, the sysctl file (4.7 and later) or a kernel command line note.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from ctguard.model.host_sizing import BUCKETS
from ctguard.model.sizing import kernel_buckets
from ctguard.model.values import NF_CONNTRACK
from ctguard.remediation.change_set import ChangeSet
from ctguard.remediation.changes import OURS, Note
from ctguard.remediation.host_settings import HostSettings, Want, default_value, persists
from ctguard.sources.modprobe_conf import MODPROBE_D, ModprobeConfig

# Tried in order: the first that sorts after every other file setting hashsize.
MODPROBE_NAMES = (
    "ctguard-conntrack.conf",
    "zz-ctguard-conntrack.conf",
    "zzzz-ctguard-conntrack.conf",
)


def keep_hashsize(
    host: HostSettings,
    want: Want | None,
    persisted: Mapping[str, int],
    found: Collection[str],
    changes: ChangeSet,
) -> None:
    """The modprobe.d file with the wanted buckets, or the note for a built-in conntrack.

    ``persisted``: what the sysctl file sets (a built-in conntrack's buckets may be there)."""
    if want is None:
        return
    needed = persists(host, BUCKETS, want) or _hashsize_differs(host, want.value)
    if not needed:
        return
    if not host.modular:
        if BUCKETS not in persisted or host.old_kernel:
            changes.notes.append(
                Note(
                    f"built-in conntrack: add nf_conntrack.hashsize={want.value} to the kernel"
                    " command line (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub"
                    " or grub2-mkconfig) so the table starts at that size",
                    ("CT303",),
                )
            )
        else:
            changes.addressed |= {"CT303"} & set(found)
        return
    path = _modprobe_path(host, changes)
    after = (
        "# Written by ctguard: the conntrack hash table size at module load\n"
        f"options nf_conntrack hashsize={want.value}\n"
    ).encode()
    changes.write(
        path,
        host.read(path),
        after,
        0o644,
        f"hash table size when nf_conntrack loads ({want.value} buckets)",
        OURS,
        {"CT303", "CT105"},
    )


def _hashsize_differs(host: HostSettings, value: int) -> bool:
    """Whether the module would load with a table of another size than ``value``."""
    modprobe = host.facts.modprobe
    if not host.modular or not isinstance(modprobe, ModprobeConfig):
        return False
    option = modprobe.option(NF_CONNTRACK, "hashsize")
    if option is None:
        return value != default_value(host.facts, BUCKETS)
    text = option[0]
    return not text.isdigit() or kernel_buckets(int(text)) != kernel_buckets(value)


def _modprobe_path(host: HostSettings, changes: ChangeSet) -> str:
    """Our file's path; other files' hashsize lines it overrides become conflicts."""
    modprobe = host.facts.modprobe
    others: list[tuple[str, str]] = []
    if isinstance(modprobe, ModprobeConfig):
        for d in modprobe.for_module(NF_CONNTRACK, "options"):
            if "hashsize" in d.args and not d.path.endswith(MODPROBE_NAMES):
                others.append((d.path.rsplit("/", 1)[-1], f"{d.path}:{d.line}: {d.text}"))
    for name in MODPROBE_NAMES:
        if all(name > other for other, _ in others):
            for _, line in others:
                changes.conflicts.append(f"{line}  ({MODPROBE_D}/{name} is read later)")
            return f"{MODPROBE_D}/{name}"
    return f"{MODPROBE_D}/{MODPROBE_NAMES[-1]}"
