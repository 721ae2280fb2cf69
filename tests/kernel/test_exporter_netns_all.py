"""``ctguard exporter --netns all`` against the real kernel: namespaces this test makes, each
with a known number of entries, read from the one thread that joins them (host/netns_thread.py)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ctguard.errors import CtguardError
from ctguard.host import netns_thread
from ctguard.host.namespaces import Namespace, list_namespaces
from ctguard.host.netns_thread import NamespaceThread, thread_netns
from ctguard.usecases.exporter_netns import NamespacesReader, read_here
from helpers import run_ctguard
from netns_helpers import Netns, tracking_netns, why_no_kernel

pytestmark = pytest.mark.kernel

ENTRY = (
    "-I -p tcp -s 127.0.0.2 -d 127.0.0.1 --sport {port} --dport 80"
    " --state ESTABLISHED --status ASSURED,SEEN_REPLY -t 300\n"
)


@pytest.fixture
def two() -> Iterator[tuple[Netns, Netns]]:
    reason = why_no_kernel()
    if reason:
        pytest.skip(reason)
    with ExitStack() as stack:
        a = stack.enter_context(tracking_netns("ctg-exa"))
        b = stack.enter_context(tracking_netns("ctg-exb"))
        a.run("conntrack", "-R", "-", input="".join(ENTRY.format(port=p) for p in range(7)))
        b.run("conntrack", "-R", "-", input=ENTRY.format(port=1))
        yield a, b


def _inode(path: str) -> int:
    return os.stat(path).st_ino


def test_the_thread_reads_inside_and_comes_home(two):
    a, b = two
    home = _inode("/proc/self/ns/net")
    thread = NamespaceThread()
    try:
        seen = thread.run(f"/run/netns/{a.name}", a.name, lambda: _inode(thread_netns()), 5)
        assert seen == _inode(f"/run/netns/{a.name}") != home
        count, stats = thread.run(f"/run/netns/{b.name}", b.name, read_here, 5)
        assert count == 1 and not isinstance(stats, Exception)
        # the caller never left, and the thread serves its next job from home first
        assert _inode(thread_netns()) == home
        assert thread.run("/proc/self/ns/net", "own", lambda: _inode(thread_netns()), 5) == home
    finally:
        thread.close()


def test_a_job_that_fails_or_overruns_fails_that_call_only(two):
    a, _ = two
    thread = NamespaceThread()
    release = threading.Event()
    path = f"/run/netns/{a.name}"
    try:
        with pytest.raises(ZeroDivisionError):
            thread.run(path, a.name, lambda: 1 // 0, 5)
        with pytest.raises(CtguardError, match=f"^{a.name}: no answer within 0.2 s$"):
            thread.run(path, a.name, lambda: release.wait(10), 0.2)
        # a new thread serves the next call while the stuck one still waits
        assert thread.run(path, a.name, lambda: _inode(thread_netns()), 5) == _inode(path)
    finally:
        release.set()
        thread.close()


def test_another_namespace_at_the_listed_path_is_refused(two):
    """A name deleted and made again (or a pid reused) between listing and reading is not
    read under the old namespace's labels."""
    a, b = two
    thread = NamespaceThread()
    try:
        with pytest.raises(CtguardError, match=f"^netns {a.name} changed since it was listed"):
            thread.run(
                f"/run/netns/{a.name}", f"netns {a.name}", lambda: 0, 5,
                inode=_inode(f"/run/netns/{b.name}"),
            )  # fmt: skip
    finally:
        thread.close()


def test_a_namespace_gone_before_it_is_entered_is_one_line():
    thread = NamespaceThread()
    try:
        with pytest.raises(CtguardError, match=r"^netns ghost vanished"):
            thread.run("/run/netns/ctguard-no-such-ns", "netns ghost", lambda: 0, 5)
    finally:
        thread.close()


def _families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def _by_netns(rows: list[tuple[dict[str, str], float]]) -> dict[str, float]:
    return {labels.get("netns", ""): value for labels, value in rows}


