"""The real RHEL 7 iptables-services init scripts (tests/realworld/SOURCES.md): what each
does at stop, and which files its load_sysctl greps."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctguard.model.rhel_iptables import (
    fgrep_reapplied,
    grep_files_after,
    restart_greps,
    unload_setting,
    unloads_conntrack,
)
from ctguard.sources.iptables_service import (
    InitScript,
    IptablesConfig,
    parse_init_script,
    parse_iptables_config,
)

REAL = Path(__file__).parents[1] / "realworld" / "rhel-iptables"
PREFIX = "eurolinux-enterprise-linux-sources+iptables__"


def _script(commit: str) -> InitScript:
    path = REAL / f"{PREFIX}iptables.init__{commit}"
    return parse_init_script(path.read_text(), "/usr/libexec/iptables/iptables.init")


def _config(commit: str) -> IptablesConfig:
    return parse_iptables_config((REAL / f"{PREFIX}iptables-config__{commit}").read_text())


@pytest.mark.parametrize(
    ("commit", "unloads", "greps", "modules"),
    [
        # 1.4.21-18.3.el7_4 (RHEL 7.4)
        ("5276c73c78a4d0f3a08fcd5b888b441bbaee2162", True, ("/etc/sysctl.conf",),
         ("x_tables", "nf_nat", "nf_conntrack")),
        # 1.4.21-24.el7 (RHEL 7.5) and its z-stream 1.4.21-24.1.el7_5: still unload
        ("aaac48e47d86b2ce8af38f8e99abc9456a1b68ee", True, ("/etc/sysctl.d/*",),
         ("x_tables", "nf_nat", "nf_conntrack")),
        ("6c4e65d79e69b8ac73f1dd568acb1d8774e59506", True, ("/etc/sysctl.d/*",),
         ("x_tables", "nf_nat", "nf_conntrack")),
        # 1.4.21-28.el7 (RHEL 7.6)
        ("821f63ad0e67ddfec2ace603f9dbf4c65f5e18c2", True, ("/etc/sysctl.d/*",),
         ("x_tables", "nf_nat", "nf_conntrack")),
        # 1.4.21-33.el7 (RHEL 7.8): module unloading dropped (RHBZ#1520534)
        ("0a454618562bdfc37f041d4ef3be4f503fe0257d", False, ("/etc/sysctl.d/*",), None),
    ],
)  # fmt: skip
def test_real_scripts(
    commit: str, unloads: bool, greps: tuple[str, ...], modules: tuple[str, ...] | None
) -> None:
    script = _script(commit)
    assert script.unloads_modules is unloads
    assert script.grep_files == greps
    assert script.nf_modules_common == modules


def test_rhel7_33_never_unloads_whatever_the_default() -> None:
    # the 1.4.21-33 config has no IPTABLES_MODULES_UNLOAD line: the old default "yes"
    # must not count, the script has nothing that unloads
    commit = "0a454618562bdfc37f041d4ef3be4f503fe0257d"
    config = _config(commit)
    assert config.get("IPTABLES_MODULES_UNLOAD") is None
    unload, shown = unload_setting(config, _script(commit))
    assert not unload
    assert "never unloads" in shown


def test_rhel74_unloads_by_its_config() -> None:
    commit = "5276c73c78a4d0f3a08fcd5b888b441bbaee2162"
    unload, shown = unload_setting(_config(commit), _script(commit))
    assert unload
    assert 'IPTABLES_MODULES_UNLOAD="yes"' in shown


# -- RHEL 6: iptables 1.4.7 (eurolinux-enterprise-linux-sources/iptables, branch el6) ------
# Read by hand: every EL6 script sets IPTABLES_MODULES_UNLOAD="yes" before sourcing the
# config, NF_MODULES_COMMON=(x_tables nf_nat nf_conntrack), and stop runs rmmod_r (modprobe -r)
# over it when [ "x$IPTABLES_MODULES_UNLOAD" = "xyes" ]. load_sysctl runs only for a non-empty
# IPTABLES_SYSCTL_LOAD_LIST (script default ""; the stock config has it commented out).
# 1.4.7-9 .. -16 grep /etc/sysctl.conf alone; -17 added /etc/sysctl.d (rhbz#1459673) and
# -18 restricted it to *.conf, with -hs so the file names do not reach sysctl -p -.
EL6_CONFIG = "6c2344349b6eb5f8d5788b60028bc9df209e11ae"  # the same blob in -9 .. -19
EL6_STOCK = ("x_tables", "nf_nat", "nf_conntrack")
EL6 = [
    pytest.param("2ebb9c699b29d9f05cd45673db8bfb6943615162", ("/etc/sysctl.conf",), 187,
                 id="1.4.7-9.el6"),
    pytest.param("d9d9f0a7d627dc6a8afea47c3287ddf44d2e94a0", ("/etc/sysctl.conf",), 187,
                 id="1.4.7-11.el6 (= -14)"),
    pytest.param("feeac00ec222a6d174a3f1fabdc4a9ce82465b22", ("/etc/sysctl.conf",), 190,
                 id="1.4.7-16.el6"),
    pytest.param("6c2344349b6eb5f8d5788b60028bc9df209e11ae",
                 ("/etc/sysctl.conf", "/etc/sysctl.d/*.conf"), 193, id="1.4.7-19.el6"),
]  # fmt: skip

SYSCTL_CONF = ("/etc/sysctl.conf", "net.netfilter.nf_conntrack_max = 262144\n")
SYSCTL_D = (
    "/etc/sysctl.d/60-conntrack.conf",
    "net.netfilter.nf_conntrack_tcp_timeout_established = 3600\n",
)
SYSCTL_D_NOT_CONF = ("/etc/sysctl.d/conntrack.bak", "net.netfilter.nf_conntrack_max = 1\n")


def _el6_script(commit: str) -> InitScript:
    return parse_init_script(
        (REAL / f"{PREFIX}iptables.init__{commit}").read_text(), "/etc/rc.d/init.d/iptables"
    )


@pytest.mark.parametrize(("commit", "greps", "grep_line"), EL6)
def test_el6_stop_unloads_conntrack(commit: str, greps: tuple[str, ...], grep_line: int) -> None:
    script = _el6_script(commit)
    config = _config(EL6_CONFIG)
    assert script.unloads_modules
    assert script.nf_modules_common == EL6_STOCK
    assert script.unload_default == "yes"
    assert unload_setting(config, script)[0]
    assert unloads_conntrack(config, script, restored=False)
    # the restart re-applies lines of exactly these files, and only from that one command
    assert restart_greps((config, script)) == greps
    assert script.grep_line == grep_line
    assert script.grep_command == "fgrep"


@pytest.mark.parametrize(("commit", "greps", "grep_line"), EL6)
def test_el6_stock_config_reapplies_nothing(
    commit: str, greps: tuple[str, ...], grep_line: int
) -> None:
    # the load list is commented out: a restart resets every conntrack sysctl to its default
    config = _config(EL6_CONFIG)
    assert config.get("IPTABLES_SYSCTL_LOAD_LIST") is None
    assert config.sysctl_load_list == ()
    files = grep_files_after(_el6_script(commit), (), dict([SYSCTL_CONF, SYSCTL_D]))
    assert fgrep_reapplied(_el6_script(commit), config.sysctl_load_list, files) == {}
    # and no helper module is loaded after the rules (IPTABLES_MODULES="")
    modules = config.get("IPTABLES_MODULES")
    assert modules is not None and modules.value == ""


@pytest.mark.parametrize(("commit", "greps", "grep_line"), EL6)
def test_el6_load_list_reaches_only_the_grepped_files(
    commit: str, greps: tuple[str, ...], grep_line: int
) -> None:
    script = _el6_script(commit)
    written = dict([SYSCTL_CONF, SYSCTL_D, SYSCTL_D_NOT_CONF])
    files = grep_files_after(script, (), written)
    again = fgrep_reapplied(script, (".nf_conntrack",), files)
    reads_sysctl_d = "/etc/sysctl.d/*.conf" in greps
    expected = {"nf_conntrack_max": "262144"}
    if reads_sysctl_d:
        expected["nf_conntrack_tcp_timeout_established"] = "3600"
    assert {name: value for name, (_, value) in again.items()} == expected
    # -18's *.conf: a backup file in sysctl.d is not applied (it would set max to 1)
    assert all(hit.path != SYSCTL_D_NOT_CONF[0] for hit, _ in again.values())


def test_el6_unload_is_case_sensitive() -> None:
    # [ "x$IPTABLES_MODULES_UNLOAD" = "xyes" ]: "YES" keeps the modules loaded
    script = _el6_script("6c2344349b6eb5f8d5788b60028bc9df209e11ae")
    config = parse_iptables_config('IPTABLES_MODULES_UNLOAD="YES"\n')
    assert not unload_setting(config, script)[0]
    assert not unloads_conntrack(config, script, restored=True)
    assert restart_greps((config, script)) is None
    no = parse_iptables_config('IPTABLES_MODULES_UNLOAD="no"\n')
    assert not unloads_conntrack(no, script, restored=True)
    unset = parse_iptables_config("# nothing set\n")
    assert unloads_conntrack(unset, script, restored=False)  # the script's own default "yes"
