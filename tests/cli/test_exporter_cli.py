"""`ctguard exporter`: the metrics of fixture roots as an operator reads them, checked
against the roots' own files (computed here), promtool, HTTP serving and the textfile."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ctguard.cli import main
from ctguard.output import metric_names as names
from ctguard.output.metrics_http import serve_until_signal
from ctguard.usecases.exporter_textfile import TEXTFILE_NAME, write_textfile
from helpers import assert_one_line_error, ctguard_bin, run_ctguard

ROOTS = Path(__file__).parents[1] / "roots"
PROCFS_ROOTS = ("modern-builtin", "doctor/ct301-later-file-wins", "rhel6-modular")
# the kernel's stat-file header words, as the metric names spell them
RENAMED = {"clashres": "clash_resolve", "chainlength": "chaintoolong", "icmp_error": "error"}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> tuple[Samples, dict[str, str]]:
    """(name, sorted labels) -> value, and metric family -> type."""
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, types


def once(root: str) -> tuple[Samples, dict[str, str], str]:
    done = run_ctguard("exporter", "--once", "--root", str(ROOTS / root))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return (*parse(done.stdout), done.stdout)


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def stat_sums(root: str) -> dict[str, int]:
    """The root's /proc/net/stat/nf_conntrack summed over its CPU lines, by column."""
    lines = (ROOTS / root / "proc/net/stat/nf_conntrack").read_text().split("\n")
    header = [RENAMED.get(h, h) for h in lines[0].split()]
    sums = dict.fromkeys(header, 0)
    for line in filter(str.strip, lines[1:]):
        for column, cell in zip(header, line.split(), strict=True):
            sums[column] += int(cell, 16)
    return sums


def sysctl(root: str, name: str) -> int:
    return int((ROOTS / root / "proc/sys/net/netfilter" / name).read_text())


@pytest.mark.parametrize("root", PROCFS_ROOTS)
def test_counters_are_the_per_cpu_sums_of_the_stat_file(root: str) -> None:
    samples, types, _ = once(root)
    sums = stat_sums(root)
    shown = [c for c in names.STAT_COLUMNS if c in sums]
    assert {"drop", "early_drop", "insert_failed", "invalid"} <= set(shown)
    for column in shown:
        metric = f"ctguard_conntrack_stat_{column}"
        assert types[metric] == "counter", column
        assert value(samples, metric + "_total") == sums[column], column
    assert value(samples, names.STATS_SOURCE, source="procfs") == 1
    assert value(samples, names.STATS_SOURCE, source="netlink") == 0
    assert value(samples, names.ENTRIES) == sysctl(root, "nf_conntrack_count")
    assert value(samples, names.MAX) == sysctl(root, "nf_conntrack_max")
    assert value(samples, names.BUCKETS) == sysctl(root, "nf_conntrack_buckets")
    established = sysctl(root, "nf_conntrack_tcp_timeout_established")
    timeout = value(samples, names.TIMEOUT_SECONDS, timeout="tcp_timeout_established")
    assert timeout == established


def test_a_column_the_source_lacks_is_absent_not_zero() -> None:
    # `conntrack -S` (the netlink reading) has no `ignore`; the stat file is missing
    samples, _, _ = once("no-procfs-stats")
    assert value(samples, names.STATS_SOURCE, source="netlink") == 1
    assert value(samples, names.STATS_SOURCE, source="procfs") == 0
    text = (ROOTS / "no-procfs-stats/ctguard_commands/conntrack-S").read_text()
    drops = sum(int(t.split("=")[1]) for t in text.split() if t.startswith("drop="))
    assert value(samples, "ctguard_conntrack_stat_drop_total") == drops > 0
    assert value(samples, "ctguard_conntrack_stat_ignore_total") is None


def test_memory_is_the_models_figure_for_a_256_byte_entry() -> None:
    # modern-builtin (tests/roots/README.md): slab 256 B, no extension, 262144 max and
    # buckets, 48213 entries, MemTotal 8137624 kB
    samples, _, _ = once("modern-builtin")
    assert value(samples, names.MEMORY_BYTES) == 48213 * 256 + 262144 * 8
    assert value(samples, names.FULL_MEMORY_BYTES) == 262144 * 256 + 262144 * 8
    ratio = value(samples, names.FULL_MEMORY_RATIO)
    assert ratio == pytest.approx((262144 * 264) / (8137624 * 1024))


def test_drift_is_1_for_the_keys_a_later_file_reset() -> None:
    # ct301-later-file-wins: the files configure max 1048576 and established 86400, the
    # kernel runs 262144 and 432000; time_wait 30 is in effect
    samples, _, _ = once("doctor/ct301-later-file-wins")
    drift = names.SETTING_DRIFT
    assert value(samples, drift, key="net.netfilter.nf_conntrack_max") == 1
    assert value(samples, drift, key="net.netfilter.nf_conntrack_tcp_timeout_established") == 1
    assert value(samples, drift, key="net.netfilter.nf_conntrack_tcp_timeout_time_wait") == 0
    assert value(samples, names.FINDING, id="CT301", severity="warning") == 1


