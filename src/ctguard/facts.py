"""``collect(host, commands) -> Facts``: every input the doctor rules need, read once.

Nothing after this point touches the host: rules are pure functions of ``Facts``, so the
same rules audit a live host, a namespace (collected inside it) or a snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from ctguard.errors import CtguardError
from ctguard.host.caps import PROC_LIST_BYTES
from ctguard.host.commands import Commands
from ctguard.host.netns import netns_inode
from ctguard.host.root import HostRoot
from ctguard.missing import Missing
from ctguard.sources.agents import (
    KubeProxy,
    Process,
    TunedProfile,
    find_kube_proxy,
    parse_ps,
    read_tuned,
)
from ctguard.sources.boot_modules import (
    BootModule,
    UdevReapply,
    read_boot_modules,
    read_udev_reapply,
)
from ctguard.sources.cmdline import KernelCmdline, read_cmdline
from ctguard.sources.iptables_service import (
    InitScript,
    IptablesService,
    expand_grep_files,
    read_iptables_service,
)
from ctguard.sources.kernel import KernelVersion, read_kernel
from ctguard.sources.kernel_log import TableFullLog, read_kernel_logs
from ctguard.sources.local_addresses import LocalAddresses, read_local_addresses
from ctguard.sources.local_port_range import (
    LocalPortRange,
    ephemeral_range,
    read_local_port_range,
)
from ctguard.sources.manifest import INIT_NETNS_DIR, read_manifest
from ctguard.sources.meminfo import Meminfo, read_meminfo
from ctguard.sources.modprobe_conf import ModprobeConfig, read_modprobe_config
from ctguard.sources.modules import (
    PROC_MODULES,
    ConntrackPresence,
    ModuleLine,
    parse_proc_modules,
    read_conntrack_presence,
)
from ctguard.sources.ruleset import Ruleset, read_ruleset
from ctguard.sources.slab import SlabSizes, read_slab
from ctguard.sources.stats import ConntrackStats, CounterBaseline, read_stats
from ctguard.sources.sysctl_conf import SysctlConfig, read_sysctl_config, systemd_sysctl_path
from ctguard.sources.sysctl_runtime import (
    MAX_FILE,
    NETFILTER_DIR,
    ConntrackSysctls,
    read_conntrack_sysctls,
    read_ip_forward,
)
from ctguard.table.source import read_table
from ctguard.table.summary import TableSummary, summarize
from ctguard.table.tally import Tally

INIT_NETNS_INODE = 4026531840  # PROC_NET_INIT_INO: the initial namespace's inode, fixed since 3.8
T = TypeVar("T")


@dataclass(frozen=True)
class TableFacts:
    source: str
    summary: TableSummary
    tally: Tally  # exact remaining timeouts, for what-if arithmetic


@dataclass(frozen=True)
class Facts:
    live: bool
    netns: str | None  # the namespace examined, by name; None = the initial one
    netns_inode: int | None
    presence: ConntrackPresence
    sysctls: ConntrackSysctls | Missing
    stats: ConntrackStats | Missing
    meminfo: Meminfo | Missing
    slab: SlabSizes | Missing
    kernel: KernelVersion | Missing
    sysctl_config: SysctlConfig | Missing
    modprobe: ModprobeConfig | Missing
    boot_modules: tuple[BootModule, ...] | Missing
    udev: tuple[UdevReapply, ...] | Missing
    cmdline: KernelCmdline | Missing
    iptables_service: IptablesService | Missing
    grep_files: tuple[tuple[str, str], ...]  # files the iptables init script greps, read
    ruleset: Ruleset | Missing
    kernel_logs: tuple[TableFullLog | Missing, ...]
    processes: tuple[Process, ...] | Missing
    tuned: TunedProfile | Missing
    systemd_sysctl: str | None
    ip_forward: int | Missing
    # runtime values of the initial namespace (when ``netns`` is set) and of other
    # namespaces examined (CT307); filled in by the caller that can enter them
    init_sysctls: ConntrackSysctls | Missing | None = None
    other_netns: Mapping[str, ConntrackSysctls] | Missing = field(default_factory=dict)
    # what the table holds (CT401, CT402, CT505); Missing without a table or --no-table
    table: TableFacts | Missing = field(default_factory=lambda: Missing("the table was not read"))
    # /proc/modules by name: who uses whom (``ctguard disable`` walks it)
    modules: Mapping[str, ModuleLine] | Missing = field(
        default_factory=lambda: Missing(f"{PROC_MODULES} was not read")
    )
    # this namespace's own addresses (delivered locally, never forwarded)
    local_addresses: LocalAddresses | Missing = field(
        default_factory=lambda: Missing("the local addresses were not read")
    )
    # the counters the last ``ctguard apply`` here recorded (its journal), this boot only;
    # filled in by the caller that knows the state directory
    baseline: CounterBaseline | Missing = field(
        default_factory=lambda: Missing("no ctguard apply recorded counters")
    )
    # what the ps output read was cut to (host/caps.py), None when it was read whole:
    # processes after the cut were not seen
    processes_cut: str | None = None
    # ip_local_port_range, read with or without the table: where this host's own
    # connections start from (CT501 weighs replies, CT505 candidates with it)
    local_ports: LocalPortRange | Missing = field(
        default_factory=lambda: Missing("ip_local_port_range was not read")
    )

    @property
    def ruleset_gaps(self) -> tuple[str, ...]:
        """Rule sources (iptables-save, ip6tables-save, nft) that could not be read, and why."""
        if isinstance(self.ruleset, Missing):
            return tuple(self.ruleset.reason.split("; "))
        return self.ruleset.missing

    @property
    def kube_proxy(self) -> KubeProxy | None:
        return None if isinstance(self.processes, Missing) else find_kube_proxy(self.processes)

    def with_init_namespace(self, init: ConntrackSysctls | Missing) -> Facts:
        """Facts read inside a namespace, with the global values of the initial one."""
        sysctls = self.sysctls
        if isinstance(init, ConntrackSysctls) and isinstance(sysctls, ConntrackSysctls):
            sysctls = sysctls.with_globals_of(init)
        return replace(self, sysctls=sysctls, init_sysctls=init)


def read_safely(read: Callable[..., T], *args: object) -> T | Missing:
    """An input that cannot be parsed or read is Missing (with why), not a crash."""
    try:
        return read(*args)
    except CtguardError as exc:
        return Missing(str(exc))
    except OSError as exc:
        return Missing(f"{exc.filename or 'read'}: {exc.strerror or exc}")


def _netns_inode(host: HostRoot) -> int | None:
    if not host.is_live:
        manifest = read_safely(read_manifest, host)
        if isinstance(manifest, Missing):
            return None  # a damaged manifest: which namespace is unknown
        if manifest is not None and manifest.netns_inode is not None:
            return manifest.netns_inode
        return INIT_NETNS_INODE if manifest is None or manifest.netns is None else None
    try:
        return netns_inode(host.readlink("/proc/self/ns/net"))
    except OSError:
        return None


def _manifest_born(host: HostRoot) -> float | None:
    """When a snapshot's namespace was made (kernel log lines before it are not its own)."""
    if host.is_live:
        return None
    manifest = read_safely(read_manifest, host)
    return None if isinstance(manifest, Missing) or manifest is None else manifest.netns_born


