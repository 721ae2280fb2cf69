"""Agents that own conntrack sysctls: kube-proxy (from ps) and tuned profiles."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctguard.missing import Missing
from ctguard.sources.agents import (
    DEFAULT_MANAGED_KEYS,
    KubeProxy,
    Process,
    TunedConf,
    TunedProfile,
    TunedSysctl,
    find_kube_proxy,
    merge_tuned_sysctls,
    parse_ps,
    parse_tuned_conf,
    read_tuned,
)

EXAMPLE = Path(__file__).parents[2] / "examples" / "rhel6-table-full"
MAX = "net.netfilter.nf_conntrack_max"
ESTABLISHED = "net.netfilter.nf_conntrack_tcp_timeout_established"
CLOSE_WAIT = "net.netfilter.nf_conntrack_tcp_timeout_close_wait"
UDP = "net.netfilter.nf_conntrack_udp_timeout"
UDP_STREAM = "net.netfilter.nf_conntrack_udp_timeout_stream"
BE_LIBERAL = "net.netfilter.nf_conntrack_tcp_be_liberal"

# `ps -eo pid,args` on a kubeadm node (procps-ng 3.3.17).
KUBE_NODE_PS = """\
    PID COMMAND
      1 /sbin/init
      2 [kthreadd]
    812 /usr/bin/containerd
   1034 /usr/bin/kubelet --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml
   1290 /usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id 5f0c3d0e9a1b -address /run/containerd/containerd.sock
   1402 /usr/local/bin/kube-proxy --config=/var/lib/kube-proxy/config.conf --hostname-override=node-3
   7710 grep --color=auto kube-proxy
