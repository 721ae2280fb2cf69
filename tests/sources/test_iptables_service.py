"""RHEL iptables service: iptables-config, the init script, and what load_sysctl re-applies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctguard.host.root import HostRoot
from ctguard.missing import Missing
from ctguard.sources.iptables_service import (
    INIT_SCRIPTS,
    IPTABLES_CONFIG,
    STOCK_NF_MODULES_COMMON,
    GrepHit,
    InitScript,
    IptablesConfig,
    IptablesService,
    ShellVar,
    expand_grep_files,
    parse_init_script,
    parse_iptables_config,
    read_iptables_service,
    simulate_fgrep,
)

EXAMPLE = Path(__file__).parents[2] / "examples" / "rhel6-table-full"

# RHEL 7 iptables-services 1.4.21, /usr/libexec/iptables/iptables.init (excerpt).
RHEL7_SCRIPT = """\
#!/bin/bash
IPTABLES=iptables
IPTABLES_CONFIG=/etc/sysconfig/${IPTABLES}-config

# Default firewall configuration:
IPTABLES_MODULES=""
IPTABLES_MODULES_UNLOAD="yes"
IPTABLES_SYSCTL_LOAD_LIST=""

# Load firewall configuration.
[ -f "$IPTABLES_CONFIG" ] && . "$IPTABLES_CONFIG"

# Netfilter modules
NF_MODULES=($(lsmod | awk "/^${IPV}table_/ {print \\$1}") ${IPV}_tables)
NF_MODULES_COMMON=(x_tables nf_nat nf_conntrack) # Used by netfilter v4 and v6

