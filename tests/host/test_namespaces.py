"""Network namespace enumeration over a fake /proc tree and a fake /run/netns."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ctguard.host import namespaces
from ctguard.host.namespaces import (
    Namespace,
    NamespaceUsage,
    Process,
    build_namespaces,
    container_id,
    holder_text,
    list_namespaces,
    namespace_usage,
    pod_uid,
)
from ctguard.sources.sysctl_runtime import read_count

HEX = "3f2a9c1b7d0e" + "0123456789abcdef" * 3 + "0123"  # 64 hex chars
INIT = 4026531840
NSFS_DEV = 4
TMPFS_DEV = 25


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"12:memory:/docker/{HEX}\n11:pids:/docker/{HEX}\n", "3f2a9c1b7d0e"),
        (f"0::/system.slice/docker-{HEX}.scope\n", "3f2a9c1b7d0e"),
        (f"0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-{HEX}.scope\n", "3f2a9c1b7d0e"),
        (f"0::/kubepods.slice/kubepods-burstable.slice/crio-{HEX}.scope\n", "3f2a9c1b7d0e"),
        (f"0::/machine.slice/libpod-{HEX}.scope/container\n", "3f2a9c1b7d0e"),
        # the kubelet's cgroupfs driver: the bare id under the pod's directory (the CentOS path
        # quoted with test_pod_uid's), also as seen from a private cgroup namespace
        (
            "4:cpuset:/kubepods/besteffort/pod762f2fe7-8a9d-450a-81e7-88094fc057d0/557a3158f637"
            "c3021ecba8450ee945570bdb66876922afafa5dd6e0b35131f71\n",
            "557a3158f637",
        ),
        (f"0::/../../besteffort/pod762f2fe7-8a9d-450a-81e7-88094fc057d0/{HEX}\n", "3f2a9c1b7d0e"),
        (f"0::/machine.slice/libpod-conmon-{HEX}.scope\n", None),  # the monitor, on the host
        (f"0::/system.slice/crio-conmon-{HEX}.scope\n", None),
        ("0::/user.slice/user-1000.slice/session-2.scope\n", None),
        ("4:memory:/process_api/59b8e611577f2dffb4100618bea367be\n0::/\n", None),
        (f"0::/docker-{HEX[:40]}.scope\n", None),  # too short to be an id
        ("", None),
    ],
)
def test_container_id(text, expected):
    assert container_id(text) == expected


# Cgroup paths of Kubernetes pods as observed on real nodes, quoted in a public GPU-exporter
# helper (Go, tkestack.io/nvml; comments "ubuntu 20.04" systemd driver and "centos" cgroupfs
# driver) and in the kubelet's own naming (pod<UID>, "_" for "-" under systemd). The
# expected UID is the pod's metadata.uid as `kubectl get pod -o jsonpath={.metadata.uid}`
# prints it: always dashed.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
            "dc380811_8168_4a9e_9b4a_56ded1b6fe9c.slice/docker-fa7f0ec4fbcbb70c69565a5b2d2699"
            "26e04ec5601dff59235199d6e60198e95c.scope\n",
            "dc380811-8168-4a9e-9b4a-56ded1b6fe9c",
        ),
        (
            "4:cpuset:/kubepods/besteffort/pod762f2fe7-8a9d-450a-81e7-88094fc057d0/557a3158f637"
            "c3021ecba8450ee945570bdb66876922afafa5dd6e0b35131f71\n",
            "762f2fe7-8a9d-450a-81e7-88094fc057d0",
        ),
        (  # Guaranteed QoS: no QoS level in the path
            "4:cpuset:/kubepods/pod8a0412cb-ae87-4bd5-b49d-690fd86f942e/6497d9f440dad7c3d432100a"
            "b3c5e895831549467d81eeef176bdec12da43fd9\n",
            "8a0412cb-ae87-4bd5-b49d-690fd86f942e",
        ),
        (  # the pod's own slice, before any container scope
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
            "05b3ee07_a2bd_47e7_9599_7961201f20dd.slice\n",
            "05b3ee07-a2bd-47e7-9599-7961201f20dd",
        ),
        (  # containerd on cgroup v2 with a private cgroup namespace: a relative path
            "0::/../../burstable/pod05b3ee07-a2bd-47e7-9599-7961201f20dd/" + "e" * 64 + "\n",
            "05b3ee07-a2bd-47e7-9599-7961201f20dd",
        ),
        # plain Docker and the host: no pod
        (
            "0::/system.slice/docker-293f758723d0652a0b9fa869106e600079e56dae362ca84de12942d38524"
            "a272.scope\n",
            None,
        ),
        ("0::/\n", None),
        # a "pod" word outside kubepods is not a pod UID
        ("0::/system.slice/pod0a1b2c3d-0000-0000-0000-000000000000.service\n", None),
    ],
)
def test_pod_uid(text, expected):
    assert pod_uid(text) == expected


def test_holder_text_prefers_initial_then_name_then_process():
    nginx = Process(900, "nginx", "3f2a9c1b7d0e")
    assert holder_text(("a",), nginx, initial=True) == "initial namespace"
    assert holder_text(("a", "b"), nginx, initial=False) == "netns a, b"
    assert holder_text((), nginx, initial=False) == "pid 900 nginx, container 3f2a9c1b7d0e"
    assert holder_text((), Process(5, "", None), initial=False) == "pid 5"
    assert holder_text((), None, initial=False) == "no process"


def test_build_merges_names_and_processes_by_inode():
    pids = {1: INIT, 2: INIT, 300: 7001, 40: 7002, 41: 7002, 42: 7003, 50: 7005}
    names = {"web1": 7001, "alias": 7001, "idle": 7004, "cni-0d2f": 7005}
    uid = "dc380811-8168-4a9e-9b4a-56ded1b6fe9c"
    procs = {
        40: Process(40, "sh", None),
        41: Process(41, "nginx", "3f2a9c1b7d0e"),
        42: Process(42, "sleep", None),
        50: Process(50, "pause", "57a3158f637c", uid),
        300: Process(300, "sleep", None),
    }
    got = build_namespaces(pids, names, INIT, procs.get, "/p", "/n")
    assert got == [
        Namespace(INIT, (), (1, 2), "initial namespace", "/p/1/ns/net", True),
        Namespace(7001, ("alias", "web1"), (300,), "netns alias, web1", "/n/alias", False),
        # the container's process is the holder, though a lower pid joined it
        Namespace(
            7002,
            (),
            (40, 41),
            "pid 41 nginx, container 3f2a9c1b7d0e",
            "/p/40/ns/net",
            False,
            container="3f2a9c1b7d0e",
        ),
        Namespace(7003, (), (42,), "pid 42 sleep", "/p/42/ns/net", False),
        Namespace(7004, ("idle",), (), "netns idle", "/n/idle", False),
        # a pod's namespace named by CNI: the name is the holder, its pause container and
        # pod still label it
        Namespace(
            7005,
            ("cni-0d2f",),
            (50,),
            "netns cni-0d2f",
            "/n/cni-0d2f",
            False,
            container="57a3158f637c",
            pod=uid,
        ),
    ]


def test_build_skips_exited_holders_and_bounds_pids():
    pids = {pid: 7001 for pid in range(100, 200)}
    procs = {150: Process(150, "late", None)}  # the lower ones exited after their link
    (ns,) = build_namespaces(pids, {}, None, procs.get)
    assert ns.pids == tuple(range(100, 164))
    assert ns.holder == "pid 150 late"
    assert ns.path == "/proc/100/ns/net"
    assert not ns.initial
    (gone,) = build_namespaces({7: 7001}, {}, None, {}.get)
    assert gone.holder == "no process"


def test_initial_namespace_need_not_be_the_lowest_inode():
    got = build_namespaces({1: 9, 5: 3}, {}, 9, {}.get)
    assert [(ns.inode, ns.initial) for ns in got] == [(9, True), (3, False)]


# -- a fake /proc and /run/netns ---------------------------------------------------------


def add_process(proc: Path, pid: int | str, inode: int | None, comm="sleep", cgroup="0::/\n"):
    d = proc / str(pid)
    (d / "ns").mkdir(parents=True)
    if inode is not None:  # readlink works on a dangling link: nsfs links look like this
        (d / "ns" / "net").symlink_to(f"net:[{inode}]")
    if comm is not None:
        (d / "comm").write_text(comm + "\n")
    if cgroup is not None:
        (d / "cgroup").write_text(cgroup)


def fake_stat(inodes: dict[str, tuple[int, int]]):
    """os.stat for paths in ``inodes`` ((dev, ino)); ENOENT for every other path."""

    def stat(path: str) -> os.stat_result:
        if path not in inodes:
            raise FileNotFoundError(2, "No such file or directory", path)
        dev, ino = inodes[path]
        return os.stat_result((0o100444, ino, dev, 1, 0, 0, 0, 0, 0, 0))

    return stat


@pytest.fixture
def host(tmp_path: Path):
    proc = tmp_path / "proc"
    netns = tmp_path / "netns"
    netns.mkdir()
    add_process(proc, 1, INIT, comm="systemd")
    add_process(proc, 2, INIT, comm="kthreadd")
    add_process(proc, 812, INIT, comm="dockerd", cgroup="0::/system.slice/docker.service\n")
    # a docker container: its init and a worker
    add_process(
        proc, 1500, 4026532300, comm="nginx", cgroup=f"0::/system.slice/docker-{HEX}.scope\n"
    )
    add_process(
        proc, 1501, 4026532300, comm="nginx", cgroup=f"0::/system.slice/docker-{HEX}.scope\n"
    )
    # `unshare --net sleep 60`: held by a process only
    add_process(proc, 2000, 4026532400, comm="sleep")
    # `ip netns exec web1 sleep 60`: shares a named namespace
    add_process(proc, 2100, 4026532177, comm="sleep")
    # vanished: the directory is there but the link is gone, or comm went away
    add_process(proc, 2200, None)
    add_process(proc, 2300, 4026532500, comm=None, cgroup=None)
    (proc / "self").mkdir()
    (proc / "sys").mkdir()  # not a pid
    for name in ("web1", "db", "stale"):
        (netns / name).write_text("")
    stat = fake_stat(
        {
            f"{proc}/self/ns/net": (NSFS_DEV, INIT),
            f"{netns}/web1": (NSFS_DEV, 4026532177),
            f"{netns}/db": (NSFS_DEV, 4026532233),
            # left behind by a crashed `ip netns add`: a plain file, not a mount
            f"{netns}/stale": (TMPFS_DEV, 812345),
        }
    )
    return str(proc), str(netns), stat


def test_list_namespaces_over_fake_tree(host):
    proc, netns, stat = host
    got = {ns.inode: ns for ns in list_namespaces(proc, netns, stat=stat)}
    assert list(got) == [INIT, 4026532177, 4026532233, 4026532300, 4026532400, 4026532500]
    assert got[INIT] == Namespace(
        INIT, (), (1, 2, 812), "initial namespace", f"{proc}/1/ns/net", True
    )
    assert got[4026532177] == Namespace(
        4026532177, ("web1",), (2100,), "netns web1", f"{netns}/web1", False
    )
    assert got[4026532233] == Namespace(4026532233, ("db",), (), "netns db", f"{netns}/db", False)
    assert got[4026532300].pids == (1500, 1501)
    assert got[4026532300].holder == "pid 1500 nginx, container 3f2a9c1b7d0e"
    assert got[4026532300].path == f"{proc}/1500/ns/net"
    assert got[4026532400].holder == "pid 2000 sleep"
    assert got[4026532500].holder == "no process"  # its comm vanished after the link was read
    assert not any(ns.initial for ns in got.values() if ns.inode != INIT)


def test_unreadable_pid_1_falls_back_to_kthreadd(host):
    proc, netns, stat = host
    (Path(proc) / "1" / "ns" / "net").unlink()  # as in sandboxes where root gets EACCES
    got = list_namespaces(proc, netns, stat=stat)
    assert got[0].initial
    assert got[0].inode == INIT
    assert got[0].pids == (2, 812)


def test_names_without_nsfs_device_are_skipped(host):
    proc, netns, stat = host

    def no_self(path: str) -> os.stat_result:
        if path.endswith("/self/ns/net"):
            raise PermissionError(13, "Permission denied", path)
        return stat(path)

    got = list_namespaces(proc, netns, stat=no_self)
    assert all(not ns.names for ns in got)  # cannot tell a mount from a stale file


def test_absent_dirs_list_nothing(tmp_path):
    assert list_namespaces(str(tmp_path / "noproc"), str(tmp_path / "nonetns")) == []


# -- usage -------------------------------------------------------------------------------


def ns(inode: int, *, initial: bool = False, names=(), pids=(7,)) -> Namespace:
    path = f"/run/netns/{names[0]}" if names else f"/proc/{pids[0]}/ns/net"
    return Namespace(inode, tuple(names), tuple(pids), "x", path, initial)


def test_share():
    u = NamespaceUsage(ns(1), 25, "", 200)
    assert u.share() == 12.5
    assert u.share(100) == 25.0
    assert u.share(0) is None
    assert NamespaceUsage(ns(1), None, "gone", 200).share() is None
    assert NamespaceUsage(ns(1), 5).share() is None  # no max known


def test_usage_sorted_by_count_unknown_last(monkeypatch):
    counts = {1: (10, ""), 2: (None, "gone"), 3: (30, ""), 4: (10, ""), 5: (None, "slow")}
    monkeypatch.setattr(namespaces, "_usage", lambda n, own, count, timeout: counts[n.inode])
    got = namespace_usage([ns(i) for i in (5, 4, 3, 2, 1)], 100, read_count)
    assert [(u.namespace.inode, u.count, u.error) for u in got] == [
        (3, 30, ""),
        (1, 10, ""),
        (4, 10, ""),
        (2, None, "gone"),
        (5, None, "slow"),
    ]
    assert got[0].share() == 30.0


def test_usage_time_budget(monkeypatch):
    got = namespace_usage([ns(1), ns(2)], 100, read_count, total=0)
    assert [u.error for u in got] == ["skipped: time budget of 0 s spent"] * 2
    assert all(u.count is None for u in got)


def test_usage_without_root(monkeypatch):
    monkeypatch.setattr(namespaces.os, "geteuid", lambda: 1000)
    own = os.stat("/proc/self/ns/net").st_ino
    got = namespace_usage([ns(own, initial=True), ns(own + 1, names=("web1",))], 1000, lambda: 42)
    assert [(u.count, u.error) for u in got] == [(42, ""), (None, "needs root (setns)")]


def test_usage_of_vanished_namespace_is_a_value(tmp_path, monkeypatch):
    monkeypatch.setattr(namespaces.os, "geteuid", lambda: 0)
    missing = Namespace(1, (), (999999999,), "pid 999999999", str(tmp_path / "gone"), False)
    (u,) = namespace_usage([missing], 100, read_count)
    assert u.count is None
    assert "vanished" in u.error
    assert str(tmp_path / "gone") in u.error