"""  # noqa: E501


def kube_proxy(args: str) -> KubeProxy:
    found = find_kube_proxy([Process(4242, args)])
    assert found is not None
    return found


# -- parse_ps ------------------------------------------------------------------------------
def test_ps_kube_node():
    processes = parse_ps(KUBE_NODE_PS)
    assert [p.pid for p in processes] == [1, 2, 812, 1034, 1290, 1402, 7710]
    assert processes[1] == Process(2, "[kthreadd]")
    assert processes[5] == Process(
        1402,
        "/usr/local/bin/kube-proxy --config=/var/lib/kube-proxy/config.conf "
        "--hostname-override=node-3",
    )


def test_ps_example_host():
    processes = parse_ps((EXAMPLE / "ctguard_commands/ps").read_text())
    assert len(processes) == 20
    assert processes[0] == Process(1, "/sbin/init")
    assert processes[-1] == Process(4476, "ps -eo pid,args")
    assert find_kube_proxy(processes) is None


@pytest.mark.parametrize(
    "line",
    ["", "    PID COMMAND", "  PID COMMAND", "1402", "  1402   ", "abc /sbin/init",
     "-1 /sbin/init", "0x10 /sbin/init", "12345678901 /sbin/init", "ps: bad -o argument"],
)  # fmt: skip
def test_ps_skips_lines_without_pid_and_command(line):
    assert parse_ps(line + "\n   77 /usr/sbin/sshd -D\n") == (Process(77, "/usr/sbin/sshd -D"),)


def test_ps_keeps_inner_spaces_and_strips_line_ends():
    assert parse_ps("  9 sshd: ops@pts/0  \r\n") == (Process(9, "sshd: ops@pts/0"),)


# -- find_kube_proxy -----------------------------------------------------------------------
def test_find_kube_proxy_on_a_node():
    found = find_kube_proxy(parse_ps(KUBE_NODE_PS))
    assert found == KubeProxy(
        1402,
        "/usr/local/bin/kube-proxy --config=/var/lib/kube-proxy/config.conf "
        "--hostname-override=node-3",
        {"config": "/var/lib/kube-proxy/config.conf", "hostname-override": "node-3"},
        "/var/lib/kube-proxy/config.conf",
    )


@pytest.mark.parametrize(
    "args",
    [
        "kube-proxy --v=2",
        "/usr/local/bin/kube-proxy --v=2",
        "/hyperkube kube-proxy --v=2",
        "/usr/bin/hyperkube proxy --v=2",
    ],
)
def test_find_kube_proxy_program_forms(args):
    found = find_kube_proxy([Process(1, "/sbin/init"), Process(88, args)])
    assert found is not None
    assert (found.pid, found.flags) == (88, {"v": "2"})


@pytest.mark.parametrize(
    "args",
    [
        "grep --color=auto kube-proxy",
        "/bin/sh -c /usr/local/bin/kube-proxy --v=2",
        "/usr/local/bin/kube-proxy-agent --v=2",
        "/usr/bin/hyperkube kubelet --v=2",
        "hyperkube",
        "[kube-proxy]",
    ],
)
def test_find_kube_proxy_ignores_other_programs(args):
    assert find_kube_proxy([Process(5, args)]) is None


def test_find_kube_proxy_takes_the_first():
    found = find_kube_proxy([Process(10, "kube-proxy --v=1"), Process(11, "kube-proxy --v=4")])
    assert found is not None
    assert found.pid == 10


@pytest.mark.parametrize(
    ("args", "flags"),
    [
        ("--conntrack-max-per-core=0", {"conntrack-max-per-core": "0"}),
        ("--conntrack-max-per-core 0 --v=2", {"conntrack-max-per-core": "0", "v": "2"}),
        ("--oom-score-adj -999", {"oom-score-adj": "-999"}),
        ("--masquerade-all --v=2", {"masquerade-all": "true", "v": "2"}),
        ("--conntrack-tcp-be-liberal --proxy-mode ipvs",
         {"conntrack-tcp-be-liberal": "true", "proxy-mode": "ipvs"}),
        ("--conntrack-tcp-be-liberal=false", {"conntrack-tcp-be-liberal": "false"}),
        ("--conntrack_max_per_core=8", {"conntrack-max-per-core": "8"}),
        ("--cleanup-iptables --v", {"cleanup-iptables": "true", "v": "true"}),
        ("-v=4 stray --", {"v": "4"}),
        ("--config /etc/kube-proxy.yaml", {"config": "/etc/kube-proxy.yaml"}),
    ],
)  # fmt: skip
def test_kube_proxy_flags(args, flags):
    assert dict(kube_proxy(f"/usr/local/bin/kube-proxy {args}").flags) == flags


# -- managed_keys --------------------------------------------------------------------------
def test_managed_keys_defaults():
    assert kube_proxy("kube-proxy --kubeconfig=/var/lib/kube-proxy/kubeconfig").managed_keys() == (
        MAX,
        ESTABLISHED,
        CLOSE_WAIT,
    )
    assert DEFAULT_MANAGED_KEYS == (MAX, ESTABLISHED, CLOSE_WAIT)


@pytest.mark.parametrize(
    ("flags", "keys"),
    [
        ("--conntrack-max-per-core=0", (ESTABLISHED, CLOSE_WAIT)),
        ("--conntrack-max-per-core=0 --conntrack-min=262144", (ESTABLISHED, CLOSE_WAIT)),
        ("--conntrack-max-per-core=65536", (MAX, ESTABLISHED, CLOSE_WAIT)),
        ("--conntrack-max-per-core=-1", (ESTABLISHED, CLOSE_WAIT)),
        ("--conntrack-max-per-core=lots", (MAX, ESTABLISHED, CLOSE_WAIT)),  # never "free"
        ("--conntrack-max-per-core=0 --conntrack-max=1048576", (MAX, ESTABLISHED, CLOSE_WAIT)),
        ("--conntrack-tcp-timeout-established=0", (MAX, CLOSE_WAIT)),
        ("--conntrack-tcp-timeout-established=0s", (MAX, CLOSE_WAIT)),
        ("--conntrack-tcp-timeout-established=0h0m0s", (MAX, CLOSE_WAIT)),
        ("--conntrack-tcp-timeout-established=-1s", (MAX, CLOSE_WAIT)),
        ("--conntrack-tcp-timeout-established=2h0m0s", (MAX, ESTABLISHED, CLOSE_WAIT)),
        ("--conntrack-tcp-timeout-established=0.5s", (MAX, ESTABLISHED, CLOSE_WAIT)),
        ("--conntrack-tcp-timeout-close-wait=0s", (MAX, ESTABLISHED)),
        ("--conntrack-tcp-timeout-close-wait=1m", (MAX, ESTABLISHED, CLOSE_WAIT)),
        ("--conntrack-udp-timeout=30s", (MAX, ESTABLISHED, CLOSE_WAIT, UDP)),
        ("--conntrack-udp-timeout=0s", (MAX, ESTABLISHED, CLOSE_WAIT)),
        ("--conntrack-udp-timeout-stream=2m0s", (MAX, ESTABLISHED, CLOSE_WAIT, UDP_STREAM)),
        ("--conntrack-udp-timeout-stream=0", (MAX, ESTABLISHED, CLOSE_WAIT)),
        ("--conntrack-tcp-be-liberal", (MAX, ESTABLISHED, CLOSE_WAIT, BE_LIBERAL)),
        ("--conntrack-tcp-be-liberal=true", (MAX, ESTABLISHED, CLOSE_WAIT, BE_LIBERAL)),
        ("--conntrack-tcp-be-liberal=false", (MAX, ESTABLISHED, CLOSE_WAIT)),
        ("--conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0 "
         "--conntrack-tcp-timeout-close-wait=0", ()),
    ],
)  # fmt: skip
def test_managed_keys_from_flags(flags, keys):
    assert kube_proxy(f"/usr/local/bin/kube-proxy {flags}").managed_keys() == keys


def test_managed_keys_with_config_file_are_the_defaults():
    # kube-proxy loads the file over its flag values: the file's defaults are the same.
    assert kube_proxy("kube-proxy --config=/var/lib/kube-proxy/config.conf").managed_keys() == (
        MAX,
        ESTABLISHED,
        CLOSE_WAIT,
    )
    with_flags = kube_proxy("kube-proxy --config=/etc/kp.yaml --conntrack-max-per-core=0")
    assert with_flags.managed_keys() == (MAX, ESTABLISHED, CLOSE_WAIT)


# -- flag_for ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "flag", "field"),
    [
        (MAX, "--conntrack-max-per-core", "conntrack.maxPerCore"),
        ("net/netfilter/nf_conntrack_max", "--conntrack-max-per-core", "conntrack.maxPerCore"),
        ("net.nf_conntrack_max", "--conntrack-max-per-core", "conntrack.maxPerCore"),
        ("net.ipv4.netfilter.ip_conntrack_max", "--conntrack-max-per-core",
         "conntrack.maxPerCore"),
        ("net.netfilter.nf_conntrack_buckets", "--conntrack-max-per-core",
         "conntrack.maxPerCore"),
        (ESTABLISHED, "--conntrack-tcp-timeout-established", "conntrack.tcpEstablishedTimeout"),
        ("net.ipv4.netfilter.ip_conntrack_tcp_timeout_established",
         "--conntrack-tcp-timeout-established", "conntrack.tcpEstablishedTimeout"),
        (CLOSE_WAIT, "--conntrack-tcp-timeout-close-wait", "conntrack.tcpCloseWaitTimeout"),
        (UDP, "--conntrack-udp-timeout", "conntrack.udpTimeout"),
        (UDP_STREAM, "--conntrack-udp-timeout-stream", "conntrack.udpStreamTimeout"),
        (BE_LIBERAL, "--conntrack-tcp-be-liberal", "conntrack.tcpBeLiberal"),
    ],
)  # fmt: skip
def test_flag_for(key, flag, field):
    assert kube_proxy("kube-proxy --v=2").flag_for(key) == flag
    assert kube_proxy("kube-proxy --config=/etc/kp.yaml").flag_for(key) == field


def test_flag_for_a_key_kube_proxy_does_not_own():
    key = "net.netfilter.nf_conntrack_tcp_timeout_time_wait"
    assert kube_proxy("kube-proxy").flag_for(key) == "kube-proxy flags"
    assert kube_proxy("kube-proxy --config=/x").flag_for(key) == "the kube-proxy configuration"


def test_every_managed_key_has_its_own_flag():
    every = kube_proxy(
        "kube-proxy --conntrack-udp-timeout=30s --conntrack-udp-timeout-stream=2m "
        "--conntrack-tcp-be-liberal"
    )
    flags = [every.flag_for(key) for key in every.managed_keys()]
    assert len(flags) == 6
    assert all(flag.startswith("--conntrack-") for flag in flags)
    assert len(set(flags)) == 6


# -- tuned ---------------------------------------------------------------------------------
# /usr/lib/tuned/throughput-performance/tuned.conf (tuned 2.21, trimmed)
THROUGHPUT = """\
#
# tuned configuration
#

