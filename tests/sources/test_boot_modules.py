"""Boot-time module loading and udev rules that re-apply sysctls, on fixture roots."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctguard.sources.boot_modules import (
    DEBIAN_MODULES,
    BootModule,
    UdevReapply,
    command_reapplies,
    parse_module_script,
    parse_modules_load,
    parse_udev_rules,
    read_boot_modules,
    read_udev_reapply,
)
from ctguard.sources.cmdline import CMDLINE

# Debian 12's /etc/modules with one module added by an operator.
DEBIAN_ETC_MODULES = """\
# /etc/modules: kernel modules to load at boot time.
#
# This file contains the names of kernel modules that should be loaded
# at boot time, one per line. Lines beginning with "#" are ignored.
# Parameters can be specified after the module name.

nf_conntrack hashsize=262144
"""
# RHEL 6 /etc/sysconfig/modules/nf_conntrack.modules as Red Hat's KB suggests.
RHEL6_SCRIPT = """\
#!/bin/sh
/sbin/modinfo -F filename nf_conntrack > /dev/null 2>&1
if [ $? -eq 0 ]; then
    /sbin/modprobe nf_conntrack
fi
"""
FEDORA_RULE = (
    'ACTION=="add", SUBSYSTEM=="module", KERNEL=="nf_conntrack", '
    'RUN+="/usr/lib/systemd/systemd-sysctl --prefix=/net/netfilter"\n'
)
CT_MAX = "net.netfilter.nf_conntrack_max"


def link(root: Path, path: str, target: str) -> None:
    where = root / path.lstrip("/")
    where.parent.mkdir(parents=True, exist_ok=True)
    where.symlink_to(target)


def names(modules: tuple[BootModule, ...]) -> list[tuple[str, str, int]]:
    return [(m.module, m.path, m.line) for m in modules]


# -- modules-load.d and /etc/modules ------------------------------------------------------
def test_modules_load_file():
    text = (
        "# Load conntrack before systemd-sysctl runs\nnf_conntrack\n\n; br_netfilter\n  nf-nat  \n"
    )
    modules = parse_modules_load(text, "/etc/modules-load.d/ct.conf")
    assert names(modules) == [
        ("nf_conntrack", "/etc/modules-load.d/ct.conf", 2),
        ("nf_nat", "/etc/modules-load.d/ct.conf", 5),
    ]
    assert modules[1].text == "  nf-nat  "


def test_modules_load_line_with_blanks_loads_nothing():
    # systemd-modules-load passes the whole line to kmod as one module name.
    assert parse_modules_load("nf_conntrack hashsize=262144\n", "/etc/modules-load.d/x.conf") == ()


def test_debian_etc_modules_may_carry_parameters():
    modules = parse_modules_load(DEBIAN_ETC_MODULES, DEBIAN_MODULES)
    assert names(modules) == [("nf_conntrack", DEBIAN_MODULES, 7)]
    assert parse_modules_load(DEBIAN_ETC_MODULES, DEBIAN_MODULES, arguments=False) == ()


def test_junk_lines_are_skipped():
    modules = parse_modules_load(
        "\x00\x01\nnf_conntrack\n\ufffd\ufffd\n", "/etc/modules-load.d/x.conf"
    )
    assert names(modules) == [("nf_conntrack", "/etc/modules-load.d/x.conf", 2)]


@pytest.mark.parametrize(
    ("line", "loaded"),
    [
        ("/sbin/modprobe nf_conntrack", ["nf_conntrack"]),
        ("modprobe -b nf_conntrack", ["nf_conntrack"]),
        ("exec /sbin/modprobe -q nf-conntrack hashsize=262144 >/dev/null 2>&1", ["nf_conntrack"]),
        ("/sbin/modprobe -a nf_conntrack nf_nat", ["nf_conntrack", "nf_nat"]),
        ("/usr/sbin/modprobe -C /etc/modprobe.conf nf_conntrack", ["nf_conntrack"]),
        ("[ -x /sbin/modprobe ] && /sbin/modprobe nf_conntrack", ["nf_conntrack"]),
        ("if true; then modprobe nf_conntrack; fi", ["nf_conntrack"]),
        ("/sbin/modprobe -r nf_conntrack", []),
        ("/sbin/modprobe --dry-run nf_conntrack", []),
        ("/sbin/modprobe -n -v nf_conntrack", []),
        ("/sbin/modprobe --show-depends nf_conntrack", []),
        ("modprobe $MODULE", []),
        ("# /sbin/modprobe nf_conntrack", []),
        ("echo modprobe nf_conntrack", []),
        ("/sbin/modinfo -F filename nf_conntrack", []),
        ("if /sbin/modprobe nf_conntrack; then :; fi", ["nf_conntrack"]),
        ("/sbin/modprobe>/dev/null nf_conntrack", ["nf_conntrack"]),
        ("x=$(/sbin/modprobe nf_conntrack 2>&1) || echo failed", ["nf_conntrack"]),
        ("/sbin/modprobe \\\n    nf_conntrack", ["nf_conntrack"]),
        ("/sbin/modprobe nf_conntrack # ; /sbin/modprobe nf_nat", ["nf_conntrack"]),
        ("echo 'run: modprobe nf_conntrack; modprobe nf_nat'", []),
        ("cat <<EOF\n/sbin/modprobe nf_conntrack\nEOF", []),
    ],
)
def test_module_script_lines(line, loaded):
    modules = parse_module_script(f"#!/bin/sh\n{line}\n", "/etc/sysconfig/modules/ct.modules")
    assert [m.module for m in modules] == loaded
    assert all(m.line == 2 for m in modules)


def test_rhel6_script():
    modules = parse_module_script(RHEL6_SCRIPT, "/etc/sysconfig/modules/nf_conntrack.modules")
    assert names(modules) == [("nf_conntrack", "/etc/sysconfig/modules/nf_conntrack.modules", 4)]
    assert modules[0].text == "    /sbin/modprobe nf_conntrack"


def test_read_boot_modules_from_every_source(host, write):
    write("/usr/lib/modules-load.d/10-vendor.conf", "nf_nat\n")
    write("/etc/modules-load.d/ct.conf", "nf_conntrack\n")
    write("/etc/modules-load.d/ct.conf.disabled", "xt_conntrack\n")
    write(DEBIAN_MODULES, DEBIAN_ETC_MODULES)
    write("/etc/sysconfig/modules/ct.modules", RHEL6_SCRIPT)
    write("/etc/sysconfig/modules/README", "modprobe nf_tables\n")
    write(CMDLINE, "root=/dev/sda1 ro modules_load=br_netfilter,nf_defrag_ipv4 quiet\n")
    modules = read_boot_modules(host)
    assert names(modules) == [
        ("nf_nat", "/usr/lib/modules-load.d/10-vendor.conf", 1),
        ("nf_conntrack", "/etc/modules-load.d/ct.conf", 1),
        ("nf_conntrack", DEBIAN_MODULES, 7),
        ("nf_conntrack", "/etc/sysconfig/modules/ct.modules", 4),
        ("br_netfilter", CMDLINE, 1),
        ("nf_defrag_ipv4", CMDLINE, 1),
    ]


def test_debian_link_reads_etc_modules_once_as_systemd_does(host, write, tmp_path):
    write(DEBIAN_MODULES, DEBIAN_ETC_MODULES + "nf_nat\n")
    link(tmp_path, "/etc/modules-load.d/modules.conf", "../modules")
    modules = read_boot_modules(host)
    # systemd-modules-load reads it: the line with a parameter loads nothing.
    assert names(modules) == [("nf_nat", DEBIAN_MODULES, 8)]


def test_masked_modules_load_file(host, write, tmp_path):
    write("/usr/lib/modules-load.d/ct.conf", "nf_conntrack\n")
    link(tmp_path, "/etc/modules-load.d/ct.conf", "/dev/null")
    assert read_boot_modules(host) == ()


def test_no_boot_modules(host):
    assert read_boot_modules(host) == ()


# -- udev rules ---------------------------------------------------------------------------
def test_fedora_rule():
    (rule,) = parse_udev_rules(FEDORA_RULE, "/etc/udev/rules.d/50-ct.rules")
    assert rule == UdevReapply(
        "/etc/udev/rules.d/50-ct.rules",
        1,
        FEDORA_RULE.rstrip("\n"),
        "nf_conntrack",
        "/usr/lib/systemd/systemd-sysctl --prefix=/net/netfilter",
        ("/net/netfilter",),
        (),
    )
    assert rule.covers(CT_MAX)
    assert rule.covers("net/netfilter/nf_conntrack_tcp_timeout_established")
    assert not rule.covers("net.nf_conntrack_max")
    assert not rule.covers("net.netfilter_x.y")  # prefixes compare whole components
    assert rule.matches_module("nf_conntrack")
    assert rule.matches_module("nf-conntrack")
    assert not rule.matches_module("nf_conntrack_netlink")


SYSTEMD_SYSCTL = "/usr/lib/systemd/systemd-sysctl"
TIMEOUT = "net.netfilter.nf_conntrack_tcp_timeout_established"


@pytest.mark.parametrize(
    ("run", "covered", "not_covered"),
    [
        ("/lib/systemd/systemd-sysctl --prefix=net.netfilter", [CT_MAX], ["net.nf_conntrack_max"]),
        ("/lib/systemd/systemd-sysctl --prefix /net/netfilter", [CT_MAX], ["kernel.sysrq"]),
        (f"{SYSTEMD_SYSCTL} --prefix=/proc/sys/net/netfilter", [CT_MAX], ["kernel.sysrq"]),
        (
            f"{SYSTEMD_SYSCTL} --prefix=/net/bridge --prefix=/net/netfilter",
            [CT_MAX, "net.bridge.bridge-nf-call-iptables"],
            ["net.ipv4.ip_forward"],
        ),
        (SYSTEMD_SYSCTL, [CT_MAX, "kernel.sysrq"], []),
        ("/sbin/sysctl -p", [CT_MAX, "kernel.sysrq"], []),
        ("/sbin/sysctl --system", [CT_MAX], []),
        ("/sbin/sysctl -q -p /etc/sysctl.d/90-ct.conf", [CT_MAX], []),
        (
            f"/sbin/sysctl -w {CT_MAX}=262144",
            [CT_MAX, "net/netfilter/nf_conntrack_max"],
            ["net.netfilter.nf_conntrack_buckets"],
        ),
        (f"/sbin/sysctl {TIMEOUT}=7440", [TIMEOUT], [CT_MAX]),
        (f"/bin/sh -c 'sysctl -w {CT_MAX}=262144; echo done'", [CT_MAX], ["kernel.sysrq"]),
    ],
)
def test_reapply_commands(run, covered, not_covered):
    text = f'SUBSYSTEM=="module", ACTION=="add", KERNEL=="nf_conntrack", RUN+="{run}"\n'
    (rule,) = parse_udev_rules(text, "/etc/udev/rules.d/50-ct.rules")
    assert rule.command == run
    assert all(rule.covers(key) for key in covered)
    assert not any(rule.covers(key) for key in not_covered)


def test_sysctl_files_are_recorded():
    text = 'SUBSYSTEM=="module", KERNEL=="nf_conntrack", RUN+="/sbin/sysctl -p"\n'
    (rule,) = parse_udev_rules(text, "/f.rules")
    assert rule.files == ("/etc/sysctl.conf",)
    text = text.replace("-p", "-p /etc/sysctl.d/ct.conf")
    (rule,) = parse_udev_rules(text, "/f.rules")
    assert rule.files == ("/etc/sysctl.d/ct.conf",)


@pytest.mark.parametrize(
    "run",
    [
        "/sbin/sysctl net.netfilter.nf_conntrack_max",  # reads, writes nothing
        "/sbin/sysctl -a",
        "/usr/lib/systemd/systemd-sysctl --cat-config",
        "/usr/bin/logger conntrack loaded",
        "/bin/sh -c 'echo 262144 > /proc/sys/net/netfilter/nf_conntrack_max'",
    ],
)
def test_commands_that_reapply_nothing(run):
    text = f'SUBSYSTEM=="module", ACTION=="add", KERNEL=="nf_conntrack", RUN+="{run}"\n'
    assert parse_udev_rules(text, "/f.rules") == ()


@pytest.mark.parametrize(
    "matches",
    [
        'ACTION=="remove", SUBSYSTEM=="module", KERNEL=="nf_conntrack"',
        'ACTION!="add", SUBSYSTEM=="module", KERNEL=="nf_conntrack"',
        'ACTION=="add", SUBSYSTEM=="net", KERNEL=="eth*"',
        'ACTION=="add", SUBSYSTEM!="module", KERNEL=="nf_conntrack"',
        'ACTION=="add"',
    ],
)
def test_rules_that_do_not_fire_on_module_add(matches):
    text = f'{matches}, RUN+="/usr/lib/systemd/systemd-sysctl --prefix=/net/netfilter"\n'
    assert parse_udev_rules(text, "/f.rules") == ()


def test_rule_without_subsystem_or_action_still_fires():
    (rule,) = parse_udev_rules(
        'KERNEL=="nf_conntrack", RUN+="/lib/systemd/systemd-sysctl --prefix=/net/netfilter"\n',
        "/f.rules",
    )
    assert rule.matches_module("nf_conntrack")


def test_rule_without_kernel_match_fires_for_every_module():
    text = 'ACTION=="add", SUBSYSTEM=="module", RUN+="/lib/systemd/systemd-sysctl"\n'
    (rule,) = parse_udev_rules(text, "/f.rules")
    assert rule.module == "*"
    assert rule.matches_module("nf_conntrack")


def test_kernel_globs_alternatives_and_exclusions():
    text = (
        'ACTION=="add|change", SUBSYSTEM=="module", KERNEL=="nf_conntrack*|br_netfilter", '
        'KERNEL!="nf_conntrack_netlink", RUN+="/usr/lib/systemd/systemd-sysctl"\n'
    )
    (rule,) = parse_udev_rules(text, "/f.rules")
    assert rule.matches_module("nf_conntrack")
    assert rule.matches_module("br_netfilter")
    assert rule.matches_module("nf_conntrack_ipv4")
    assert not rule.matches_module("nf_conntrack_netlink")
    assert not rule.matches_module("nf_nat")


def test_continuation_comments_and_run_forms():
    text = (
        "# conntrack sysctls are lost when the module loads after systemd-sysctl\n"
        'ACTION=="add", SUBSYSTEM=="module", \\\n'
        "# a comment inside a continued rule is skipped by udev\n"
        '    KERNEL=="nf_conntrack", \\\n'
        '    RUN{program}+="/usr/lib/systemd/systemd-sysctl --prefix=/net/netfilter"\n'
        'SUBSYSTEM=="module", KERNEL=="nf_conntrack", RUN{builtin}+="kmod load nf_nat"\n'
        'SUBSYSTEM=="module" KERNEL=="nf_conntrack" RUN="/sbin/sysctl --system"\n'
    )
    rules = parse_udev_rules(text, "/etc/udev/rules.d/50-ct.rules")
    assert [(r.line, r.command) for r in rules] == [
        (2, "/usr/lib/systemd/systemd-sysctl --prefix=/net/netfilter"),
        (7, "/sbin/sysctl --system"),
    ]
    assert rules[0].text == (
        'ACTION=="add", SUBSYSTEM=="module", KERNEL=="nf_conntrack", '
        'RUN{program}+="/usr/lib/systemd/systemd-sysctl --prefix=/net/netfilter"'
    )


def test_invalid_rule_line_is_dropped():
    text = (
        # no closing quote
        'ACTION=="add", SUBSYSTEM=="module", KERNEL=="nf_conntrack", RUN+="/sbin/sysctl -p\n'
        # a value without quotes
        'ACTION=="add" SUBSYSTEM="module" KERNEL=="nf_conntrack", RUN+=/sbin/sysctl -p\n'
    )
    assert parse_udev_rules(text, "/f.rules") == ()


def test_escaped_quote_in_value():
    text = (
        'SUBSYSTEM=="module", KERNEL=="nf_conntrack", '
        'RUN+="/bin/sh -c \\"sysctl -w net.netfilter.nf_conntrack_max=262144\\""\n'
    )
    (rule,) = parse_udev_rules(text, "/f.rules")
    assert rule.keys == (CT_MAX,)


def test_read_udev_reapply_masks_by_name(host, write, tmp_path):
    write("/usr/lib/udev/rules.d/50-ct.rules", FEDORA_RULE)
    write("/etc/udev/rules.d/50-ct.rules", "# disabled by the operator\n")
    write("/lib/udev/rules.d/99-systemd.rules", FEDORA_RULE.replace("nf_conntrack", "bridge"))
    link(tmp_path, "/etc/udev/rules.d/60-vendor.rules", "/dev/null")
    write("/usr/lib/udev/rules.d/60-vendor.rules", FEDORA_RULE)
    write("/etc/udev/rules.d/70-ct.rules.bak", FEDORA_RULE)
    rules = read_udev_reapply(host)
    assert [(r.path, r.module) for r in rules] == [("/lib/udev/rules.d/99-systemd.rules", "bridge")]


def test_read_udev_reapply(host, write):
    write("/etc/udev/rules.d/50-ct.rules", FEDORA_RULE)
    (rule,) = read_udev_reapply(host)
    assert (rule.path, rule.line) == ("/etc/udev/rules.d/50-ct.rules", 1)
    assert rule.covers(CT_MAX)


# -- never raises ---------------------------------------------------------------------------
_RULE_PARTS = st.sampled_from(
    ['ACTION', 'SUBSYSTEM', 'KERNEL', 'RUN', '{program}', '{builtin}', '==', '!=', '+=', '=',
     ':=', '"', 'e"', '\\"', ', ', ' ', '\\\n', '\n', '#', 'add', 'module', 'nf_conntrack*',
     '|', '/usr/lib/systemd/systemd-sysctl', ' --prefix=', ' --prefix', '/net/netfilter',
     'sysctl', ' -p', ' -w ', 'a=b', "'", 'sh -c ', ';', '\x00', '\ufffd', '[', ']']
)  # fmt: skip
_SCRIPT_PARTS = st.sampled_from(
    ["modprobe", "/sbin/modprobe", " ", "-a", "-r", "-C", "--config", "nf_conntrack", ";",
     "&&", "|", "2>&1", ">", "'", '"', "\\", "#", "\n", "exec", "then", "$M", "X=1", "(", ")"]
)  # fmt: skip
_ANY = st.text() | st.binary().map(lambda b: b.decode("utf-8", errors="replace"))


@settings(max_examples=300, deadline=None)
@given(_ANY | st.lists(_RULE_PARTS, max_size=40).map("".join), st.text(max_size=30))
def test_udev_parser_never_raises(text, key):
    for rule in parse_udev_rules(text, "/etc/udev/rules.d/x.rules"):
        rule.covers(key)
        rule.matches_module(key)
        assert 1 <= rule.line <= text.count("\n") + 1


@settings(max_examples=300, deadline=None)
@given(_ANY | st.lists(_SCRIPT_PARTS, max_size=40).map("".join))
def test_module_script_parser_never_raises(text):
    for module in parse_module_script(text, "/etc/sysconfig/modules/x.modules"):
        assert module.module
        assert "-" not in module.module


@settings(max_examples=300, deadline=None)
@given(_ANY, st.booleans())
def test_modules_load_parser_never_raises(text, arguments):
    for module in parse_modules_load(text, "/etc/modules-load.d/x.conf", arguments=arguments):
        assert module.module
        assert 1 <= module.line <= text.count("\n") + 1


def test_a_hook_that_names_its_files_covers_only_their_keys():
    # `sysctl -p` reads /etc/sysctl.conf only: a key set in sysctl.d is not re-applied
    (rule,) = parse_udev_rules(
        'ACTION=="add", SUBSYSTEM=="module", KERNEL=="nf_conntrack", RUN+="/sbin/sysctl -p"\n',
        "/etc/udev/rules.d/90-ct.rules",
    )
    key = "net.netfilter.nf_conntrack_max"
    assert rule.covers(key, "/etc/sysctl.conf")
    assert not rule.covers(key, "/etc/sysctl.d/60-conntrack.conf")
    assert rule.covers(key)  # no file given: only the key is checked


def test_command_reapplies_reads_modprobe_install_commands():
    install = "/sbin/modprobe --ignore-install nf_conntrack && /sbin/sysctl -p /etc/ct.conf"
    (hook,) = command_reapplies(
        install, "/etc/modprobe.d/ct.conf", 2, "install ...", "nf_conntrack"
    )
    assert hook.files == ("/etc/ct.conf",)
    assert hook.covers("net.netfilter.nf_conntrack_max", "/etc/ct.conf")
    assert not hook.covers("net.netfilter.nf_conntrack_max", "/etc/sysctl.conf")
    assert command_reapplies("/bin/false", "/etc/modprobe.d/x.conf", 1, "", "nf_conntrack") == ()


def test_command_reapplies_reads_the_commands_of_sh_c():
    install = "/bin/sh -c '/sbin/modprobe --ignore-install nf_conntrack && sysctl -p /etc/ct.conf'"
    (hook,) = command_reapplies(install, "/etc/modprobe.d/ct.conf", 2, "", "nf_conntrack")
    assert hook.files == ("/etc/ct.conf",)  # the quotes hold the "&&": one argument to sh
