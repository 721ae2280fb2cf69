"""Facts of an opened target: collected where the data is, with what only the caller's
namespace knows (the initial namespace's global values, the other namespaces' values)."""

from __future__ import annotations

from dataclasses import replace

from ctguard.errors import CtguardError
from ctguard.facts import Facts, collect, read_safely
from ctguard.host.netns import NETNS_DIR, in_each_named_netns, own_netns_born
from ctguard.host.root import HostRoot
from ctguard.host.target import Opened
from ctguard.missing import Missing
from ctguard.sources.manifest import ManifestInfo, read_manifest
from ctguard.sources.sysctl_runtime import ConntrackSysctls, read_conntrack_sysctls
from ctguard.usecases.baseline import recorded_baseline

COLLECT_TIMEOUT = 120.0  # seconds for reading everything inside a namespace


def snapshot_netns(host: HostRoot) -> str | None:
    """The namespace a snapshot was taken in (its manifest says), None for the host's."""
    manifest = read_safely(read_manifest, host)
    return manifest.netns if isinstance(manifest, ManifestInfo) else None


def other_namespaces() -> dict[str, ConntrackSysctls] | Missing:
    """Runtime values of each named namespace (``ip netns``), for CT307; root only."""
    read = in_each_named_netns(lambda: read_conntrack_sysctls(HostRoot("/")))
    if read is None:
        return Missing(f"entering the namespaces under {NETNS_DIR} needs root")
    return {name: v for name, v in read.items() if isinstance(v, ConntrackSysctls)}


def read_facts(opened: Opened, table: bool = True) -> Facts:
    """Every input the rules and planners need, read once from the target, with the
    counters the last ``ctguard apply`` there recorded."""
    return replace(_read_facts(opened, table), baseline=recorded_baseline(opened))


def _read_facts(opened: Opened, table: bool) -> Facts:
    target = opened.target
    try:
        if not target.live:
            host = opened.host
            return collect(host, opened.commands, snapshot_netns(host), table)
        if target.netns is not None:
            netns, born = target.netns, opened.netns_born()
            inside = opened.run(
                lambda host, commands: collect(host, commands, netns, table, born),
                COLLECT_TIMEOUT,
            )
            init = read_safely(read_conntrack_sysctls, opened.host)  # the initial one
            return inside.with_init_namespace(init)
        # ctguard run inside a named namespace (`ip netns exec`): its log lines are filtered
        # by its age, as with --netns (a reused inode number is not this namespace)
        facts = collect(opened.host, opened.commands, table=table, netns_born=own_netns_born())
    except OSError as exc:
        raise CtguardError(f"{exc.filename or 'reading host'}: {exc.strerror or exc}") from None
    return replace(facts, other_netns=other_namespaces())
