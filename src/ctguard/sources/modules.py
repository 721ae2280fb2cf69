"""How nf_conntrack is present: loadable module, built in, or not loaded.

``/sys/module/nf_conntrack/initstate`` exists only for loadable modules; a built-in
module with parameters still has ``/sys/module/nf_conntrack/parameters``. ``/proc/modules``
lists loaded modules only (absent on kernels built without module support).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ctguard.errors import ParseError
from ctguard.host.caps import PROC_LIST_BYTES
from ctguard.host.root import SMALL_FILE_BYTES, HostRoot
from ctguard.missing import Missing
from ctguard.sources.sysctl_runtime import MAX_FILE, parse_sysctl_int

PROC_MODULES = "/proc/modules"
# Holders that use conntrack without any firewall rule showing it (OVS ct(), IPVS, flow
# offload, tc act_ct, bridge conntrack).
SILENT_USERS = ("openvswitch", "ip_vs", "nf_flow_table", "act_ct", "nf_conntrack_bridge")
SYS_MODULE = "/sys/module/nf_conntrack"
HASHSIZE_PARAM = f"{SYS_MODULE}/parameters/hashsize"  # the table size; writable at runtime
# What the kernel accepts as a module name (MODULE_NAME_LEN is 64 - sizeof(unsigned long),
# NUL included; KBUILD_MODNAME is the file name with '-' made '_'). Names go into the
# modprobe.d lines and modprobe -r commands disable writes: anything else in a snapshot
# (a newline, a space, "$(...)") is a damaged or crafted input, never a module.
_MODULE_NAME = re.compile(r"[A-Za-z0-9_-]{1,55}")


def is_module_name(name: str) -> bool:
    """
    >>> is_module_name("nf_conntrack"), is_module_name("evil\\ninstall x y")
    (True, False)
    """
    return _MODULE_NAME.fullmatch(name) is not None


@dataclass(frozen=True)
class ModuleLine:
    name: str
    size: int
    refcount: int
    used_by: tuple[str, ...]
    state: str


def parse_proc_modules(text: str) -> dict[str, ModuleLine]:
    """Parse ``/proc/modules``.

    >>> m = parse_proc_modules(
    ...     "nf_conntrack 172032 5 xt_conntrack,nf_nat,xt_MASQUERADE, Live 0xffffffffc0a2e000\\n")
    >>> m["nf_conntrack"].used_by
    ('xt_conntrack', 'nf_nat', 'xt_MASQUERADE')
    """
    modules: dict[str, ModuleLine] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        cells = line.split()
        if not cells:
            continue
        if len(cells) < 5:
            raise ParseError(
                f"{PROC_MODULES} line {number}: expected at least 5 fields, got {len(cells)}"
            )
        try:
            size, refcount = int(cells[1]), int(cells[2]) if cells[2] != "-" else 0
        except ValueError:
            raise ParseError(f"{PROC_MODULES} line {number}: size/refcount not numbers") from None
        # "[permanent]" / "[unsafe]" mark the module itself, they are not users of it
        used = tuple(u for u in cells[3].split(",") if u and u != "-" and not u.startswith("["))
        for name in (cells[0], *used):
            if not is_module_name(name):
                why = f"{name[:60]!r} is not a module name"
                raise ParseError(f"{PROC_MODULES} line {number}: {why}")
        modules[cells[0]] = ModuleLine(cells[0], size, refcount, used, cells[4])
    return modules


@dataclass(frozen=True)
class ConntrackPresence:
    kind: str  # "module" | "builtin" | "absent" | "unknown"
    loaded: bool
    initstate: str | None = None
    hashsize: int | None = None
    holders: tuple[str, ...] = ()
    evidence: str = ""


def read_holders(host: HostRoot) -> tuple[str, ...]:
    """The modules that use nf_conntrack, by their links in ``holders/``; ParseError for a
    name no module can have."""
    names = host.listdir(f"{SYS_MODULE}/holders")
    for name in names:
        if not is_module_name(name):
            raise ParseError(f"{SYS_MODULE}/holders: {name[:60]!r} is not a module name")
    return tuple(names)


def read_conntrack_presence(host: HostRoot) -> ConntrackPresence:
    hashsize = None
    text = host.try_read_text(HASHSIZE_PARAM, SMALL_FILE_BYTES)
    if not isinstance(text, Missing):
        hashsize = parse_sysctl_int(text, HASHSIZE_PARAM)
        if hashsize < 0:  # param_get_uint: no kernel prints one
            raise ParseError(
                f"{HASHSIZE_PARAM} is negative ({hashsize}): the kernel prints it unsigned"
            )
    holders = read_holders(host)
    proc_sysctls = host.exists(MAX_FILE)
    initstate = host.try_read_text(f"{SYS_MODULE}/initstate", SMALL_FILE_BYTES)
    if not isinstance(initstate, Missing):
        state = initstate.strip()
        return ConntrackPresence(
            "module", state == "live", state, hashsize, holders, f"{SYS_MODULE}/initstate: {state}"
        )
    listed = host.try_read_text(PROC_MODULES, PROC_LIST_BYTES)
    if not isinstance(listed, Missing):
        line = parse_proc_modules(listed).get("nf_conntrack")
        if line is not None:
            used = line.used_by or holders
            return ConntrackPresence(
                "module",
                True,
                line.state.lower(),
                hashsize,
                tuple(used),
                f"{PROC_MODULES} lists nf_conntrack ({line.state})",
            )
    sys_dir = host.is_dir(SYS_MODULE)
    if proc_sysctls and (sys_dir or not isinstance(listed, Missing)):
        why = (
            f"{SYS_MODULE} has no initstate: compiled into the kernel"
            if sys_dir
            else f"conntrack sysctls exist but {PROC_MODULES} does not list nf_conntrack"
        )
        return ConntrackPresence("builtin", True, None, hashsize, holders, why)
    if proc_sysctls:
        return ConntrackPresence(
            "unknown",
            True,
            None,
            hashsize,
            holders,
            f"{MAX_FILE} exists; module or built-in not recorded",
        )
    return ConntrackPresence("absent", False, None, None, (), f"no {MAX_FILE}: not loaded")


CTNETLINK = "nf_conntrack_netlink"


def ctnetlink_absent_reason(host: HostRoot) -> str | None:
    """Why asking ctnetlink would change the host, or None when it is safe to ask.

    Any ctnetlink request (``conntrack -S``, pyroute2, an event listener) makes the kernel
    load nf_conntrack_netlink, which also pins nf_conntrack so that unloading it (the
    RHEL iptables service's stop) fails. A read-only command must not do that, so ctguard
    asks only where the module is loaded, built in, or cannot be loaded at all.
    """
    listed = host.try_read_text(PROC_MODULES, PROC_LIST_BYTES)
    if isinstance(listed, Missing):
        return None  # no module support: nothing can be loaded
    if CTNETLINK in parse_proc_modules(listed) or host.is_dir(f"/sys/module/{CTNETLINK}"):
        return None
    release = host.try_read_text("/proc/sys/kernel/osrelease")
    if not isinstance(release, Missing):
        builtin = host.try_read_text(f"/lib/modules/{release.strip()}/modules.builtin")
        if not isinstance(builtin, Missing) and f"/{CTNETLINK}.ko" in builtin:
            return None
    return f"{CTNETLINK} is not loaded and ctguard does not load modules"


def read_module_names(host: HostRoot) -> frozenset[str] | None:
    """The modules /proc/modules lists; None when it cannot be read (or parsed)."""
    listed = host.try_read_text(PROC_MODULES, PROC_LIST_BYTES)
    if isinstance(listed, Missing):
        return None
    try:
        return frozenset(parse_proc_modules(listed))
    except ParseError:
        return None