load_sysctl() {
    # load matched sysctl values
    if [ -n "$IPTABLES_SYSCTL_LOAD_LIST" ]; then
        echo -n $"Loading sysctl settings: "
        ret=0
        for item in $IPTABLES_SYSCTL_LOAD_LIST; do
            fgrep -hs $item /etc/sysctl.d/* | sysctl -p - >/dev/null
            let ret+=$?;
        done
        [ $ret -eq 0 ] && success || failure
        echo
    fi
    return $ret
}
"""

# RHEL 6.0 iptables 1.4.7: one file, no -h.
RHEL6_GA_LOAD_SYSCTL = """\
load_sysctl() {
    # load matched sysctl values
    if [ -n "$IPTABLES_SYSCTL_LOAD_LIST" ]; then
        echo -n $"Loading sysctl settings: "
        ret=0
        for item in $IPTABLES_SYSCTL_LOAD_LIST; do
            fgrep $item /etc/sysctl.conf | sysctl -p - >/dev/null
            let ret+=$?;
        done
    fi
}
"""

# The issue's example: the stock hint ".nf_conntrack" matches both keys, the list an
# operator wrote from memory, "net.nf_conntrack", only the legacy one.
ISSUE_SYSCTL_CONF = (
    "# Raised after the 2024-03-04 outage\n"
    "net.nf_conntrack_max = 262144\n"
    "net.netfilter.nf_conntrack_tcp_timeout_established = 3600\n"
)


# -- parse_iptables_config -----------------------------------------------------------------
# Quoting, escapes, comments and here-documents: tests/sources/test_shell_words.py.
def test_config_example_host():
    text = (EXAMPLE / "etc/sysconfig/iptables-config").read_text()
    config = parse_iptables_config(text)
    assert config.path == IPTABLES_CONFIG
    assert config.get("IPTABLES_MODULES_UNLOAD") == ShellVar(
        "IPTABLES_MODULES_UNLOAD", "yes", 13, 'IPTABLES_MODULES_UNLOAD="yes"'
    )
    assert config.get("IPTABLES_SYSCTL_LOAD_LIST") is not None
    assert config.get("IPTABLES_SYSCTL_LOAD_LIST").value == ""
    assert config.sysctl_load_list == ()
    assert config.get("IPTABLES_STATUS_NUMERIC").value == "yes"
    # The example in the comments is not an assignment.
    assert set(config.variables) == {
        "IPTABLES_MODULES", "IPTABLES_MODULES_UNLOAD", "IPTABLES_SAVE_ON_STOP",
        "IPTABLES_SAVE_ON_RESTART", "IPTABLES_SAVE_COUNTER", "IPTABLES_STATUS_NUMERIC",
        "IPTABLES_STATUS_VERBOSE", "IPTABLES_STATUS_LINENUMBERS", "IPTABLES_SYSCTL_LOAD_LIST",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ('IPTABLES_MODULES_UNLOAD="yes"', "yes"),
        ("IPTABLES_MODULES_UNLOAD=no", "no"),
        ("IPTABLES_MODULES_UNLOAD=no   # keep conntrack loaded", "no"),
        ('IPTABLES_MODULES_UNLOAD="no" # keep conntrack loaded', "no"),
        ("  IPTABLES_MODULES_UNLOAD=no", "no"),
        ("export IPTABLES_MODULES_UNLOAD=no", "no"),
        ('IPTABLES_MODULES_UNLOAD=""', ""),
        ("IPTABLES_MODULES_UNLOAD=", ""),
        ("IPTABLES_MODULES_UNLOAD=$DEFAULT_UNLOAD", "$DEFAULT_UNLOAD"),
        ('IPTABLES_MODULES_UNLOAD="yes"\r', "yes\r"),  # CRLF: bash keeps the "\r"
        ("X=1; IPTABLES_MODULES_UNLOAD=no", "no"),
        ('[ -n "$X" ] && IPTABLES_MODULES_UNLOAD=no', "no"),
    ],
)
def test_config_shell_values(line, value):
    var = parse_iptables_config(f"# site settings\n{line}\n").get("IPTABLES_MODULES_UNLOAD")
    assert var is not None
    assert (var.value, var.line, var.text) == (value, 2, line.strip())


@pytest.mark.parametrize(
    "line",
    [
        '# IPTABLES_MODULES_UNLOAD="no"',
        'echo IPTABLES_MODULES_UNLOAD="no"',
        "IPTABLES_MODULES_UNLOAD=no modprobe -r nf_conntrack",  # only that command's env
        'IPTABLES_MODULES_UNLOAD = "no"',  # a command named IPTABLES_MODULES_UNLOAD
        "IPTABLES_MODULES_UNLOAD",
        "export IPTABLES_MODULES_UNLOAD",
    ],
)
def test_config_lines_that_assign_nothing(line):
    assert parse_iptables_config(line + "\n").get("IPTABLES_MODULES_UNLOAD") is None


def test_config_last_assignment_wins():
    text = (
        'IPTABLES_MODULES_UNLOAD="yes"\nIPTABLES_SAVE_ON_STOP="no"\nIPTABLES_MODULES_UNLOAD="no"\n'
    )
    var = parse_iptables_config(text).get("IPTABLES_MODULES_UNLOAD")
    assert var is not None
    assert (var.value, var.line) == ("no", 3)


def test_config_several_assignments_on_one_line():
    config = parse_iptables_config("A=1 B='two words'\n")
    assert config.get("A") == ShellVar("A", "1", 1, "A=1 B='two words'")
    assert config.get("B") == ShellVar("B", "two words", 1, "A=1 B='two words'")


def test_config_quoted_value_spanning_lines():
    text = 'IPTABLES_SYSCTL_LOAD_LIST=".nf_conntrack\n    .bridge-nf"\nIPTABLES_SAVE_ON_STOP=no\n'
    config = parse_iptables_config(text)
    var = config.get("IPTABLES_SYSCTL_LOAD_LIST")
    assert var is not None
    assert var.line == 1
    assert var.text == 'IPTABLES_SYSCTL_LOAD_LIST=".nf_conntrack\n    .bridge-nf"'
    assert config.sysctl_load_list == (".nf_conntrack", ".bridge-nf")
    assert config.get("IPTABLES_SAVE_ON_STOP") == ShellVar(
        "IPTABLES_SAVE_ON_STOP", "no", 3, "IPTABLES_SAVE_ON_STOP=no"
    )


def test_config_unclosed_quote_ends_what_bash_reads():
    # bash runs what it parsed, then fails: earlier assignments count, later ones do not.
    text = 'IPTABLES_SAVE_ON_STOP="no"\nIPTABLES_MODULES_UNLOAD="no\nIPTABLES_STATUS_VERBOSE=yes\n'
    config = parse_iptables_config(text)
    assert config.get("IPTABLES_SAVE_ON_STOP") is not None
    assert config.get("IPTABLES_MODULES_UNLOAD") is None
    assert config.get("IPTABLES_STATUS_VERBOSE") is None


@pytest.mark.parametrize(
    ("value", "items"),
    [
        ('".nf_conntrack"', (".nf_conntrack",)),
        ('".nf_conntrack .bridge-nf"', (".nf_conntrack", ".bridge-nf")),
        ('"  net.nf_conntrack\tnet.netfilter.nf_conntrack_tcp_timeout_established  "',
         ("net.nf_conntrack", "net.netfilter.nf_conntrack_tcp_timeout_established")),
        ('""', ()),
        ("'.nf_conntrack ip_conntrack'", (".nf_conntrack", "ip_conntrack")),
        ('".nf_conntrack\u00a0x"', (".nf_conntrack\u00a0x",)),  # not in bash's IFS
    ],
)  # fmt: skip
def test_sysctl_load_list_splits_like_bash(value, items):
    config = parse_iptables_config(f"IPTABLES_SYSCTL_LOAD_LIST={value}\n")
    assert config.sysctl_load_list == items


def test_sysctl_load_list_unset():
    assert parse_iptables_config("IPTABLES_MODULES_UNLOAD=yes\n").sysctl_load_list == ()


# -- parse_init_script ---------------------------------------------------------------------
def test_init_script_example_host():
    text = (EXAMPLE / "etc/rc.d/init.d/iptables").read_text()
    script = parse_init_script(text, "/etc/init.d/iptables")
    assert script == InitScript(
        path="/etc/init.d/iptables",
        nf_modules_common=STOCK_NF_MODULES_COMMON,
        modules_line=58,
        modules_text="NF_MODULES_COMMON=(x_tables nf_nat nf_conntrack)",
        unload_default="yes",
        grep_command="fgrep",
        grep_files=("/etc/sysctl.conf", "/etc/sysctl.d/*.conf"),
        grep_line=112,
        grep_text="fgrep -hs $item /etc/sysctl.conf /etc/sysctl.d/*.conf | sysctl -p - >/dev/null",
        grep_options=("-hs",),
    )
    assert text.split("\n")[57] == script.modules_text


def test_init_script_rhel7():
    script = parse_init_script(RHEL7_SCRIPT, "/usr/libexec/iptables/iptables.init")
    assert script.nf_modules_common == ("x_tables", "nf_nat", "nf_conntrack")
    assert script.modules_line == 15
    assert script.modules_text == (
        "NF_MODULES_COMMON=(x_tables nf_nat nf_conntrack) # Used by netfilter v4 and v6"
    )
    assert script.unload_default == "yes"
    assert script.grep_command == "fgrep"
    assert script.grep_files == ("/etc/sysctl.d/*",)
    assert script.grep_line == 23
    assert script.grep_text == "fgrep -hs $item /etc/sysctl.d/* | sysctl -p - >/dev/null"


def test_init_script_rhel6_ga_greps_one_file_without_h():
    script = parse_init_script(RHEL6_GA_LOAD_SYSCTL, "/etc/init.d/iptables")
    assert script.grep_files == ("/etc/sysctl.conf",)
    assert script.grep_options == ()
    assert script.grep_line == 7
    assert script.nf_modules_common is None
    assert script.modules_line is None
    assert script.unload_default is None


@pytest.mark.parametrize(
    ("line", "command", "files"),
    [
        ('grep -F -hs "$item" /etc/sysctl.conf | sysctl -p -', "grep -F", ("/etc/sysctl.conf",)),
        ("grep -hsF $item /etc/sysctl.d/*.conf | sysctl -p -", "grep -hsF",
         ("/etc/sysctl.d/*.conf",)),
        ("grep --fixed-strings -h -- $item /etc/a.conf /etc/b.conf | sysctl -p -",
         "grep --fixed-strings", ("/etc/a.conf", "/etc/b.conf")),
        ("/bin/fgrep -h -e ${item} /etc/sysctl.conf /etc/sysctl.d/*.conf | /sbin/sysctl -e -p -",
         "/bin/fgrep", ("/etc/sysctl.conf", "/etc/sysctl.d/*.conf")),
        ("fgrep $item /etc/sysctl.conf -s 2>/dev/null | sysctl -p - >/dev/null 2>&1", "fgrep",
         ("/etc/sysctl.conf",)),
        ("fgrep -m 10 $item /etc/sysctl.conf | sysctl -p -", "fgrep", ("/etc/sysctl.conf",)),
        ("fgrep $item \\\n    /etc/sysctl.conf | sysctl -p -", "fgrep", ("/etc/sysctl.conf",)),
        ("fgrep $item | sysctl -p -", "fgrep", ()),
    ],
)  # fmt: skip
def test_init_script_grep_forms(line, command, files):
    text = f"for item in $IPTABLES_SYSCTL_LOAD_LIST; do\n    {line}\ndone\n"
    script = parse_init_script(text, "/etc/init.d/iptables")
    assert (script.grep_command, script.grep_files, script.grep_line) == (command, files, 2)
    assert script.grep_text == line


@pytest.mark.parametrize(
    "text",
    [
        "grep $item /etc/sysctl.conf | sysctl -p -\n",  # a regex grep: not what RHEL ships
        "fgrep $item /etc/sysctl.conf > /tmp/x\n",
        "fgrep $item /etc/sysctl.conf | sort\n",
        "# fgrep -hs $item /etc/sysctl.conf | sysctl -p -\n",
        "echo 'fgrep $item /etc/sysctl.conf | sysctl -p -'\n",
        "cat <<EOF\nfgrep $item /etc/sysctl.conf | sysctl -p -\nEOF\n",
        "",
    ],
)
def test_init_script_without_load_sysctl(text):
    script = parse_init_script(text, "/etc/init.d/iptables")
    assert script.grep_command is None
    assert script.grep_files == ()
    assert (script.grep_line, script.grep_text) == (None, None)


def test_init_script_edited_modules_common():
    # CT305: someone removed nf_conntrack so that stop no longer drops the table.
    text = (
        "#NF_MODULES_COMMON=(x_tables nf_nat nf_conntrack) # Used by netfilter v4 and v6\n"
        "NF_MODULES_COMMON=(x_tables nf_nat) # keep conntrack: INC0048812\n"
    )
    script = parse_init_script(text, "/etc/init.d/iptables")
    assert script.nf_modules_common == ("x_tables", "nf_nat")
    assert script.modules_line == 2
    assert script.modules_text == "NF_MODULES_COMMON=(x_tables nf_nat) # keep conntrack: INC0048812"


def test_init_script_modules_over_several_lines():
    text = 'NF_MODULES_COMMON=(x_tables \\\n    nf_nat   # NAT\n    "nf_conntrack"\n)\n'
    script = parse_init_script(text, "/etc/init.d/iptables")
    assert script.nf_modules_common == STOCK_NF_MODULES_COMMON
    assert script.modules_line == 1
    assert script.modules_text == text.rstrip("\n")


def test_init_script_empty_modules_common():
    script = parse_init_script("NF_MODULES_COMMON=()\n", "/etc/init.d/iptables")
    assert script.nf_modules_common == ()


def test_init_script_unload_default_is_set_before_the_config_is_read():
    text = (
        'IPTABLES_MODULES_UNLOAD="no"\n'
        '[ -f "$IPTABLES_CONFIG" ] && . "$IPTABLES_CONFIG"\n'
        'IPTABLES_MODULES_UNLOAD="yes"\n'
    )
    assert parse_init_script(text, "/etc/init.d/iptables").unload_default == "no"


def test_init_script_unload_default_with_source_builtin():
    text = "IPTABLES_MODULES_UNLOAD=yes\nsource /etc/sysconfig/iptables-config\n"
    assert parse_init_script(text, "/etc/init.d/iptables").unload_default == "yes"


# -- simulate_fgrep ------------------------------------------------------------------------
def test_fgrep_issue_example_net_nf_conntrack_misses_netfilter_keys():
    files = [("/etc/sysctl.conf", ISSUE_SYSCTL_CONF)]
    hits = simulate_fgrep(["net.nf_conntrack"], files)
    assert hits == (
        GrepHit("net.nf_conntrack", "/etc/sysctl.conf", 2, "net.nf_conntrack_max = 262144"),
    )


def test_fgrep_issue_example_dot_nf_conntrack_matches_both():
    files = [("/etc/sysctl.conf", ISSUE_SYSCTL_CONF)]
    hits = simulate_fgrep([".nf_conntrack"], files)
    assert [(h.line, h.text) for h in hits] == [
        (2, "net.nf_conntrack_max = 262144"),
        (3, "net.netfilter.nf_conntrack_tcp_timeout_established = 3600"),
    ]


def test_fgrep_issue_example_ip_conntrack_aliases_need_their_own_item():
    conf = ISSUE_SYSCTL_CONF + "net.ipv4.netfilter.ip_conntrack_tcp_timeout_established = 28800\n"
    files = [("/etc/sysctl.conf", conf)]
    assert [h.line for h in simulate_fgrep([".nf_conntrack"], files)] == [2, 3]
    alias = simulate_fgrep([".nf_conntrack", "ip_conntrack"], files)
    assert [(h.item, h.line) for h in alias] == [
        (".nf_conntrack", 2),
        (".nf_conntrack", 3),
        ("ip_conntrack", 4),
    ]


def test_fgrep_order_items_then_files_then_lines():
    files = [
        ("/etc/sysctl.conf", "net.nf_conntrack_max = 1\nkernel.sysrq = 0\n"),
        ("/etc/sysctl.d/90-conntrack.conf", "net.netfilter.nf_conntrack_max=2\n"),
    ]
    hits = simulate_fgrep(["nf_conntrack_max", "sysrq"], files)
    assert [(h.item, h.path, h.line) for h in hits] == [
        ("nf_conntrack_max", "/etc/sysctl.conf", 1),
        ("nf_conntrack_max", "/etc/sysctl.d/90-conntrack.conf", 1),
        ("sysrq", "/etc/sysctl.conf", 2),
    ]


def test_fgrep_is_fixed_string_case_sensitive_and_keeps_comment_lines():
    text = (
        "# net.netfilter.nf_conntrack_max was 65536\n"
        "NET.NETFILTER.NF_CONNTRACK_MAX = 1\n"
        "net.netfilter.nf_conntrack_max = 524288\n"
        "net.netfilter.nf_conntrack.max = 3\n"
    )
    hits = simulate_fgrep(["netfilter.nf_conntrack_max"], [("/etc/sysctl.conf", text)])
    assert [h.line for h in hits] == [1, 3]  # "." is not a wildcard; case matters


def test_fgrep_lines_split_on_newline_only():
    text = "a = 1\r\nnet.nf_conntrack_max = 2\r\nlast.nf_conntrack_line = 3"
    hits = simulate_fgrep(["nf_conntrack"], [("/etc/sysctl.conf", text)])
    assert [(h.line, h.text) for h in hits] == [
        (2, "net.nf_conntrack_max = 2\r"),
        (3, "last.nf_conntrack_line = 3"),
    ]


def test_fgrep_nothing_to_match():
    assert simulate_fgrep([], [("/etc/sysctl.conf", ISSUE_SYSCTL_CONF)]) == ()
    assert simulate_fgrep(["x"], []) == ()
    assert simulate_fgrep(["x"], [("/etc/sysctl.conf", "")]) == ()


# -- expand_grep_files ---------------------------------------------------------------------
def test_expand_globs_sorted_in_c_order(host, write):
    write("/etc/sysctl.conf", "a\n")
    write("/etc/sysctl.d/99-sysctl.conf", "z\n")
    write("/etc/sysctl.d/10-Zeta.conf", "Z\n")
    write("/etc/sysctl.d/10-alpha.conf", "alpha\n")
    write("/etc/sysctl.d/README", "doc\n")
    files = expand_grep_files(host, ["/etc/sysctl.conf", "/etc/sysctl.d/*.conf"])
    assert files == (
        ("/etc/sysctl.conf", "a\n"),
        ("/etc/sysctl.d/10-Zeta.conf", "Z\n"),  # "Z" sorts before "a" in the C locale
        ("/etc/sysctl.d/10-alpha.conf", "alpha\n"),
        ("/etc/sysctl.d/99-sysctl.conf", "z\n"),
    )


def test_expand_star_takes_every_regular_file_but_not_hidden_ones(host, write, tmp_path):
    write("/etc/sysctl.d/50-x.conf", "x\n")
    write("/etc/sysctl.d/README", "doc\n")
    write("/etc/sysctl.d/.hidden.conf", "hidden\n")
    write("/etc/sysctl.d/old/60-y.conf", "y\n")  # a directory: fgrep -s skips it
    files = expand_grep_files(host, ["/etc/sysctl.d/*"])
    assert [path for path, _ in files] == ["/etc/sysctl.d/50-x.conf", "/etc/sysctl.d/README"]
    dotted = expand_grep_files(host, ["/etc/sysctl.d/.*.conf"])
    assert [path for path, _ in dotted] == ["/etc/sysctl.d/.hidden.conf"]


def test_expand_skips_what_fgrep_cannot_open(host, write):
    write("/etc/sysctl.conf", "net.netfilter.nf_conntrack_max = 1\n")
    files = expand_grep_files(
        host, ["/etc/sysctl.d/*.conf", "/etc/sysctl.conf", "/etc/missing.conf", "/etc"]
    )
    assert files == (("/etc/sysctl.conf", "net.netfilter.nf_conntrack_max = 1\n"),)


def test_expand_follows_links_inside_the_root_and_keeps_the_host_path(host, write, tmp_path):
    write("/etc/sysctl.conf", "net.netfilter.nf_conntrack_max = 1\n")
    (tmp_path / "etc/sysctl.d").mkdir()
    (tmp_path / "etc/sysctl.d/99-sysctl.conf").symlink_to("../sysctl.conf")
    files = expand_grep_files(host, ["/etc/sysctl.d/*.conf"])
    assert files == (("/etc/sysctl.d/99-sysctl.conf", "net.netfilter.nf_conntrack_max = 1\n"),)


def test_expand_skips_a_file_over_the_cap(host, write):
    write("/etc/sysctl.d/00-huge.conf", "x" * ((1 << 20) + 1))
    write("/etc/sysctl.d/10-ok.conf", "ok\n")
    files = expand_grep_files(host, ["/etc/sysctl.d/*.conf"])
    assert [path for path, _ in files] == ["/etc/sysctl.d/10-ok.conf"]


def test_expand_relative_pattern_is_taken_from_root(host, write):
    write("/etc/sysctl.conf", "a\n")
    assert expand_grep_files(host, ["etc/sysctl.conf"]) == (("/etc/sysctl.conf", "a\n"),)


# -- read_iptables_service -----------------------------------------------------------------
def test_read_service_not_a_rhel_host(host, write):
    write("/etc/init.d/iptables", RHEL6_GA_LOAD_SYSCTL)
    result = read_iptables_service(host)
    assert result == Missing("no /etc/sysconfig/iptables-config: not a RHEL iptables service host")


def test_read_service_example_host_end_to_end():
    host = HostRoot(EXAMPLE)
    service = read_iptables_service(host)
    assert isinstance(service, IptablesService)
    assert isinstance(service.config, IptablesConfig)
    assert isinstance(service.script, InitScript)
    assert service.script.path == "/etc/init.d/iptables"  # via the init.d -> rc.d/init.d link
    assert service.config.get("IPTABLES_MODULES_UNLOAD").value == "yes"
    files = expand_grep_files(host, service.script.grep_files)
    assert [path for path, _ in files] == ["/etc/sysctl.conf"]
    # The fix CT304 proposes re-applies the netfilter key, not the ip_conntrack alias.
    hits = simulate_fgrep([".nf_conntrack"], files)
    assert [h.text for h in hits] == ["net.netfilter.nf_conntrack_max = 10485760"]
    assert service.config.sysctl_load_list == ()
    assert simulate_fgrep(service.config.sysctl_load_list, files) == ()


def test_read_service_rhel7_script_location(host, write):
    write(IPTABLES_CONFIG, 'IPTABLES_MODULES_UNLOAD="no"\n')
    write("/usr/libexec/iptables/iptables.init", RHEL7_SCRIPT)
    service = read_iptables_service(host)
    assert isinstance(service, IptablesService)
    assert isinstance(service.script, InitScript)
    assert service.script.path == "/usr/libexec/iptables/iptables.init"
    assert service.script.grep_files == ("/etc/sysctl.d/*",)


def test_read_service_prefers_the_first_script(host, write):
    write(IPTABLES_CONFIG, "")
    write("/etc/rc.d/init.d/iptables", RHEL6_GA_LOAD_SYSCTL)
    write("/usr/libexec/iptables/iptables.init", RHEL7_SCRIPT)
    service = read_iptables_service(host)
    assert isinstance(service, IptablesService)
    assert isinstance(service.script, InitScript)
    assert service.script.path == "/etc/rc.d/init.d/iptables"


def test_read_service_without_script(host, write, tmp_path):
    write(IPTABLES_CONFIG, 'IPTABLES_MODULES_UNLOAD="yes"\n')
    (tmp_path / "etc/init.d/iptables").mkdir(parents=True)  # not a file
    service = read_iptables_service(host)
    assert isinstance(service, IptablesService)
    assert isinstance(service.config, IptablesConfig)
    assert isinstance(service.script, Missing)
    for path in INIT_SCRIPTS:
        assert path in service.script.reason


def test_read_service_unreadable_config(host, write, tmp_path):
    (tmp_path / IPTABLES_CONFIG.lstrip("/")).mkdir(parents=True)
    write("/etc/init.d/iptables", RHEL6_GA_LOAD_SYSCTL)
    service = read_iptables_service(host)
    assert isinstance(service, IptablesService)
    assert isinstance(service.config, Missing)
    assert IPTABLES_CONFIG in service.config.reason
    assert isinstance(service.script, InitScript)


# -- no input makes a parser raise ---------------------------------------------------------
_SHELL_WORDS = st.sampled_from(
    [
        "IPTABLES_MODULES_UNLOAD=", "NF_MODULES_COMMON=(", ")", "(", "fgrep", "grep", "-F", "-hs",
        "-e", "--", "$item", '"$item"', "/etc/sysctl.d/*", "|", "sysctl", "-p", "-", ";", "&&",
        "'", '"', "\\", "\\\n", "$(", "${", "`", "#", "<<EOF", "EOF", "2>", ">/dev/null", ".",
        "source", "$IPTABLES_CONFIG", "export", "yes", "no", "\r", "\x00", "\u00e9",
    ]
)  # fmt: skip
_SHELL = st.lists(st.tuples(_SHELL_WORDS, st.sampled_from([" ", "", "\n", "\t"])), max_size=60).map(
    lambda pairs: "".join(word + sep for word, sep in pairs)
)
_DECODED = st.binary(max_size=600).map(lambda b: b.decode("utf-8", errors="replace"))
_ANY_TEXT = st.one_of(st.text(), _DECODED, _SHELL)


@settings(max_examples=300, deadline=None)
@given(text=_ANY_TEXT)
def test_parse_iptables_config_never_raises(text):
    config = parse_iptables_config(text)
    assert isinstance(config, IptablesConfig)
    for name, var in config.variables.items():
        assert var.name == name
        assert 1 <= var.line <= text.count("\n") + 1
    assert all(item for item in config.sysctl_load_list)


@settings(max_examples=300, deadline=None)
@given(text=_ANY_TEXT)
def test_parse_init_script_never_raises(text):
    script = parse_init_script(text, "/etc/init.d/iptables")
    assert isinstance(script, InitScript)
    assert (script.grep_line is None) == (script.grep_command is None)
    assert (script.modules_line is None) == (script.nf_modules_common is None)


@settings(max_examples=200, deadline=None)
@given(
    items=st.lists(st.sampled_from([".nf_conntrack", "ip_conntrack", "net.", "x", ""]), max_size=4),
    texts=st.lists(_ANY_TEXT, max_size=3),
)
def test_simulate_fgrep_hits_are_exactly_the_matching_lines(items, texts):
    files = [(f"/etc/sysctl.d/{n}.conf", text) for n, text in enumerate(texts)]
    hits = simulate_fgrep(items, files)
    for hit in hits:
        assert hit.item in hit.text
        assert "\n" not in hit.text
    # grep's lines: each ended by "\n", a last unterminated one too, none in an empty file
    lines = [re.findall(r"([^\n]*)\n", t if t.endswith("\n") or not t else t + "\n") for t in texts]
    expected = sum(item in line for item in items for file_lines in lines for line in file_lines)
    assert len(hits) == expected
