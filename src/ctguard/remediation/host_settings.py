"""This host's settings as a plan finds them, before it places its values (docs/design.md §7):
the sysctl files, with ctguard's own lines told apart from everyone else's, whether
conntrack is a module, and the RHEL iptables service. ``read_settings`` builds it once;
every step of ``host_changes`` reads it and none changes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ctguard.facts import Facts
from ctguard.model import sysctl_files
from ctguard.model.boot_hashsize import hashsize_settings
from ctguard.model.host_sizing import BUCKETS, MAX
from ctguard.model.sizing import buckets_writable, default_buckets, default_max, kernel_buckets
from ctguard.sources.iptables_service import InitScript, IptablesConfig, IptablesService
from ctguard.sources.meminfo import Meminfo
from ctguard.sources.sysctl_conf import SYSCTL_CONF, SysctlAssignment, SysctlConfig, runtime_name

FileReader = Callable[[str], bytes | None]  # host path -> bytes, None when absent


@dataclass(frozen=True)
class Want:
    """A value the plan wants, why, and the finding IDs setting it fixes."""

    value: int
    why: str
    ids: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class HostSettings:
    """What the steps share: the facts, the file reader, and what the sysctl files say."""

    facts: Facts
    read: FileReader
    runtime: Mapping[str, int]  # runtime name -> value now
    config: SysctlConfig
    modular: bool  # nf_conntrack is, or will load as, a module
    old_kernel: bool  # before 4.7: nf_conntrack_buckets is read-only
    our_dropins: frozenset[str]
    our_span: tuple[int, int] | None  # 1-based lines of ctguard's block in sysctl.conf
    ours_now: Mapping[str, int]  # runtime name -> value ctguard's own lines set
    others: Mapping[str, SysctlAssignment]  # runtime name -> winning line not ours
    service: tuple[IptablesConfig, InitScript] | None  # the RHEL iptables service, whole


def read_settings(facts: Facts, read: FileReader, runtime: Mapping[str, int]) -> HostSettings:
    config = (
        facts.sysctl_config
        if isinstance(facts.sysctl_config, SysctlConfig)
        else SysctlConfig((), (), (), ())
    )
    dropins = frozenset(
        f"{sysctl_files.SYSCTL_D}/{name}"
        for name in sysctl_files.DROPIN_NAMES
        if sysctl_files.is_ours(decoded(read(f"{sysctl_files.SYSCTL_D}/{name}")))
    )
    conf = decoded(read(SYSCTL_CONF))
    span = None if conf is None else sysctl_files.block_span(conf)
    kernel = facts.kernel
    service = facts.iptables_service
    return HostSettings(
        facts=facts,
        read=read,
        runtime=runtime,
        config=config,
        modular=facts.presence.kind == "module"
        or (facts.presence.kind == "absent" and not facts.presence.loaded),
        old_kernel=not buckets_writable(kernel),
        our_dropins=dropins,
        our_span=span,
        ours_now=_our_values(config, dropins, span),
        others=sysctl_files.others_effective(config, dropins, span),
        service=service.complete if isinstance(service, IptablesService) else None,
    )


def _our_values(
    config: SysctlConfig, dropins: frozenset[str], span: tuple[int, int] | None
) -> dict[str, int]:
    """Values ctguard's own lines set now (kept, so a second plan is the same)."""
    values: dict[str, int] = {}
    for a in config.assignments:
        name = runtime_name(a.key)
        ours = name and sysctl_files.is_our_line(a, dropins, span)
        if ours and name and a.value.strip().isdigit():
            values[name] = int(a.value.strip())
    return values


def decoded(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "surrogateescape")


def default_value(facts: Facts, name: str) -> int | None:
    """The kernel's own max or buckets for this host's memory; None for other keys."""
    mem = facts.meminfo
    if not isinstance(mem, Meminfo):
        return None
    if name == MAX:
        return default_max(mem.mem_total, facts.kernel)
    if name == BUCKETS:
        return default_buckets(mem.mem_total, facts.kernel)
    return None


def persists(host: HostSettings, name: str, want: Want) -> bool:
    """Whether a file must set ``want`` for it to survive a reboot."""
    others = host.others.get(name)
    if host.ours_now.get(name) == want.value:
        return True
    if others is not None:
        return others.value.strip() != str(want.value)
    now = host.runtime.get(name)
    booted = _cmdline_buckets(host) if name == BUCKETS else []
    if booted:  # a built-in conntrack starts with the command line's size, not the default
        return any(v is None or kernel_buckets(v) != kernel_buckets(want.value) for v in booted)
    default = default_value(host.facts, name)
    if default is not None:
        return want.value != default
    return now is None or want.value != now


def _cmdline_buckets(host: HostSettings) -> list[int | None]:
    """A built-in conntrack's ``nf_conntrack.hashsize=`` values (None: not a number)."""
    if host.modular:
        return []
    return [p.value for p in hashsize_settings(host.facts) if p.kind == "cmdline"]


def configured_after(
    host: HostSettings, persisted: Mapping[str, int]
) -> dict[str, tuple[str, str]]:
    """Runtime name -> (value, line) configured once the plan is applied."""
    wanted = {
        name: (a.value.strip(), a.text.strip())
        for name, a in host.others.items()
        if a.value.strip()
    }
    for name, value in persisted.items():
        wanted[name] = (str(value), f"{sysctl_files.sysctl_key(name)} = {value}")
    return wanted
