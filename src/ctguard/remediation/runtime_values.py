"""The running values: those the sysctl files ask for but the kernel does not have (CT301)
are wanted too, and every wanted value that differs now is set at runtime.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from ctguard.model.host_sizing import BUCKETS, MAX
from ctguard.model.sizing import kernel_buckets
from ctguard.remediation.change_set import ChangeSet
from ctguard.remediation.changes import GLOBAL, PER_NETNS, Note, SetSysctl
from ctguard.remediation.host_settings import HostSettings, Want, configured_after
from ctguard.sources.modules import HASHSIZE_PARAM
from ctguard.sources.sysctl_runtime import GLOBAL_KEYS, NETFILTER_DIR


def configured_wants(
    host: HostSettings, owners: Collection[str], wants: Mapping[str, Want]
) -> dict[str, Want]:
    """Values other files configure that the running kernel lacks (CT301), to be set now;
    keys already wanted, or owned by an agent, are left out."""
    added: dict[str, Want] = {}
    if not host.facts.presence.loaded:
        return added
    for name, a in sorted(host.others.items()):
        value = a.value.strip()
        if name in wants or not value.isdigit() or name not in host.runtime:
            continue
        if name in owners:
            continue
        if int(value) != host.runtime[name]:
            added[name] = Want(int(value), f"configured in {a.path}:{a.line}", {"CT301"})
    return added


def set_runtime_values(
    host: HostSettings, wants: Mapping[str, Want], found: Collection[str], changes: ChangeSet
) -> None:
    """A runtime write for each wanted value that differs now: buckets, max, then the rest."""
    if not host.facts.presence.loaded:
        if wants:
            changes.notes.append(
                Note("nf_conntrack is not loaded: the values take effect when it loads")
            )
        return
    order = [BUCKETS, MAX, *sorted(n for n in wants if n not in (MAX, BUCKETS))]
    for name in order:
        want = wants.get(name)
        now = host.runtime.get(name)
        if want is None or now is None or now == want.value:
            continue
        scope = GLOBAL if name in GLOBAL_KEYS else PER_NETNS
        path, expect = f"{NETFILTER_DIR}/{name}", None
        if name == BUCKETS:
            expect = kernel_buckets(want.value)
            if expect == now:
                continue
            if host.old_kernel:  # read-only sysctl before 4.7: the module parameter
                path = HASHSIZE_PARAM
        ids = want.ids | ({"CT301"} if "CT301" in found else set())
        changes.sysctls.append(
            SetSysctl(name, path, now, want.value, scope, want.why, expect, tuple(sorted(ids)))
        )
        changes.addressed |= ids


def configured_is_running(
    host: HostSettings, persisted: Mapping[str, int], sysctls: Iterable[SetSysctl]
) -> bool:
    """CT301 after the plan: every configured value is the running one."""
    after = dict(host.runtime)
    after.update({change.name: change.after for change in sysctls})
    for name, (value, _) in configured_after(host, persisted).items():
        if name in after and value.isdigit() and int(value) != after[name]:
            return False
    return True
