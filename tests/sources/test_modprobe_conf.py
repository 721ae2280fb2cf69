"""modprobe.d parsing and the order kmod reads it in, on fixture roots."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctguard.sources.cmdline import CMDLINE
from ctguard.sources.modprobe_conf import (
    LEGACY_MODPROBE_CONF,
    ModprobeConfig,
    ModprobeDirective,
    module_name,
    parse_modprobe_conf,
    read_modprobe_config,
)

# What `ctguard disable` and the hashsize advice look for, among lines of real hosts.
CT_CONF = """\
# /etc/modprobe.d/nf_conntrack.conf
# Raised with nf_conntrack_max (see ctguard plan).
options nf_conntrack hashsize=262144
"""
DISABLE_CONF = """\
# Keep conntrack out: blacklist alone only stops loading by alias (modprobe.d(5)).
blacklist nf_conntrack
install nf_conntrack /bin/false
install nf_conntrack_ipv4 /bin/true
softdep nf_conntrack pre: nf_defrag_ipv4 nf_defrag_ipv6
remove nf_conntrack /sbin/modprobe -r --ignore-remove nf_conntrack
alias ip_conntrack nf_conntrack
"""
# RHEL 5 /etc/modprobe.conf as anaconda wrote it.
RHEL5_MODPROBE_CONF = """\
alias eth0 e1000
alias scsi_hostadapter ata_piix
options ip_conntrack hashsize=32768
options nf_conntrack hashsize=32768
"""


def link(root: Path, path: str, target: str) -> None:
    where = root / path.lstrip("/")
    where.parent.mkdir(parents=True, exist_ok=True)
    where.symlink_to(target)


def test_parse_every_kind():
    directives = parse_modprobe_conf(DISABLE_CONF, "/etc/modprobe.d/ct-off.conf")
    assert [(d.kind, d.module, d.args, d.line) for d in directives] == [
        ("blacklist", "nf_conntrack", "", 2),
        ("install", "nf_conntrack", "/bin/false", 3),
        ("install", "nf_conntrack_ipv4", "/bin/true", 4),
        ("softdep", "nf_conntrack", "pre: nf_defrag_ipv4 nf_defrag_ipv6", 5),
        ("remove", "nf_conntrack", "/sbin/modprobe -r --ignore-remove nf_conntrack", 6),
        ("alias", "ip_conntrack", "nf_conntrack", 7),
    ]
    assert all(d.path == "/etc/modprobe.d/ct-off.conf" for d in directives)
    assert directives[1].text == "install nf_conntrack /bin/false"


def test_dashes_become_underscores_in_module_names():
    directives = parse_modprobe_conf(
        "options nf-conntrack hashsize=65536\nblacklist nf-conntrack-ipv4\n", "/f"
    )
    assert [d.module for d in directives] == ["nf_conntrack", "nf_conntrack_ipv4"]
    assert module_name("pci:v*d[0-9-]x-y") == "pci:v*d[0-9-]x_y"  # not inside [...]


def test_continuation_lines():
    text = (
        "options nf_conntrack \\\n    hashsize=131072 \\\n    expect_hashsize=1024\nblacklist x\n"
    )
    directives = parse_modprobe_conf(text, "/f")
    assert [(d.kind, d.line) for d in directives] == [("options", 1), ("blacklist", 4)]
    assert directives[0].text == "options nf_conntrack hashsize=131072 expect_hashsize=1024"
    config = ModprobeConfig(directives)
    assert config.option("nf_conntrack", "expect_hashsize") == ("1024", directives[0])


def test_continuation_joins_without_a_space_like_kmod():
    # getline_wrapped() drops the backslash and the newline, nothing else.
    directives = parse_modprobe_conf("options nf_conntrack hashsize=13\\\n1072\n", "/f")
    found = ModprobeConfig(directives).option("nf_conntrack", "hashsize")
    assert found is not None
    assert found[0] == "131072"


def test_comments_blank_and_unknown_lines_are_ignored():
    text = (
        "# options nf_conntrack hashsize=1\n"
        "\n"
        "   # indented comment\n"
        "include /etc/modprobe.d/other\n"  # module-init-tools only; kmod ignores it
        "weird nf_conntrack foo\n"
        "options nf_conntrack\n"  # no options: kmod "ignoring bad line"
        "install nf_conntrack\n"
        "alias only_one_word\n"
        "blacklist\n"
        "\x00\xff\ufffd junk\n"
        "options nf_conntrack hashsize=4096\n"
    )
    directives = parse_modprobe_conf(text, "/f")
    assert [(d.kind, d.args, d.line) for d in directives] == [("options", "hashsize=4096", 11)]


def test_tabs_separate_words():
    directives = parse_modprobe_conf(
        "options\tnf_conntrack\thashsize=8192\texpect_hashsize=64\n", "/f"
    )
    assert directives == (
        ModprobeDirective(
            "options",
            "nf_conntrack",
            "hashsize=8192 expect_hashsize=64",
            "/f",
            1,
            "options\tnf_conntrack\thashsize=8192\texpect_hashsize=64",
        ),
    )


def test_option_last_wins_and_quotes():
    directives = parse_modprobe_conf(
        "options nf_conntrack hashsize=16384 acct=1\n"
        "options nf-conntrack expect_hashsize=256 hashsize=65536\n"
        'options nf_conntrack nf_conntrack_helper=0 tstamp "comment=a b"\n'
        "options nf_nat hashsize=1\n",
        "/etc/modprobe.d/ct.conf",
    )
    config = ModprobeConfig(directives)
    value, where = config.option("nf_conntrack", "hashsize") or ("", directives[0])
    assert (value, where.line) == ("65536", 2)
    assert config.option("nf-conntrack", "acct") == ("1", directives[0])
    assert config.option("nf_conntrack", "tstamp") == ("", directives[2])
    assert config.option("nf_conntrack", "comment") == ("a b", directives[2])
    assert config.option("nf_conntrack", "nf-conntrack-helper") == ("0", directives[2])
    assert config.option("nf_conntrack", "max") is None
    assert config.option("nf_nat", "hashsize") == ("1", directives[3])


def test_for_module():
    config = ModprobeConfig(parse_modprobe_conf(DISABLE_CONF + CT_CONF, "/f"))
    assert [d.kind for d in config.for_module("nf-conntrack")] == [
        "blacklist",
        "install",
        "softdep",
        "remove",
        "options",
    ]
    assert [d.args for d in config.for_module("nf_conntrack", "install")] == ["/bin/false"]
    assert config.for_module("nf_nat") == ()


@pytest.mark.parametrize(
    ("line", "program"),
    [
        ("install nf_conntrack /bin/false", "false"),
        ("install nf_conntrack /bin/true # keep conntrack out", "true"),
        ("install nf_conntrack '/bin/false'", "false"),  # /bin/sh -c removes the quotes
        ("install nf_conntrack /bin/true;", "true"),
        ("install nf_conntrack LC_ALL=C /bin/false", "false"),
        ("install nf_conntrack /sbin/modprobe --ignore-install nf_conntrack && /bin/true",
         "modprobe"),
        ("install nf_conntrack 'unclosed", None),
        ("options nf_conntrack hashsize=1", None),
        ("blacklist nf_conntrack", None),
    ],
)  # fmt: skip
def test_install_program(line, program):
    (directive,) = parse_modprobe_conf(line + "\n", "/etc/modprobe.d/x.conf")
    assert directive.install_program == program


# -- reading a host -------------------------------------------------------------------------
def test_read_orders_by_name_and_masks(host, write, tmp_path):
    write("/usr/lib/modprobe.d/50-vendor.conf", "options nf_conntrack hashsize=1024\n")
    write("/etc/modprobe.d/50-vendor.conf", "options nf_conntrack hashsize=2048\n")
    write("/lib/modprobe.d/90-late.conf", "options nf_conntrack expect_hashsize=64\n")
    write("/run/modprobe.d/10-early.conf", "options nf_conntrack hashsize=512\n")
    write("/etc/modprobe.d/nf_conntrack.conf.dpkg-old", "options nf_conntrack hashsize=1\n")
    write("/etc/modprobe.d/old-style.alias", "alias ip_conntrack nf_conntrack\n")
    link(tmp_path, "/etc/modprobe.d/blacklist-ct.conf", "/dev/null")
    write("/usr/lib/modprobe.d/blacklist-ct.conf", DISABLE_CONF)
    config = read_modprobe_config(host)
    assert config.files == (
        "/run/modprobe.d/10-early.conf",
        "/etc/modprobe.d/50-vendor.conf",
        "/lib/modprobe.d/90-late.conf",
        "/etc/modprobe.d/old-style.alias",
    )
    assert config.masked == (
        ("/usr/lib/modprobe.d/50-vendor.conf", "/etc/modprobe.d/50-vendor.conf"),
        ("/usr/lib/modprobe.d/blacklist-ct.conf", "/etc/modprobe.d/blacklist-ct.conf"),
    )
    found = config.option("nf_conntrack", "hashsize")
    assert found is not None
    assert (found[0], found[1].path) == ("2048", "/etc/modprobe.d/50-vendor.conf")
    assert config.for_module("nf_conntrack", "install") == ()
    assert [d.kind for d in config.directives] == ["options", "options", "options", "alias"]


def test_legacy_modprobe_conf_is_read_first(host, write):
    write(LEGACY_MODPROBE_CONF, RHEL5_MODPROBE_CONF)
    write("/etc/modprobe.d/ct.conf", "options nf_conntrack hashsize=65536\n")
    config = read_modprobe_config(host)
    assert config.files == (LEGACY_MODPROBE_CONF, "/etc/modprobe.d/ct.conf")
    found = config.option("nf_conntrack", "hashsize")
    assert found is not None
    assert (found[0], found[1].path) == ("65536", "/etc/modprobe.d/ct.conf")
    assert config.option("ip_conntrack", "hashsize") is not None


def test_kernel_command_line_options_come_last(host, write):
    write("/etc/modprobe.d/ct.conf", CT_CONF)
    write(
        CMDLINE,
        "BOOT_IMAGE=/vmlinuz-6.1.0 root=UUID=1 ro nf-conntrack.hashsize=524288 "
        'modprobe.blacklist=nf_nat,nf-conntrack-netlink quiet nf_conntrack.acct nf_nat.x="a b"\n',
    )
    config = read_modprobe_config(host, cmdline=True)
    found = config.option("nf_conntrack", "hashsize")
    assert found is not None
    assert (found[0], found[1].path, found[1].text) == (
        "524288",
        CMDLINE,
        "nf-conntrack.hashsize=524288",
    )
    assert [d.module for d in config.directives if d.kind == "blacklist"] == [
        "nf_nat",
        "nf_conntrack_netlink",
    ]
    # kmod takes only words with a value: a bare nf_conntrack.acct is the kernel's business.
    assert config.option("nf_conntrack", "acct") is None
    assert config.option("nf_nat", "x") == ("a b", config.for_module("nf_nat", "options")[0])


def test_kernel_command_line_is_left_out_by_default(host, write):
    write(CMDLINE, "ro nf_conntrack.hashsize=524288\n")
    assert read_modprobe_config(host).directives == ()
    assert read_modprobe_config(host, cmdline=True).option("nf_conntrack", "hashsize") is not None


def test_unreadable_file_is_noted(host, write, tmp_path):
    link(tmp_path, "/etc/modprobe.d/vendor.conf", "/usr/share/vendor/missing.conf")
    write("/etc/modprobe.d/ct.conf", CT_CONF)
    config = read_modprobe_config(host)
    assert [path for path, _ in config.unreadable] == ["/etc/modprobe.d/vendor.conf"]
    assert config.option("nf_conntrack", "hashsize") is not None


def test_empty_root(host):
    assert read_modprobe_config(host) == ModprobeConfig(())


# -- never raises ---------------------------------------------------------------------------
_PARTS = st.sampled_from(
    ["options", "blacklist", "install", "alias", "softdep", "remove", "nf_conntrack",
     "nf-conntrack", "hashsize=", "262144", '"', "=", " ", "\t", "\\", "\n", "#", "[", "]",
     "\x00", "\ufffd", "pre:", "post:", "/bin/false"]
)  # fmt: skip
_NEAR_MISS = st.lists(_PARTS, max_size=60).map("".join)
_ANY = st.text() | _NEAR_MISS | st.binary().map(lambda b: b.decode("utf-8", errors="replace"))


@settings(max_examples=300, deadline=None)
@given(_ANY, st.sampled_from(["hashsize", "expect_hashsize", "", "="]))
def test_parser_and_option_never_raise(text, param):
    directives = parse_modprobe_conf(text, "/etc/modprobe.d/x.conf")
    lines = text.count("\n") + 1
    for directive in directives:
        assert directive.kind in {"options", "blacklist", "install", "remove", "softdep", "alias"}
        assert directive.module
        assert 1 <= directive.line <= lines
    config = ModprobeConfig(directives)
    config.option("nf_conntrack", param)
    config.for_module("nf-conntrack")


@pytest.mark.parametrize("name", ["nf_conntrack", "nf-conntrack", "a[-]b", "]-[", "[[-"])
def test_module_name_is_idempotent(name):
    assert module_name(module_name(name)) == module_name(name)