def _grep_files(host: HostRoot, service: IptablesService | Missing) -> tuple[tuple[str, str], ...]:
    if isinstance(service, Missing) or not isinstance(service.script, InitScript):
        return ()
    return expand_grep_files(host, service.script.grep_files)


def _modules(host: HostRoot) -> Mapping[str, ModuleLine] | Missing:
    text = host.try_read_text(PROC_MODULES, PROC_LIST_BYTES)
    return text if isinstance(text, Missing) else parse_proc_modules(text)


def _presence(host: HostRoot) -> ConntrackPresence:
    read = read_safely(read_conntrack_presence, host)
    if isinstance(read, Missing):  # e.g. a damaged /sys/module file in a snapshot
        return ConntrackPresence("unknown", host.exists(MAX_FILE), evidence=read.reason)
    return read


def collect(
    host: HostRoot,
    commands: Commands,
    netns: str | None = None,
    table: bool = True,
    netns_born: float | None = None,
) -> Facts:
    """Read every input once. An input that cannot be read or parsed becomes Missing.

    ``table``: also read the whole conntrack table (one pass; ``doctor --no-table`` skips
    it on hosts where even that is too much)."""
    presence = _presence(host)
    stats: ConntrackStats | Missing = Missing("conntrack not loaded")
    if presence.loaded:
        stats = read_safely(read_stats, host, commands)
    ps = commands.excerpt("ps")
    processes = ps if isinstance(ps, Missing) else parse_ps(ps.text)
    service = read_safely(read_iptables_service, host)
    ruleset = read_ruleset(commands)
    addresses = read_local_addresses(host, commands)
    ports = read_safely(read_local_port_range, host)
    init_sysctls: ConntrackSysctls | Missing | None = None
    if not host.is_live and netns is not None:
        init_sysctls = read_safely(read_conntrack_sysctls, host, INIT_NETNS_DIR + NETFILTER_DIR)
    return Facts(
        live=host.is_live,
        netns=netns,
        netns_inode=_netns_inode(host),
        presence=presence,
        sysctls=read_safely(read_conntrack_sysctls, host),
        stats=stats,
        meminfo=read_safely(read_meminfo, host),
        slab=read_safely(read_slab, host),
        kernel=read_safely(read_kernel, host, commands),
        sysctl_config=read_safely(read_sysctl_config, host),
        modprobe=read_safely(read_modprobe_config, host),
        boot_modules=read_safely(read_boot_modules, host),
        udev=read_safely(read_udev_reapply, host),
        cmdline=read_safely(read_cmdline, host),
        iptables_service=service,
        grep_files=_grep_files(host, service),
        ruleset=ruleset,
        kernel_logs=read_kernel_logs(host, commands, netns_born or _manifest_born(host)),
        processes=processes,
        processes_cut=None if isinstance(ps, Missing) else ps.cut,
        tuned=read_safely(read_tuned, host),
        systemd_sysctl=systemd_sysctl_path(host),
        ip_forward=read_safely(read_ip_forward, host),
        local_addresses=addresses,
        init_sysctls=init_sysctls,
        modules=read_safely(_modules, host),
        local_ports=ports,
        table=_table(host, commands, addresses, ports)
        if table and presence.loaded
        else Missing("conntrack not loaded" if table else "skipped (--no-table)"),
    )


def _table(
    host: HostRoot,
    commands: Commands,
    addresses: LocalAddresses | Missing,
    ports: LocalPortRange | Missing,
) -> TableFacts | Missing:
    local = addresses if isinstance(addresses, Missing) else addresses.spellings()
    ephemeral = ephemeral_range(ports)  # the range CT505 weighs candidates with
    # no rule reads sources or destinations: a table with a million clients costs doctor
    # no address table (by_address False; the entries and bad lines count the same)
    read = read_safely(read_table, host, commands, "auto", False, True, local, ephemeral, False)
    if isinstance(read, Missing):
        return read
    return TableFacts(read.source, summarize(read.tally, top=10), read.tally)
