"""Scrape cost of `ctguard exporter` (issue 18), each figure beside a baseline measured in the
same run.

latency    median and p90 of --scrapes scrapes of `ctguard exporter` and of node_exporter
           running only its conntrack collector (`prometheus-node-exporter
           --collector.disable-defaults --collector.conntrack`), both on 127.0.0.1, warmed up,
           scraped alternately, a fresh connection each (wsgiref answers one request per
           connection, so both get the same), with the headers Prometheus sends (gzip,
           OpenMetrics first). Target: ctguard's median <= 1.5x node_exporter's.
rss        VmRSS of both servers after 500 and after --rss-scrapes (1,000) scrapes (warm-up
           included). Target: ctguard <= 60 MB, and <= 1 MB more than at 500 (no growth).
flat       ctguard exporter inside an empty namespace and inside one holding --entries
           (262,144, or nf_conntrack_max if smaller; `conntrack -R`), each scraped from
           inside its namespace (`ip netns exec NS python3 bench/exporter.py --scrape-loop`),
           --runs batches alternately. Target: full / empty median <= 1.2x. No ct rule is
           added, so the scrape connections are not tracked.
netns-all  `ctguard exporter --netns all` with --namespaces (50) namespaces of 3 entries
           each, beside the same exporter without --netns. Target: median <= 100 ms.
           Prints "skipped" when this ctguard has no --netns all.

Every answer is checked too: ctguard and node_exporter must agree on nf_conntrack_max, a
namespace's exporter must report the entries `conntrack -C` counts, and --netns all must
report each bench namespace's entries; a wrong answer makes the figure VOID. Each target
prints PASS, FAIL, SKIP or VOID; the exit status is 1 on a FAIL or a VOID.

    python3 bench/exporter.py [--scrapes 300] [--runs 3] [--only latency,rss,flat,netns-all]
                              [--json] [--ctguard PATH]

Root only; every server started here is stopped, every namespace deleted.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.client
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from full_netns import count_entries, fill, full_netns, why_not

PREFIX = "ctg-bench-exp"
LATENCY_RATIO = 1.5
RSS_MB = 60.0
RSS_GROWTH_MB = 1.0  # allocator noise; a leak of a few KB per scrape shows over 500
FLAT_RATIO = 1.2
NETNS_ALL_MS = 100.0
INSIDE_PORT = 9659  # a fresh namespace has nothing listening
PART_NAMES = ("latency", "rss", "flat", "netns-all")
VENV_CTGUARD = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "ctguard"
# what Prometheus 2.42 (Debian 12) sends: OpenMetrics first (neither exporter serves it
# here: node_exporter's is off by default, ctguard serves the text format), gzip
HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}
SAMPLE_DURATION = re.compile(rb"^ctguard_scrape_duration_seconds (\S+)", re.MULTILINE)
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)", re.MULTILINE)


# -- the client: also what runs inside a namespace as --scrape-loop ------------------------


def scrape(port: int) -> tuple[float, bytes]:
    """(milliseconds for connect, request and the whole body, the body unpacked)."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/metrics", headers=HEADERS)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    ms = (time.perf_counter() - start) * 1000
    if response.status != 200:
        raise RuntimeError(f"127.0.0.1:{port}/metrics answered {response.status}")
    if response.getheader("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return ms, body


def wait_ready(port: int, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def samples(body: bytes) -> dict[str, float]:
    """``name{labels}`` -> value of every sample of an exposition."""
    text = body.decode()
    return {m[1]: float(m[2]) for m in SAMPLE.finditer(text) if not m[1].startswith("#")}


def scrape_loop(port: int, scrapes: int, warmup: int) -> dict[str, object]:
    wait_ready(port)
    for _ in range(warmup):
        scrape(port)
    times, body = [], b""
    for _ in range(scrapes):
        ms, body = scrape(port)
        times.append(ms)
    return {"ms": times, "samples": samples(body)}


# -- servers -----------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    stderr: IO[bytes]  # a file: a pipe nobody reads could fill and stop the server
    ms: list[float] = field(default_factory=list)
    scrapes: int = 0
    rss_at: dict[int, float] = field(default_factory=dict)  # scrapes -> VmRSS MB
    last: bytes = b""
    sample_ms: list[float] = field(default_factory=list)  # ctguard_scrape_duration_seconds

    def scrape(self, checkpoints: tuple[int, ...] = ()) -> float:
        ms, self.last = scrape(self.port)
        self.scrapes += 1
        if took := SAMPLE_DURATION.search(self.last):
            self.sample_ms.append(float(took[1]) * 1000)
        if self.scrapes in checkpoints:
            self.rss_at[self.scrapes] = vm_rss_mb(self.proc.pid)
        return ms


def vm_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no VmRSS for pid {pid}")


@contextmanager
def serving(name: str, argv: list[str], port: int) -> Iterator[Server]:
    """``argv`` running until the block ends, then stopped: terminate, wait, kill."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        try:
            yield Server(name, proc, port, err)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def ready(server: Server, within: float = 30.0) -> None:
    """Wait until ``server`` listens; exit with its stderr if it stops or never does."""
    deadline = time.monotonic() + within
    while server.proc.poll() is None and time.monotonic() < deadline:
        try:
            wait_ready(server.port, within=0.5)
            return
        except OSError:
            continue
    server.stderr.seek(0)
    err = server.stderr.read().decode(errors="replace").strip()[-2000:]
    sys.exit(f"{server.name} did not listen on 127.0.0.1:{server.port}: {err}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def median_p90(ms: list[float]) -> tuple[float, float]:
    return statistics.median(ms), statistics.quantiles(ms, n=10)[8]


# -- the four parts ----------------------------------------------------------------------


@dataclass
class Result:
    target: str
    figure: str
    ok: bool | None  # None: skipped or void
    data: dict[str, object]


def alternate(servers: list[Server], rounds: int, checkpoints: tuple[int, ...] = ()) -> None:
    """``rounds`` scrapes of each server, in turn, the order swapped every round."""
    for i in range(rounds):
        for server in servers if i % 2 == 0 else servers[::-1]:
            server.ms.append(server.scrape(checkpoints))


def latency_and_rss(
    ctguard: str, node_exporter: str, args: argparse.Namespace, parts: set[str]
) -> list[Result]:
    cp, np_ = free_port(), free_port()
    ct_argv = [ctguard, "exporter", "--listen", f"127.0.0.1:{cp}"]
    ne_argv = [
        node_exporter,
        "--collector.disable-defaults",
        "--collector.conntrack",
        f"--web.listen-address=127.0.0.1:{np_}",
    ]
    half = args.rss_scrapes // 2
    checkpoints = (half, args.rss_scrapes)
    with (
        serving("ctguard exporter", ct_argv, cp) as ct,
        serving("node_exporter", ne_argv, np_) as ne,
    ):
        ready(ct)
        ready(ne)
        alternate([ct, ne], args.warmup, checkpoints)  # the first scrape runs the doctor
        ct.ms.clear()
        ne.ms.clear()
        scrapes = args.scrapes if "latency" in parts else 0
        alternate([ct, ne], scrapes, checkpoints)
        reading = statistics.median(ct.sample_ms[-scrapes:]) if scrapes else 0.0
        ct_limit = samples(ct.last).get("ctguard_conntrack_max")
        ne_limit = samples(ne.last).get("node_nf_conntrack_entries_limit")
        if "rss" in parts:
            alternate([ct, ne], max(0, args.rss_scrapes - ct.scrapes), checkpoints)
            hwm = vm_hwm_mb(ct.proc.pid)
    results = []
    agree = ct_limit is not None and ct_limit == ne_limit
    answer = f"nf_conntrack_max: ctguard {ct_limit}, node_exporter {ne_limit}"
    if "latency" in parts:
        ct_med, ct_p90 = median_p90(ct.ms)
        ne_med, ne_p90 = median_p90(ne.ms)
        ratio = ct_med / ne_med
        print(f"latency: {args.scrapes} scrapes each, alternating, fresh connection, gzip")
        print(f"  node_exporter (conntrack only)  median {ne_med:6.2f} ms  p90 {ne_p90:6.2f} ms")
        print(
            f"  ctguard exporter                median {ct_med:6.2f} ms  p90 {ct_p90:6.2f} ms"
            f"   {ratio:.2f}x (p90 {ct_p90 / ne_p90:.2f}x)"
        )
        print(f"    of which reading the host (ctguard_scrape_duration_seconds) {reading:.2f} ms")
        print(f"  answers: {answer}{'' if agree else ': DIFFER, benchmark void'}")
        results.append(
            Result(
                f"scrape median <= {LATENCY_RATIO}x node_exporter's",
                f"{ct_med:.2f} ms / {ne_med:.2f} ms = {ratio:.2f}x",
                ratio <= LATENCY_RATIO if agree else None,
                {
                    "ctguard_ms": {"median": ct_med, "p90": ct_p90},
                    "node_exporter_ms": {"median": ne_med, "p90": ne_p90},
                    "ratio": ratio,
                    "p90_ratio": ct_p90 / ne_p90,
                    "ctguard_sample_ms_median": reading,
                    "scrapes": args.scrapes,
                    "max_agrees": agree,
                },
            )
        )
    if "rss" in parts:
        at_half, at_end = ct.rss_at[half], ct.rss_at[args.rss_scrapes]
        growth = at_end - at_half
        ne_half, ne_end = ne.rss_at[half], ne.rss_at[args.rss_scrapes]
        print(f"rss: VmRSS after {half:,} and {args.rss_scrapes:,} scrapes")
        print(
            f"  node_exporter     {ne_half:6.1f} MB  {ne_end:6.1f} MB  ({ne_end - ne_half:+.2f} MB)"
        )
        print(
            f"  ctguard exporter  {at_half:6.1f} MB  {at_end:6.1f} MB  ({growth:+.2f} MB);"
            f" peak {hwm:.1f} MB; {at_end / ne_end:.2f}x node_exporter"
        )
        results.append(
            Result(
                f"RSS <= {RSS_MB:.0f} MB after {args.rss_scrapes:,} scrapes",
                f"{at_end:.1f} MB",
                at_end <= RSS_MB,
                {"at_half_mb": at_half, "at_end_mb": at_end, "peak_mb": hwm,
                 "node_exporter_mb": [ne_half, ne_end]},
            )
        )  # fmt: skip
        results.append(
            Result(
                f"no RSS growth over the last {args.rss_scrapes - half:,} (<= {RSS_GROWTH_MB} MB)",
                f"{growth:+.2f} MB",
                growth <= RSS_GROWTH_MB,
                {"growth_mb": growth, "node_exporter_growth_mb": ne_end - ne_half},
            )
        )
    return results


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def loop_inside(inside: list[str], scrapes: int, warmup: int) -> dict[str, object]:
    """This script's --scrape-loop run inside a namespace: its timings and last samples."""
    argv = [*inside, sys.executable, __file__, "--scrape-loop", "--port", str(INSIDE_PORT)]
    argv += ["--scrapes", str(scrapes), "--warmup", str(warmup)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
    if done.returncode:
        sys.exit(f"scrape loop in {inside[3]} failed: {done.stderr.strip()[-2000:]}")
    loaded: dict[str, object] = json.loads(done.stdout)
    return loaded


def flat(ctguard: str, args: argparse.Namespace) -> list[Result]:
    with (
        full_netns(f"{PREFIX}-empty", 0) as empty,
        full_netns(f"{PREFIX}-full", args.entries) as full,
    ):
        print(f"flat: {empty.describe()}")
        print(f"      {full.describe()}")
        argv = [ctguard, "exporter", "--listen", f"127.0.0.1:{INSIDE_PORT}"]
        ms: dict[str, list[float]] = {"empty": [], "full": []}
        reported: dict[str, object] = {}
        with (
            serving("ctguard exporter (empty)", [*empty.inside, *argv], INSIDE_PORT),
            serving("ctguard exporter (full)", [*full.inside, *argv], INSIDE_PORT),
        ):
            spaces = [("empty", empty.inside), ("full", full.inside)]
            per_run = max(1, args.scrapes // args.runs)
            for run in range(args.runs):
                for label, inside in spaces if run % 2 == 0 else spaces[::-1]:
                    got = loop_inside(inside, per_run, args.warmup if run < 2 else 5)
                    ms[label] += got["ms"]  # type: ignore[arg-type]
                    reported[label] = got["samples"]
        counts = {"empty": count_entries(empty.inside), "full": count_entries(full.inside)}
    shown = {label: s.get("ctguard_conntrack_entries") for label, s in reported.items()}  # type: ignore[attr-defined]
    right = all(shown[k] == counts[k] for k in counts)
    e_med, e_p90 = median_p90(ms["empty"])
    f_med, f_p90 = median_p90(ms["full"])
    ratio = f_med / e_med
    full_count = counts["full"]
    print(f"  {len(ms['empty'])} scrapes each, from inside, {args.runs} alternating batches")
    print(f"  empty namespace                 median {e_med:6.2f} ms  p90 {e_p90:6.2f} ms")
    print(
        f"  {f'{full_count:,} entries':<30}  median {f_med:6.2f} ms  p90 {f_p90:6.2f} ms"
        f"   {ratio:.2f}x (p90 {f_p90 / e_p90:.2f}x)"
    )
    print(
        f"  answers: exporter says {shown}, conntrack -C {counts}"
        f"{'' if right else ': DIFFER, benchmark void'}"
    )
    return [
        Result(
            f"scrape time flat in table size (full / empty <= {FLAT_RATIO}x)",
            f"{f_med:.2f} ms / {e_med:.2f} ms = {ratio:.2f}x at {full_count:,} entries",
            ratio <= FLAT_RATIO if right else None,
            {"empty_ms": {"median": e_med, "p90": e_p90},
             "full_ms": {"median": f_med, "p90": f_p90},
             "ratio": ratio, "entries": full_count, "answers_right": right},
        )
    ]  # fmt: skip


@contextmanager
def many_netns(count: int, entries: int) -> Iterator[list[str]]:
    """``count`` namespaces named PREFIX-<hex>-<i>, each with ``entries`` entries."""
    tag = secrets.token_hex(3)
    names: list[str] = []
    try:
        for i in range(count):
            name = f"{PREFIX}-{tag}-{i:02d}"
            subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
            names.append(name)
            inside = ["ip", "netns", "exec", name]
            subprocess.run([*inside, "ip", "link", "set", "lo", "up"], check=True, timeout=30)
            fill(inside, entries, PREFIX)
        yield names
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], check=False, timeout=60)


def entries_of(name: str, per_label: dict[str, float]) -> float | None:
    """The entries --netns all reports for the namespace ``name``, whether its netns label
    is the name or shows the namespace's inode (net:[4026532...])."""
    if name in per_label:
        return per_label[name]
    try:
        inode = str(os.stat(f"/run/netns/{name}").st_ino)
    except OSError:
        return None
    found = [v for label, v in per_label.items() if re.search(rf"\b{inode}\b", label)]
    return found[0] if len(found) == 1 else None


def netns_all(ctguard: str, args: argparse.Namespace) -> list[Result]:
    target = f"--netns all with {args.namespaces} namespaces: median <= {NETNS_ALL_MS:.0f} ms"
    helptext = subprocess.run(
        [ctguard, "exporter", "--help"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    if "--netns" not in helptext:
        print("netns-all: skipped: this ctguard has no --netns all")
        return [Result(target, "skipped: this ctguard has no --netns all", None, {})]
    per_ns = 3
    with many_netns(args.namespaces, per_ns) as names:
        ap, bp = free_port(), free_port()
        all_argv = [ctguard, "exporter", "--netns", "all", "--listen", f"127.0.0.1:{ap}"]
        if "--max-netns" in helptext:  # room for every namespace on the machine
            all_argv += ["--max-netns", str(4 * args.namespaces)]
        one_argv = [ctguard, "exporter", "--listen", f"127.0.0.1:{bp}"]
        with (
            serving("ctguard exporter --netns all", all_argv, ap) as every,
            serving("ctguard exporter", one_argv, bp) as one,
        ):
            ready(every)
            ready(one)
            alternate([every, one], args.warmup)
            every.ms.clear()
            one.ms.clear()
            alternate([every, one], args.scrapes)
            found = samples(every.last)
        per_label = {}
        for key, value in found.items():
            if key.startswith("ctguard_conntrack_entries{"):
                label = re.search(r'netns="([^"]*)"', key)
                if label:
                    per_label[label[1]] = value
        seen = [entries_of(name, per_label) for name in names]  # before they are deleted
    right = all(value == per_ns for value in seen)
    a_med, a_p90 = median_p90(every.ms)
    o_med, o_p90 = median_p90(one.ms)
    print(f"netns-all: {args.namespaces} namespaces of {per_ns} entries, {args.scrapes} scrapes")
    print(f"  ctguard exporter                median {o_med:6.2f} ms  p90 {o_p90:6.2f} ms")
    print(
        f"  ctguard exporter --netns all    median {a_med:6.2f} ms  p90 {a_p90:6.2f} ms"
        f"   {a_med / o_med:.2f}x"
    )
    print(
        f"  answers: {sum(v == per_ns for v in seen)} of {len(names)} bench namespaces with"
        f" ctguard_conntrack_entries {per_ns} ({len(per_label)} namespaces in all)"
        f"{'' if right else ': WRONG, benchmark void'}"
    )
    return [
        Result(
            target,
            f"{a_med:.2f} ms (p90 {a_p90:.2f}; {a_med / o_med:.2f}x one namespace)",
            a_med <= NETNS_ALL_MS if right else None,
            {"netns_all_ms": {"median": a_med, "p90": a_p90},
             "one_ms": {"median": o_med, "p90": o_p90}, "answers_right": right},
        )
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=300, help="timed scrapes per server")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rss-scrapes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3, help="alternating batches (flat)")
    parser.add_argument("--entries", type=int, default=262_144)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--only", default=",".join(PART_NAMES), help="parts, comma-separated")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--ctguard", help="the ctguard to run (default: .venv's, else PATH)")
    parser.add_argument("--scrape-loop", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=INSIDE_PORT, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scrape_loop:  # run by flat() inside a namespace
        print(json.dumps(scrape_loop(args.port, args.scrapes, args.warmup)))
        return 0
    parts = set(args.only.split(","))
    if parts - set(PART_NAMES):
        parser.error(f"--only: parts are {', '.join(PART_NAMES)}")
    why = why_not()
    if why:
        sys.exit(f"bench/exporter.py: {why}")
    ctguard = args.ctguard or (
        str(VENV_CTGUARD) if VENV_CTGUARD.exists() else shutil.which("ctguard")
    )
    node_exporter = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if ctguard is None:
        sys.exit("ctguard is not installed (bash scripts/install)")
    if node_exporter is None and parts & {"latency", "rss"}:
        sys.exit("node_exporter is not installed (EXTRAS=test bash scripts/install)")

    out = sys.stderr if args.json else sys.stdout
    results: list[Result] = []
    with contextlib.redirect_stdout(out):
        print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, nice {os.nice(0)}")
        if parts & {"latency", "rss"}:
            assert node_exporter is not None
            results += latency_and_rss(ctguard, node_exporter, args, parts)
        if "flat" in parts:
            results += flat(ctguard, args)
        if "netns-all" in parts:
            results += netns_all(ctguard, args)
        print(f"load {os.getloadavg()[0]:.2f}")
        print()
        width = max(len(r.target) for r in results)
        figures = max(len(r.figure) for r in results)
        for r in results:
            print(f"{r.target:<{width}}  {r.figure:<{figures}}  {verdict(r)}")
    if args.json:
        print(json.dumps([{"target": r.target, "figure": r.figure, "verdict": verdict(r), **r.data}
                          for r in results], indent=2))  # fmt: skip
    return 1 if any(verdict(r) in ("FAIL", "VOID") for r in results) else 0


def verdict(result: Result) -> str:
    """PASS, FAIL, SKIP (the option is not there) or VOID (a wrong answer: no figure)."""
    if result.ok is None:
        return "SKIP" if result.figure.startswith("skipped") else "VOID"
    return "PASS" if result.ok else "FAIL"


if __name__ == "__main__":
    raise SystemExit(main())