def test_no_drift_and_no_warning_where_the_files_are_in_effect() -> None:
    samples, _, _ = once("modern-builtin")
    drifts = [v for (n, _), v in samples.items() if n == names.SETTING_DRIFT]
    assert drifts and not any(drifts)
    severities = {dict(labels)["severity"] for (n, labels) in samples if n == names.FINDING}
    assert severities <= {"info"}  # nothing pages on a healthy host


def test_an_unreadable_source_is_a_metric_not_a_failed_scrape() -> None:
    samples, _, _ = once("garbage-stat")
    assert value(samples, names.SOURCE_UP, source="stats") == 0
    assert value(samples, names.SOURCE_UP, source="sysctls") == 1
    assert value(samples, names.STATS_SOURCE, source="none") == 1
    assert not [n for (n, _) in samples if n.startswith("ctguard_conntrack_stat_")]
    assert value(samples, names.ENTRIES) == 48213  # the sysctl still reads


def test_not_loaded_exports_no_table_numbers() -> None:
    samples, _, _ = once("not-loaded")
    assert value(samples, names.ENTRIES) is None
    assert value(samples, names.MAX) is None
    assert value(samples, names.STATS_SOURCE, source="none") == 1
    assert value(samples, names.BUILD_INFO, version=__import__("ctguard").__version__) == 1


