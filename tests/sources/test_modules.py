"""/proc/modules parsing and how nf_conntrack is present (module, built in, absent)."""

from __future__ import annotations

import pytest

from ctguard.errors import ParseError
from ctguard.sources.modules import (
    PROC_MODULES,
    SYS_MODULE,
    ConntrackPresence,
    ModuleLine,
    ctnetlink_absent_reason,
    parse_proc_modules,
    read_conntrack_presence,
)
from ctguard.sources.sysctl_runtime import NETFILTER_DIR

# Linux 6.1 as root (addresses are zero for other users).
PROC_MODULES_61 = """\
nf_conntrack_netlink    57344  0 - Live 0xffffffffc0b41000
nft_chain_nat          16384  3 - Live 0xffffffffc0b3c000
nf_conntrack          172032  5 xt_conntrack,nf_nat,xt_MASQUERADE,nf_conntrack_netlink,nft_ct, Live 0xffffffffc0a2e000
nf_defrag_ipv6         24576  1 nf_conntrack, Live 0x0000000000000000
libcrc32c              16384  3 nf_conntrack,nf_nat,nf_tables, Live 0x0000000000000000
vboxdrv               565248  2 vboxnetadp,vboxnetflt, Live 0x0000000000000000 (OE)
"""  # noqa: E501


def test_parse_proc_modules_lines():
    modules = parse_proc_modules(PROC_MODULES_61)
    assert list(modules) == [
        "nf_conntrack_netlink",
        "nft_chain_nat",
        "nf_conntrack",
        "nf_defrag_ipv6",
        "libcrc32c",
        "vboxdrv",
    ]
    assert modules["nf_conntrack"] == ModuleLine(
        "nf_conntrack",
        172032,
        5,
        ("xt_conntrack", "nf_nat", "xt_MASQUERADE", "nf_conntrack_netlink", "nft_ct"),
        "Live",
    )
    assert modules["nf_defrag_ipv6"].used_by == ("nf_conntrack",)
    assert modules["vboxdrv"].used_by == ("vboxnetadp", "vboxnetflt")  # taint flags ignored


def test_dash_means_no_users():
    line = parse_proc_modules(PROC_MODULES_61)["nft_chain_nat"]
    assert (line.refcount, line.used_by, line.state) == (3, (), "Live")


def test_kernel_without_module_unload_prints_dashes():
    # CONFIG_MODULE_UNLOAD=n: print_unload_info() prints " - -".
    line = parse_proc_modules("nf_conntrack 139264 - - Live 0x0000000000000000\n")
    assert line["nf_conntrack"] == ModuleLine("nf_conntrack", 139264, 0, (), "Live")


def test_states_and_blank_lines():
    text = "\nnf_conntrack 172032 0 - Loading 0x0\n\n   \nnf_nat 49152 0 - Unloading 0x0\n"
    modules = parse_proc_modules(text)
    assert modules["nf_conntrack"].state == "Loading"
    assert modules["nf_nat"].state == "Unloading"


def test_empty_is_no_modules():
    assert parse_proc_modules("") == {}


def test_permanent_and_unsafe_markers_are_not_users():
    # kernel/module/main.c print_unload_info(): "[permanent]," after the real users.
    modules = parse_proc_modules(
        "nf_foo 16384 1 bar,[permanent], Live 0x0\nold 4096 0 [unsafe], Live 0x0\n"
    )
    assert modules["nf_foo"].used_by == ("bar",)
    assert modules["old"].used_by == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nf_conntrack 172032 5 xt_conntrack,\n", "line 1: expected at least 5 fields, got 4"),
        ("a 1 0 - Live 0x0\nnf_conntrack\n", "line 2: expected at least 5 fields, got 1"),
        ("nf_conntrack big 5 - Live 0x0\n", "line 1: size/refcount not numbers"),
        ("nf_conntrack 172032 five - Live 0x0\n", "size/refcount not numbers"),
    ],
)
def test_bad_lines(text, message):
    with pytest.raises(ParseError, match=message):
        parse_proc_modules(text)


# -- read_conntrack_presence ---------------------------------------------------------------
def test_presence_loadable_module_live(host, write, tmp_path):
    write(f"{SYS_MODULE}/initstate", "live\n")
    write(f"{SYS_MODULE}/parameters/hashsize", "65536\n")
    for holder in ("nf_nat", "xt_conntrack"):
        (tmp_path / SYS_MODULE.lstrip("/") / "holders" / holder).mkdir(parents=True)
    write(f"{NETFILTER_DIR}/nf_conntrack_max", "262144\n")

    presence = read_conntrack_presence(host)
    assert presence == ConntrackPresence(
        "module",
        True,
        "live",
        65536,
        ("nf_nat", "xt_conntrack"),
        f"{SYS_MODULE}/initstate: live",
    )


def test_presence_module_coming_is_not_loaded(host, write):
    write(f"{SYS_MODULE}/initstate", "coming\n")
    presence = read_conntrack_presence(host)
    assert (presence.kind, presence.loaded, presence.initstate) == ("module", False, "coming")
    assert presence.hashsize is None
    assert presence.holders == ()