[main]
summary=Broadly applicable tuning that provides excellent performance across a variety of common server workloads

[variables]
thunderx_cpuinfo_regex=CPU part\\s+:\\s+(0x0?516)|(0x0?af)|(0x0?a[0-3])|(0x0?b8)\\b

[cpu]
governor=performance
energy_perf_bias=performance
min_perf_pct=100

[sysctl]
# If a workload mostly uses anonymous memory and it hits this limit, the entire
# working set is buffered for I/O, and any more write buffering would require
# swapping, so it's time to throttle writes until I/O can catch up.
vm.dirty_ratio = 40
vm.dirty_background_ratio = 10
vm.swappiness=10
"""  # noqa: E501

K8S_NODE = """\
[main]
summary=Kubernetes nodes: big conntrack table
include=throughput-performance

[sysctl]
net.netfilter.nf_conntrack_max = 1048576   # INC0051234
net.netfilter.nf_conntrack_tcp_timeout_established="7440"
vm.swappiness=1
reapply_sysctl=1
"""


def test_parse_tuned_conf():
    conf = parse_tuned_conf(K8S_NODE, "/etc/tuned/k8s-node/tuned.conf")
    assert conf.includes == ("throughput-performance",)
    assert conf.sections["sysctl"][MAX] == TunedSysctl(
        MAX,
        "1048576",
        "/etc/tuned/k8s-node/tuned.conf",
        6,
        "net.netfilter.nf_conntrack_max = 1048576   # INC0051234",
    )
    assert conf.sections["sysctl"][ESTABLISHED].value == "7440"
    assert conf.sections["main"]["summary"].value == "Kubernetes nodes: big conntrack table"


@pytest.mark.parametrize(
    ("include", "names"),
    [
        ("include=a", ("a",)),
        ("include = a, b;c", ("a", "b", "c")),
        ("include=", ()),
        ("include=${f:virt_check:virtual-guest:throughput-performance}",
         ("${f:virt_check:virtual-guest:throughput-performance}",)),
    ],
)  # fmt: skip
def test_parse_tuned_includes(include, names):
    assert parse_tuned_conf(f"[main]\n{include}\n", "/x").includes == names


def test_parse_tuned_skips_lines_tuned_rejects():
    text = (
        "vm.swappiness=5\n"  # before any section
        "[sysctl\n[sysctl]\nno equals sign\n=1\n; comment\nkernel.pid_max=4194304\n"
    )
    conf = parse_tuned_conf(text, "/x")
    assert list(conf.sections) == ["sysctl"]
    assert [(o.key, o.line) for o in conf.sections["sysctl"].values()] == [("kernel.pid_max", 7)]


def test_read_tuned_not_in_use(host):
    assert read_tuned(host) == Missing("tuned not in use")


def test_read_tuned_empty_active_profile(host, write):
    write("/etc/tuned/active_profile", "\n")
    result = read_tuned(host)
    assert isinstance(result, Missing)
    assert result.reason.startswith("tuned not in use")


def test_read_tuned_profile_not_found(host, write):
    write("/etc/tuned/active_profile", "k8s-node\n")
    result = read_tuned(host)
    assert isinstance(result, Missing)
    assert "k8s-node" in result.reason
    assert "/usr/lib/tuned" in result.reason


def test_read_tuned_include_first_then_own_lines(host, write):
    write("/etc/tuned/active_profile", "k8s-node\n")
    write("/usr/lib/tuned/throughput-performance/tuned.conf", THROUGHPUT)
    write("/etc/tuned/k8s-node/tuned.conf", K8S_NODE)
    profile = read_tuned(host)
    assert isinstance(profile, TunedProfile)
    assert profile.name == "k8s-node"
    found = {s.key: (s.value, s.path, s.line) for s in profile.sysctls}
    assert found == {
        "vm.dirty_ratio": ("40", "/usr/lib/tuned/throughput-performance/tuned.conf", 20),
        "vm.dirty_background_ratio": ("10", "/usr/lib/tuned/throughput-performance/tuned.conf", 21),
        "vm.swappiness": ("1", "/etc/tuned/k8s-node/tuned.conf", 8),  # own line overrides
        MAX: ("1048576", "/etc/tuned/k8s-node/tuned.conf", 6),
        ESTABLISHED: ("7440", "/etc/tuned/k8s-node/tuned.conf", 7),
    }


def test_read_tuned_etc_overrides_usr_lib(host, write):
    write("/etc/tuned/active_profile", "throughput-performance\n")
    write("/usr/lib/tuned/throughput-performance/tuned.conf", THROUGHPUT)
    write(
        "/etc/tuned/throughput-performance/tuned.conf",
        "[sysctl]\nnet.netfilter.nf_conntrack_max=1\n",
    )
    profile = read_tuned(host)
    assert isinstance(profile, TunedProfile)
    assert [(s.key, s.path) for s in profile.sysctls] == [
        (MAX, "/etc/tuned/throughput-performance/tuned.conf")
    ]


def test_read_tuned_customised_profile_includes_the_stock_one_of_the_same_name(host, write):
    # tuned skips files already loaded, so /etc/tuned/X may include=X to extend stock X.
    write("/etc/tuned/active_profile", "throughput-performance")
    write("/usr/lib/tuned/throughput-performance/tuned.conf", THROUGHPUT)
    write(
        "/etc/tuned/throughput-performance/tuned.conf",
        "[main]\ninclude=throughput-performance\n[sysctl]\nnet.netfilter.nf_conntrack_max=524288\n",
    )
    profile = read_tuned(host)
    assert isinstance(profile, TunedProfile)
    assert {s.key: s.value for s in profile.sysctls} == {
        "vm.dirty_ratio": "40",
        "vm.dirty_background_ratio": "10",
        "vm.swappiness": "10",
        MAX: "524288",
    }


def test_read_tuned_newer_profiles_directory(host, write):
    write("/etc/tuned/active_profile", "k8s-node\n")
    write("/usr/lib/tuned/profiles/throughput-performance/tuned.conf", THROUGHPUT)
    write("/etc/tuned/profiles/k8s-node/tuned.conf", K8S_NODE)
    profile = read_tuned(host)
    assert isinstance(profile, TunedProfile)
    assert {s.key: s.path for s in profile.sysctls}[
        MAX
    ] == "/etc/tuned/profiles/k8s-node/tuned.conf"
    assert len(profile.sysctls) == 5


def test_read_tuned_several_active_profiles_merge_in_order(host, write):
    write("/etc/tuned/active_profile", "throughput-performance k8s-conntrack\n")
    write("/usr/lib/tuned/throughput-performance/tuned.conf", THROUGHPUT)
    write("/etc/tuned/k8s-conntrack/tuned.conf", "[sysctl]\nvm.swappiness=0\n" + f"{MAX}=262144\n")
    profile = read_tuned(host)
    assert isinstance(profile, TunedProfile)
    assert profile.name == "throughput-performance k8s-conntrack"
    values = {s.key: s.value for s in profile.sysctls}
    assert (values["vm.swappiness"], values[MAX]) == ("0", "262144")


def test_read_tuned_follows_a_long_include_chain(host, write):
    """tuned has no include depth limit (a file is read once): all 8 levels count, and the
    missing p8 is named as a profile tuned cannot find."""
    write("/etc/tuned/active_profile", "p0\n")
    for level in range(8):
        write(
            f"/etc/tuned/p{level}/tuned.conf",
            f"[main]\ninclude=p{level + 1}\n[sysctl]\nkernel.level{level}={level}\n",
        )
    profile = read_tuned(host)
    assert isinstance(profile, TunedProfile)
    assert sorted(s.key for s in profile.sysctls) == [f"kernel.level{n}" for n in range(8)]
    assert len(profile.unread) == 1
    assert profile.unread[0].startswith("/etc/tuned/p7/tuned.conf:2: include p8: not found in")


def test_read_tuned_include_cycle_ends(host, write):
    write("/etc/tuned/active_profile", "a\n")
    write("/etc/tuned/a/tuned.conf", "[main]\ninclude=b\n[sysctl]\nkernel.a=1\n")
    write("/etc/tuned/b/tuned.conf", "[main]\ninclude=a\n[sysctl]\nkernel.b=1\n")
    profile = read_tuned(host)
    assert isinstance(profile, TunedProfile)
    assert {s.key for s in profile.sysctls} == {"kernel.a", "kernel.b"}


def test_read_tuned_unsafe_profile_name_is_not_followed(host, write):
    write("/etc/tuned/active_profile", "../../../etc/evil\n")
    write("/etc/evil/tuned.conf", "[sysctl]\nnet.netfilter.nf_conntrack_max=1\n")
    assert isinstance(read_tuned(host), Missing)


def test_read_tuned_unreadable_active_profile(host, tmp_path):
    (tmp_path / "etc/tuned/active_profile").mkdir(parents=True)
    result = read_tuned(host)
    assert isinstance(result, Missing)
    assert "/etc/tuned/active_profile" in result.reason


def conf(path: str, text: str) -> TunedConf:
    return parse_tuned_conf(text, path)


def test_merge_sysctl_unit_by_type_and_enabled():
    merged = merge_tuned_sysctls(
        [
            conf("/a", "[net]\ntype=sysctl\nnet.netfilter.nf_conntrack_max=1\n"),
            conf("/b", "[off]\ntype=sysctl\nenabled=false\nkernel.off=1\n"),
            conf("/c", "[vm]\ntype=vm\ntransparent_hugepages=never\n"),
            conf("/d", "[variables]\nkernel.not_a_sysctl=1\n"),
        ]
    )
    assert [(s.key, s.path) for s in merged] == [(MAX, "/a")]


def test_merge_replace_drops_the_parent_unit():
    merged = merge_tuned_sysctls(
        [
            conf("/usr/lib/tuned/base/tuned.conf", "[sysctl]\nvm.swappiness=10\nkernel.x=1\n"),
            conf("/etc/tuned/child/tuned.conf", "[sysctl]\nreplace=1\nvm.swappiness=1\n"),
        ]
    )
    assert [(s.key, s.value) for s in merged] == [("vm.swappiness", "1")]


def test_merge_keeps_only_sysctl_keys():
    merged = merge_tuned_sysctls(
        [conf("/x", "[sysctl]\ndevices=sda\npriority=10\nreapply_sysctl=1\nfs.file-max=1\n")]
    )
    assert [s.key for s in merged] == ["fs.file-max"]


# -- no input makes a parser raise ---------------------------------------------------------
_WORDS = st.sampled_from(
    [
        "kube-proxy", "/usr/local/bin/kube-proxy", "hyperkube", "proxy", "--config", "--config=",
        "--conntrack-max-per-core=0", "--conntrack-max-per-core", "--conntrack-min", "0", "0s",
        "-1s", "24h0m0s", "1.5h", ".s", "9" * 40, "--conntrack-tcp-timeout-established=",
        "--conntrack-udp-timeout", "--conntrack-tcp-be-liberal", "true", "-", "--", "=", "1402",
        "PID", "COMMAND", "[main]", "[sysctl]", "include=", "type=sysctl", "replace=1",
        "net.netfilter.nf_conntrack_max=", "#", ";", "\u00b5s", "\x00", "\u00e9",
    ]
)  # fmt: skip
_NEAR = st.lists(st.tuples(_WORDS, st.sampled_from([" ", "", "\n", "\t", "\r\n"])),
                 max_size=50).map(lambda pairs: "".join(w + s for w, s in pairs))  # fmt: skip
_DECODED = st.binary(max_size=500).map(lambda b: b.decode("utf-8", errors="replace"))
_ANY_TEXT = st.one_of(st.text(), _DECODED, _NEAR)


@settings(max_examples=300, deadline=None)
@given(text=_ANY_TEXT)
def test_ps_and_kube_proxy_never_raise(text):
    processes = parse_ps(text)
    assert all(isinstance(p, Process) and p.args == p.args.strip() for p in processes)
    found = find_kube_proxy(processes)
    prefixed = find_kube_proxy([Process(1, "kube-proxy " + text.replace("\n", " "))])
    for proxy in (found, prefixed):
        if proxy is not None:
            keys = proxy.managed_keys()
            assert set(keys) <= {MAX, ESTABLISHED, CLOSE_WAIT, UDP, UDP_STREAM, BE_LIBERAL}
            assert all(proxy.flag_for(key) for key in keys)
    assert prefixed is not None


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(_ANY_TEXT, max_size=3))
def test_tuned_parse_and_merge_never_raise(texts):
    confs = [parse_tuned_conf(text, f"/etc/tuned/p{n}/tuned.conf") for n, text in enumerate(texts)]
    for sysctl in merge_tuned_sysctls(confs):
        assert "." in sysctl.key or "/" in sysctl.key
        assert sysctl.line >= 1