def test_exporter_once_labels_each_namespace(two):
    a, b = two
    done = run_ctguard("exporter", "--once", "--netns", "all")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=done.stdout, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    metrics = _families(done.stdout)
    entries = _by_netns(metrics["ctguard_conntrack_entries"])
    assert entries[a.name] == 7 and entries[b.name] == 1
    inserts = _by_netns(metrics["ctguard_conntrack_stat_insert_total"])
    assert inserts[a.name] == 7 and inserts[b.name] == 1
    up = {
        labels["netns"]: value
        for labels, value in metrics["ctguard_source_up"]
        if labels["source"] == "netns"
    }
    assert up[a.name] == up[b.name] == 1
    assert metrics["ctguard_netns_left_out"] == [({}, 0.0)]
    # the host's own series: one per metric, with the netns label empty
    assert "" in entries and len(metrics["ctguard_conntrack_max"]) == 1


def test_max_netns_bounds_what_is_exported_and_counts_the_rest(two):
    done = run_ctguard("exporter", "--once", "--netns", "all", "--max-netns", "1")
    assert done.returncode == 0, done.stderr
    metrics = _families(done.stdout)
    others = [n for n in _by_netns(metrics["ctguard_conntrack_entries"]) if n]
    assert len(others) == 1  # named namespaces come first: one of the machine's named ones
    (found,) = metrics["ctguard_netns_found"]
    (left_out,) = metrics["ctguard_netns_left_out"]
    assert found[1] >= 2 and left_out[1] == found[1] - 1


def test_a_namespace_that_vanishes_mid_scrape_is_down_with_why(two):
    a, _ = two
    doomed = f"ctg-exc-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", doomed], check=True, timeout=30)

    def lister() -> list[Namespace]:
        listed = list_namespaces()  # still there when listed, deleted before it is read
        subprocess.run(["ip", "netns", "del", doomed], check=True, timeout=30)
        return listed

    reader = NamespacesReader(max_netns=1000, lister=lister)
    try:
        sample = reader.sample()
    finally:
        reader.close()
        subprocess.run(["ip", "netns", "del", doomed], check=False, timeout=30)
    by_name = {ns.netns: ns for ns in sample.namespaces}
    assert not by_name[doomed].up
    assert (
        by_name[doomed].error
        == f"netns {doomed} vanished (/run/netns/{doomed}: No such file or directory)"
    )
    assert by_name[a.name].up and by_name[a.name].entries == 7


def test_without_the_right_to_enter_each_call_fails_at_once(two, monkeypatch):
    """setns refused (no CAP_SYS_ADMIN): every call says so at once; none waits out its
    timeout on a thread that was about to retire (a race the first version had)."""
    a, _ = two

    def refused(fd: int) -> None:
        time.sleep(0.001)  # a syscall: the GIL is released, the caller may run meanwhile
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(netns_thread, "enter_netns", refused)
    thread = NamespaceThread()
    errors = []
    try:
        for _ in range(20):
            with pytest.raises(CtguardError) as caught:
                thread.run(f"/run/netns/{a.name}", a.name, lambda: 1, timeout=5)
            errors.append(str(caught.value))
    finally:
        thread.close()
    assert set(errors) == {f"cannot enter {a.name}: Operation not permitted"}


def test_a_name_that_is_not_utf8_is_escaped_not_a_failed_scrape(two):
    name = b'ctg-bad\xff"q'
    subprocess.run([b"ip", b"netns", b"add", name], check=True, timeout=30)
    try:
        done = run_ctguard("exporter", "--once", "--netns", "all")
    finally:
        subprocess.run([b"ip", b"netns", b"del", name], check=True, timeout=30)
    assert done.returncode == 0, done.stderr
    labels = {
        labels.get("netns") for labels, _ in _families(done.stdout)["ctguard_conntrack_entries"]
    }
    assert 'ctg-bad\\xff"q' in labels