def test_presence_builtin(host, write):
    write(f"{SYS_MODULE}/parameters/hashsize", "16384\n")
    write(f"{NETFILTER_DIR}/nf_conntrack_max", "65536\n")
    write(PROC_MODULES, "nf_tables 286720 0 - Live 0x0\n")

    presence = read_conntrack_presence(host)
    assert presence.kind == "builtin"
    assert presence.loaded is True
    assert presence.initstate is None
    assert presence.hashsize == 16384
    assert "no initstate" in presence.evidence


def test_presence_builtin_without_sys_module(host, write):
    # Sysctls exist, /proc/modules exists and does not list nf_conntrack.
    write(f"{NETFILTER_DIR}/nf_conntrack_max", "65536\n")
    write(PROC_MODULES, "nf_tables 286720 0 - Live 0x0\n")
    presence = read_conntrack_presence(host)
    assert (presence.kind, presence.loaded) == ("builtin", True)
    assert "does not list nf_conntrack" in presence.evidence


def test_presence_from_proc_modules_only(host, write):
    write(PROC_MODULES, PROC_MODULES_61)
    presence = read_conntrack_presence(host)
    assert presence.kind == "module"
    assert presence.loaded is True
    assert presence.initstate == "live"
    assert presence.hashsize is None
    assert presence.holders == (
        "xt_conntrack",
        "nf_nat",
        "xt_MASQUERADE",
        "nf_conntrack_netlink",
        "nft_ct",
    )
    assert PROC_MODULES in presence.evidence


def test_presence_proc_modules_without_users_falls_back_to_holders(host, write, tmp_path):
    write(PROC_MODULES, "nf_conntrack 172032 1 - Live 0x0\n")
    (tmp_path / SYS_MODULE.lstrip("/") / "holders" / "nf_nat").mkdir(parents=True)
    assert read_conntrack_presence(host).holders == ("nf_nat",)


def test_presence_sys_module_without_sysctls_is_absent(host, write):
    # A /sys/module/nf_conntrack directory alone does not make conntrack usable.
    write(f"{SYS_MODULE}/parameters/hashsize", "16384\n")
    presence = read_conntrack_presence(host)
    assert (presence.kind, presence.loaded, presence.hashsize) == ("absent", False, None)


def test_presence_sysctls_only_is_unknown(host, write):
    write(f"{NETFILTER_DIR}/nf_conntrack_max", "65536\n")
    presence = read_conntrack_presence(host)
    assert (presence.kind, presence.loaded) == ("unknown", True)


def test_presence_absent(host, write):
    write(PROC_MODULES, "nf_tables 286720 0 - Live 0x0\n")
    presence = read_conntrack_presence(host)
    assert presence == ConntrackPresence(
        "absent", False, None, None, (), f"no {NETFILTER_DIR}/nf_conntrack_max: not loaded"
    )


def test_presence_empty_root_is_absent(host):
    assert read_conntrack_presence(host).kind == "absent"


def test_presence_bad_hashsize_is_a_parse_error(host, write):
    write(f"{SYS_MODULE}/parameters/hashsize", "lots\n")
    with pytest.raises(ParseError, match="hashsize"):
        read_conntrack_presence(host)


# -- ctnetlink_absent_reason: may a read-only command ask ctnetlink? -------------------
CT_LINE = "nf_conntrack 172032 1 nf_conntrack_netlink, Live 0xffffffffc0a2e000\n"
NETLINK_LINE = "nf_conntrack_netlink 53248 0 - Live 0xffffffffc0a7f000\n"


def test_ctnetlink_safe_without_module_support(host):
    assert ctnetlink_absent_reason(host) is None  # no /proc/modules: nothing can load


def test_ctnetlink_safe_when_loaded(host, write):
    write("/proc/modules", NETLINK_LINE + CT_LINE)
    assert ctnetlink_absent_reason(host) is None


def test_ctnetlink_safe_when_built_in(host, write):
    write("/proc/modules", "nf_conntrack 172032 0 - Live 0xffffffffc0a2e000\n")
    write("/proc/sys/kernel/osrelease", "6.1.0-18-amd64\n")
    write(
        "/lib/modules/6.1.0-18-amd64/modules.builtin",
        "kernel/net/netfilter/nf_conntrack.ko\nkernel/net/netfilter/nf_conntrack_netlink.ko\n",
    )
    assert ctnetlink_absent_reason(host) is None


def test_ctnetlink_would_be_loaded(host, write):
    write("/proc/modules", "nf_conntrack 172032 0 - Live 0xffffffffc0a2e000\n")
    write("/proc/sys/kernel/osrelease", "6.1.0-18-amd64\n")
    write("/lib/modules/6.1.0-18-amd64/modules.builtin", "kernel/net/netfilter/nf_tables.ko\n")
    reason = ctnetlink_absent_reason(host)
    assert reason is not None and "nf_conntrack_netlink is not loaded" in reason