def test_every_name_is_in_the_contract() -> None:
    for root in (*PROCFS_ROOTS, "no-procfs-stats", "garbage-stat", "not-loaded"):
        samples, _, _ = once(root)
        assert {n for (n, _) in samples} <= set(names.ALL), root


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus)")
@pytest.mark.parametrize("root", [*PROCFS_ROOTS, "no-procfs-stats", "garbage-stat", "not-loaded"])
def test_promtool_check_metrics_is_clean(root: str) -> None:
    _, _, text = once(root)
    done = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout + done.stderr == ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_listen_serves_metrics_over_http_and_stops() -> None:
    port = free_port()
    argv = [ctguard_bin(), "exporter", "--root", str(ROOTS / "modern-builtin")]
    server = subprocess.Popen(
        [*argv, "--listen", f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        body = b""
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    assert r.status == 200
                    body = r.read()
                break
            except OSError:
                time.sleep(0.1)
        samples, _ = parse(body.decode())
        assert value(samples, names.MAX) == 262144
        # a second scrape reads again (no background loop, nothing stale); asked for
        # OpenMetrics first, as Prometheus asks, it gets the text format all the same
        openmetrics_first = urllib.request.Request(
            f"http://127.0.0.1:{port}/metrics",
            headers={"Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"},
        )
        with urllib.request.urlopen(openmetrics_first, timeout=5) as r:  # noqa: S310 - http
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            again = r.read().decode()
        assert "# EOF" not in again
        assert parse(again)[0].keys() == samples.keys()
    finally:
        server.terminate()
        _, err = server.communicate(timeout=10)
    assert b"Traceback" not in err
    assert server.returncode == 128 + 15  # stopped by SIGTERM, as main() reports it


def test_a_client_that_connects_and_says_nothing_holds_up_no_scrape() -> None:
    """Requests are read as they arrive and answered once whole: clients (anyone who can
    reach the port) that say nothing, or half a request, must not stall the scrapes."""
    port = free_port()
    argv = [ctguard_bin(), "exporter", "--root", str(ROOTS / "modern-builtin")]
    server = subprocess.Popen(
        [*argv, "--listen", f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    idle = []
    try:
        for _ in range(100):  # wait until it listens
            try:
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
                break
            except OSError:
                time.sleep(0.1)
        idle.extend(socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(7))
        for conn in idle[4:]:  # these begin a request and never finish it
            conn.sendall(b"GET /metr")
        for _ in range(3):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                assert r.status == 200 and names.MAX.encode() in r.read()
    finally:
        for conn in idle:
            conn.close()
        server.terminate()
        _, err = server.communicate(timeout=10)
    assert b"Traceback" not in err


def test_only_metrics_is_served_and_gzip_when_asked() -> None:
    port = free_port()
    argv = [ctguard_bin(), "exporter", "--root", str(ROOTS / "modern-builtin")]
    server = subprocess.Popen(
        [*argv, "--listen", f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        for _ in range(100):  # wait until it listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
                break
            except OSError:
                time.sleep(0.1)
        asked = urllib.request.Request(
            f"http://127.0.0.1:{port}/metrics", headers={"Accept-Encoding": "gzip"}
        )
        with urllib.request.urlopen(asked, timeout=5) as r:  # noqa: S310 - http, built here
            assert r.headers["Content-Encoding"] == "gzip"
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert names.MAX.encode() in gzip.decompress(r.read())
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=5)
        assert missing.value.code == 404
    finally:
        server.terminate()
        _, err = server.communicate(timeout=10)
    assert b"Traceback" not in err


def test_a_port_in_use_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_ctguard(
            "exporter", "--root", str(ROOTS / "modern-builtin"), "--listen", f"127.0.0.1:{port}"
        )
    assert_one_line_error(done, f"127.0.0.1:{port}", "in use")


@pytest.mark.parametrize("listen", ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "a:b"])
def test_a_bad_listen_address_is_one_line(listen: str) -> None:
    done = run_ctguard(
        "exporter", "--once", "--root", str(ROOTS / "modern-builtin"), "--listen", listen
    )
    assert_one_line_error(done, "--listen")


def test_live_without_root_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["exporter", "--once"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs root" in err[0], err


def test_textfile_replaces_the_file_whole(tmp_path: Path) -> None:
    (tmp_path / TEXTFILE_NAME).write_text("old\n")
    done = run_ctguard(
        "exporter", "--root", str(ROOTS / "modern-builtin"), "--textfile", str(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert [p.name for p in tmp_path.iterdir()] == [TEXTFILE_NAME]  # no temporary file left
    samples, _ = parse((tmp_path / TEXTFILE_NAME).read_text())
    assert value(samples, names.MAX) == 262144
    assert (tmp_path / TEXTFILE_NAME).stat().st_mode & 0o777 == 0o644


def test_textfile_a_failed_write_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / TEXTFILE_NAME).write_text("old\n")

    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(Exception, match="No space left"):
        write_textfile(str(tmp_path), b"new\n")
    assert (tmp_path / TEXTFILE_NAME).read_text() == "old\n"  # readers saw old, never half
    assert [p.name for p in tmp_path.iterdir()] == [TEXTFILE_NAME]


def test_textfile_on_a_read_only_directory_is_one_line(tmp_path: Path) -> None:
    target = tmp_path / "ro"
    target.mkdir()
    argv = [ctguard_bin(), "exporter", "--root", str(ROOTS / "modern-builtin")]
    argv += ["--textfile", str(target)]
    if os.geteuid() == 0:  # root writes through modes: a read-only mount, in its own namespace
        if shutil.which("unshare") is None:
            pytest.skip("unshare is needed to make a read-only mount as root")
        script = 'mount --bind -o ro "$1" "$1" && shift && exec "$@"'
        argv = ["unshare", "--mount", "sh", "-c", script, "sh", str(target), *argv]
    else:
        target.chmod(0o555)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert_one_line_error(done, "--textfile", "Read-only file system" if os.geteuid() == 0 else "")
    assert list(target.iterdir()) == []


def test_timeouts_are_the_flow_timeouts_of_the_root() -> None:
    """Every nf_conntrack_*timeout* file of the snapshot but events_retry_timeout (how soon
    a lost event is sent again: no entry lives by it)."""
    root = "../../examples/rhel6-table-full"
    samples, _, _ = once(root)
    files = sorted((ROOTS / root / "proc/sys/net/netfilter").glob("nf_conntrack_*timeout*"))
    expected = {
        f.name.removeprefix("nf_conntrack_"): int(f.read_text())
        for f in files
        if f.name != "nf_conntrack_events_retry_timeout"
    }
    assert "tcp_timeout_established" in expected and len(files) == len(expected) + 1
    shown = {
        dict(labels)["timeout"]: v
        for (name, labels), v in samples.items()
        if name == names.TIMEOUT_SECONDS
    }
    assert shown == expected


class ScrapedWhileSignalled:
    """A server whose one scrape is interrupted by SIGTERM and, as wsgiref's handler does,
    catches whatever the handler raised so as to answer 500."""

    def __init__(self) -> None:
        self.requests = 0
        self.timeout: float | None = None

    def server_close(self) -> None:
        pass

    def handle_request(self) -> None:
        self.requests += 1
        assert self.requests < 50, "still serving after SIGTERM"
        if self.requests == 1:
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)  # the handler runs here, in the middle of the scrape
            except BaseException:  # noqa: S110 - wsgiref's own bare except
                pass


def test_sigterm_in_the_middle_of_a_scrape_stops_the_server() -> None:
    """It did not: the SystemExit the handler raised was swallowed by wsgiref inside the
    scrape, and the exporter served on (left running by the test above, under load)."""
    server = ScrapedWhileSignalled()
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    try:
        with pytest.raises(SystemExit) as stopped:
            serve_until_signal(server)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    assert stopped.value.code == 128 + signal.SIGTERM
    assert server.requests == 1
