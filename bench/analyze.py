"""Speed and answers of `ctguard analyze` (issue targets below), against baselines run alike.

Offline: a generated dump (bench/gen_dump.py, proc format, 1,000,000 entries, ~180 MB)
is analyzed with every breakdown, `ctguard analyze FILE --format json --by all --top 0`,
RUNS times as a fresh process; beside it, in the same run, the awk/sort pipelines an
operator would run for the same breakdowns, one per breakdown, sequentially (LC_ALL=C,
the faster sort: a conservative baseline), and `cat FILE > /dev/null` (the read floor).
Every breakdown of ctguard's JSON must EQUAL the pipelines' answer, or the benchmark is
void. Targets: <= 1.0 s wall, >= 5x faster than the pipelines' sum, peak RSS <= 400 MB.
Then the same ctguard run on a --big dump (ctguard only) shows how time grows.

Live (root): a fresh namespace filled with min(262144, nf_conntrack_max) entries through
`conntrack -R`; `ctguard analyze --netns NAME --format json` (procfs) must take <= 1.0x
the wall of `ip netns exec NAME conntrack -L > /dev/null`, and `--source netlink` <= 1.5x.
The namespace is always deleted; no sysctl of the initial namespace is written.

--library times the library alone: a fresh process running summarize(scan_path(FILE))
and printing the same JSON shape (the command minus its start-up).

--high-card (issue 17): the same-size dump twice, the usual mix (~7,500 sources) and with
every entry from a source of its own (gen_dump --distinct-sources: 1,000,000 sources),
each analyzed as `ctguard analyze FILE --format json --by all` (the default top 10),
RUNS times, interleaved, so load hits both alike. Targets: high / low wall <= 1.3x and
peak RSS <= 80 MB at high cardinality; `--by protocol` alone no slower at high
cardinality than at low (1.3x); a gzip dump of 100,000 lines whose sources are 15 KB
"addresses" (1.5 GB unpacked) within the same 80 MB. The top 10 sources and the distinct
count must equal a count made here, or the run is void.

    python3 bench/analyze.py [--entries 1000000] [--big 4000000] [--runs 3]
                             [--skip-live] [--skip-offline] [--library] [--high-card]
"""

from __future__ import annotations

import argparse
import gzip
import ipaddress
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from full_netns import full_netns, why_not
from gen_dump import write_dump

REPO = Path(__file__).resolve().parent.parent
THIS = Path(__file__).resolve()
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
VENV_CTGUARD = REPO / ".venv" / "bin" / "ctguard"
TIME = Path("/usr/bin/time")

OFFLINE_TARGET_S = 1.0
RATIO_TARGET = 5.0
RSS_TARGET_MB = 400.0
LIVE_PROCFS_TARGET = 1.0
LIVE_NETLINK_TARGET = 1.5
LIVE_ENTRIES = 262144
SCHEMA = "ctguard.analyze/1"
HIGH_CARD_RATIO_TARGET = 1.3
HIGH_CARD_RSS_TARGET_MB = 80.0

# the histogram labels of the JSON, for ctguard.table.summary.HISTOGRAM_BOUNDS (checked)
BOUNDS = (10, 60, 300, 3600, 86400)
LABELS = ("<=10s", "<=60s", "<=300s", "<=1h", "<=1d", ">1d")

# The baseline: what an operator types, one pipeline per breakdown, on a proc-format dump
# ($1 l3 name, $3 l4 name, $5 the remaining timeout, absent on offloaded entries). Each
# runs as `bash -o pipefail -c PIPELINE baseline FILE`: the file is "$1", never pasted in.
PIPELINES: dict[str, str] = {
    "family": r"""awk '{print $1}' "$1" | sort | uniq -c""",
    "protocol": r"""awk '{print $3}' "$1" | sort | uniq -c""",
    "state": r"""awk '{i = ($5 ~ /^[0-9]+$/) ? 6 : 5
        if ($i !~ /=/ && $i !~ /^\[/) print $3, $i}' "$1" | sort | uniq -c""",
    "dport": r"""awk '{for (i = 5; i <= NF; i++) if ($i ~ /^dport=/) {
        print $3, substr($i, 7); next}}' "$1" | sort | uniq -c""",
    "sport": r"""awk '{for (i = 5; i <= NF; i++) if ($i ~ /^sport=/) {
        print $3, substr($i, 7); next}}' "$1" | sort | uniq -c""",
    "src": r"""awk '{for (i = 5; i <= NF; i++) if ($i ~ /^src=/) {
        print substr($i, 5); next}}' "$1" | sort | uniq -c""",
    "dst": r"""awk '{for (i = 5; i <= NF; i++) if ($i ~ /^dst=/) {
        print substr($i, 5); next}}' "$1" | sort | uniq -c""",
    "zone": r"""awk '{z = 0; for (i = NF; i > 5; i--) if ($i ~ /^zone=/) {
        z = substr($i, 6); break}; print z}' "$1" | sort | uniq -c""",
    "mark": r"""awk '{m = 0; for (i = NF; i > 5; i--) if ($i ~ /^mark=/) {
        m = substr($i, 6); break}; print m}' "$1" | sort | uniq -c""",
    "flags": r"""awk '{for (i = 5; i <= NF; i++) if ($i ~ /^\[/) print $i}' "$1" \
        | sort | uniq -c""",
    # NAT: the reply tuple is not the original one swapped; prints "nat|plain l4 dport"
    "nat": r"""awk '{n = 0; os = od = osp = odp = rs = rd = rsp = rdp = ""
        for (i = 5; i <= NF; i++) {
            k = $i
            if (k ~ /^src=/) { n++; if (n > 2) break
                if (n == 1) os = substr(k, 5); else rs = substr(k, 5) }
            else if (k ~ /^dst=/) {
                if (n == 1 && od == "") od = substr(k, 5)
                else if (n == 2 && rd == "") rd = substr(k, 5) }
            else if (k ~ /^sport=/) {
                if (n == 1 && osp == "") osp = substr(k, 7)
                else if (n == 2 && rsp == "") rsp = substr(k, 7) }
            else if (k ~ /^dport=/) {
                if (n == 1 && odp == "") odp = substr(k, 7)
                else if (n == 2 && rdp == "") rdp = substr(k, 7) }
        }
        tag = (rs != od || rd != os || rsp != odp || rdp != osp) ? "nat" : "plain"
        print tag, $3, (odp == "" ? "-" : odp)}' "$1" | sort | uniq -c""",
    # remaining-timeout histogram per (l4, state); "-" for stateless, "none" when absent
    "timeout": r"""awk '{i = 5; t = -1
        if ($5 ~ /^[0-9]+$/) { t = $5 + 0; i = 6 }
        s = ($i ~ /=/ || $i ~ /^\[/) ? "-" : $i
        if (t < 0) b = "none"
        else if (t <= 10) b = "<=10s"
        else if (t <= 60) b = "<=60s"
        else if (t <= 300) b = "<=300s"
        else if (t <= 3600) b = "<=1h"
        else if (t <= 86400) b = "<=1d"
        else b = ">1d"
        print $3, s, b}' "$1" | sort | uniq -c""",
}


# ---------------------------------------------------------------- timing and memory


def run_timed(
    argv: list[str],
    stdout: int = subprocess.PIPE,
    env: dict[str, str] | None = None,
    rss: bool = False,
    codes: tuple[int, ...] = (0,),
) -> tuple[float, bytes, float | None]:
    """One fresh run: (wall seconds, stdout, peak RSS in MB of its largest process).
    ``codes``: the exit codes expected; on a non-zero one the output is its stderr."""
    wrapped = argv
    report = None
    if rss:
        fd, report = tempfile.mkstemp(prefix="ctguard-bench-rss-")
        os.close(fd)
        if TIME.exists():
            wrapped = [str(TIME), "-f", "%M", "-o", report, *argv]
        else:  # a fresh child whose RUSAGE_CHILDREN is this run only
            wrapped = [sys.executable, str(THIS), "--rusage-child", report, *argv]
    try:
        start = time.perf_counter()
        done = subprocess.run(
            wrapped, stdout=stdout, stderr=subprocess.PIPE, env=env, timeout=1800, check=False
        )
        wall = time.perf_counter() - start
        if done.returncode not in codes:
            sys.exit(f"{' '.join(argv)[:200]} exited {done.returncode}: {done.stderr[-400:]!r}")
        peak = None
        if report is not None:
            text = Path(report).read_text().split()
            peak = int(text[-1]) / 1024 if text else None
        return wall, (done.stdout if done.returncode == 0 else done.stderr) or b"", peak
    finally:
        if report is not None:
            os.unlink(report)


class Wall(float):
    """A median wall time in seconds that remembers the fastest and slowest sample."""

    low: float
    high: float

    @classmethod
    def of(cls, samples: list[float]) -> Wall:
        wall = cls(statistics.median(samples))
        wall.low, wall.high = min(samples), max(samples)
        return wall

    def spread(self) -> str:
        return f"({self.low:.3f}-{self.high:.3f})"


def median_runs(
    argv: list[str],
    runs: int,
    stdout: int = subprocess.PIPE,
    env: dict[str, str] | None = None,
    rss: bool = False,
) -> tuple[Wall, bytes, float | None]:
    """Median wall over ``runs`` fresh runs, the last stdout, the highest peak RSS."""
    walls, out, peaks = [], b"", []
    for _ in range(runs):
        wall, out, peak = run_timed(argv, stdout, env, rss)
        walls.append(wall)
        if peak is not None:
            peaks.append(peak)
    return Wall.of(walls), out, max(peaks) if peaks else None


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                kids = Path(f"/proc/{current}/task/{task}/children").read_text().split()
                todo.extend(int(k) for k in kids)
        except OSError:
            continue
    return pids


def tree_peak_pss(argv: list[str]) -> tuple[float, float]:
    """Peak summed PSS of ``argv`` and its children, sampled every 10 ms, in MB: all of
    it, and its anonymous part (file pages, e.g. an mmapped dump, are page cache the
    kernel can drop). Forked scanners share pages, so PSS, not RSS, is what adds up."""
    peak = peak_anon = 0
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        while proc.poll() is None:
            total = anon = 0
            for pid in _tree(proc.pid):
                try:
                    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
                except OSError:
                    continue
                for line in rollup.splitlines():
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                    elif line.startswith("Pss_Anon:"):
                        anon += int(line.split()[1])
            peak, peak_anon = max(peak, total), max(peak_anon, anon)
            time.sleep(0.01)
    return peak / 1024, peak_anon / 1024


# ---------------------------------------------------------------- answers


Norm = dict[str, Any]


def _ranked(counts: dict[Any, int]) -> list[tuple[Any, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def library_json(path: str) -> dict[str, Any]:
    """What `ctguard analyze PATH --format json --by all --top 0` prints, from the library."""
    from ctguard.table.reader import scan_path
    from ctguard.table.scanner import IMPLEMENTATION
    from ctguard.table.summary import summarize

    tally = scan_path(path)
    s = summarize(tally, top=None)  # every row, as --top 0
    # sports: a dict in older summaries, a ranked list of ((protocol, port), count) now
    sports = s.sports if isinstance(s.sports, list) else _ranked(s.sports)
    return {
        "schema": SCHEMA,
        "source": "file",
        "scanner": IMPLEMENTATION,
        "entries": s.entries,
        "lines": s.lines,
        "bad_lines": {
            "count": s.bad_lines,
            "first_line": s.first_bad_line,
            "first_text": s.first_bad_text,
        },
        "by": {
            "family": [{"family": k, "count": c} for k, c in _ranked(s.families)],
            "protocol": [{"protocol": k, "count": c} for k, c in _ranked(s.protocols)],
            "state": [{"protocol": p, "state": st, "count": c} for (p, st), c in _ranked(s.states)],
            "dport": [
                {"protocol": p, "port": port, "count": c, "nat": s.dports_nat.get((p, port), 0)}
                for (p, port), c in _ranked(s.dports)
            ],
            "sport": [{"protocol": p, "port": port, "count": c} for (p, port), c in sports],
            "src": [{"address": a, "count": c} for a, c in s.sources],
            "dst": [{"address": a, "count": c} for a, c in s.destinations],
            "zone": [{"zone": z, "count": c} for z, c in _ranked(s.zones)],
            "mark": [{"mark": m, "count": c} for m, c in _ranked(s.marks)],
            "flags": {
                "assured": s.assured,
                "unreplied": s.unreplied,
                "offload": s.offloaded - s.hw_offloaded,
                "hw_offload": s.hw_offloaded,
            },
            "nat": {"nated": s.nated, "not_nated": s.entries - s.nated},
            "timeout": [
                {"protocol": p, "state": st or None, "histogram": dict(zip(LABELS, h, strict=True))}
                for (p, st), h in sorted(s.timeouts.items())
            ],
        },
        "no_timeout": s.no_timeout,
        "distinct": {"src": s.distinct_sources, "dst": s.distinct_destinations},
    }


def from_json(report: dict[str, Any]) -> Norm:
    """ctguard's JSON answer, as comparable dicts; a list with a key twice is an error,
    and so is a list not sorted by count, most first."""
    if report.get("schema") != SCHEMA:
        sys.exit(f"ctguard printed schema {report.get('schema')!r}, expected {SCHEMA}")
    by = report["by"]

    def table(name: str, key: Callable[[dict[str, Any]], Any], field: str = "count") -> dict:
        rows = by[name]
        counts = [row["count"] for row in rows]
        if counts != sorted(counts, reverse=True):
            sys.exit(f"by.{name} is not sorted by count, most first")
        out = {key(row): row[field] for row in rows}
        if len(out) != len(rows):
            sys.exit(f"by.{name} lists a key twice")
        return out

    histograms = {}
    for row in by["timeout"]:
        histograms[(row["protocol"], row["state"])] = tuple(row["histogram"][x] for x in LABELS)
    return {
        "entries": report["entries"],
        "bad_lines": report["bad_lines"]["count"],
        "family": table("family", lambda r: r["family"]),
        "protocol": table("protocol", lambda r: r["protocol"]),
        "state": table("state", lambda r: (r["protocol"], r["state"])),
        "dport": table("dport", lambda r: (r["protocol"], r["port"])),
        "dport_nat": {
            k: v
            for k, v in table("dport", lambda r: (r["protocol"], r["port"]), "nat").items()
            if v
        },
        "sport": table("sport", lambda r: (r["protocol"], r["port"])),
        "src": table("src", lambda r: r["address"]),
        "dst": table("dst", lambda r: r["address"]),
        "distinct": (report["distinct"]["src"], report["distinct"]["dst"]),
        "zone": table("zone", lambda r: r["zone"]),
        "mark": table("mark", lambda r: r["mark"]),
        "flags": dict(by["flags"]),
        "nat": dict(by["nat"]),
        "timeout": histograms,
        "no_timeout": report["no_timeout"],
    }


def _uniq(text: bytes) -> list[tuple[int, list[str]]]:
    rows = []
    for line in text.decode().splitlines():
        count, _, rest = line.strip().partition(" ")
        rows.append((int(count), rest.split(" ")))
    return rows


def _one_spelling(counts: dict[str, int]) -> dict[str, int]:
    """IPv6 as ctguard reports it (RFC 5952): /proc prints it in full, which is what awk
    sees; the same address must be one row on both sides."""
    merged: dict[str, int] = {}
    for address, count in counts.items():
        key = ipaddress.ip_address(address).compressed if ":" in address else address
        merged[key] = merged.get(key, 0) + count
    return merged


def from_pipelines(out: dict[str, bytes]) -> Norm:
    """The pipelines' `uniq -c` outputs, as the same comparable dicts."""

    def one(name: str, key: Callable[[list[str]], Any]) -> dict[Any, int]:
        return {key(fields): count for count, fields in _uniq(out[name])}

    flags = one("flags", lambda f: f[0])
    nat = {"nated": 0, "not_nated": 0}
    dport_nat: dict[tuple[str, int], int] = {}
    for count, (tag, proto, port) in _uniq(out["nat"]):
        nat["nated" if tag == "nat" else "not_nated"] += count
        if tag == "nat" and port != "-":
            dport_nat[(proto, int(port))] = dport_nat.get((proto, int(port)), 0) + count
    histograms: dict[tuple[str, str | None], list[int]] = {}
    no_timeout = 0
    for count, (proto, state, bucket) in _uniq(out["timeout"]):
        if bucket == "none":
            no_timeout += count
            continue
        row = histograms.setdefault((proto, None if state == "-" else state), [0] * 6)
        row[LABELS.index(bucket)] += count
    protocol = one("protocol", lambda f: f[0])
    src, dst = _one_spelling(one("src", lambda f: f[0])), _one_spelling(one("dst", lambda f: f[0]))
    return {
        "entries": sum(protocol.values()),
        "bad_lines": 0,
        "family": one("family", lambda f: f[0]),
        "protocol": protocol,
        "state": one("state", lambda f: (f[0], f[1])),
        "dport": one("dport", lambda f: (f[0], int(f[1]))),
        "dport_nat": dport_nat,
        "sport": one("sport", lambda f: (f[0], int(f[1]))),
        "src": src,
        "dst": dst,
        "distinct": (len(src), len(dst)),
        "zone": one("zone", lambda f: int(f[0])),
        "mark": one("mark", lambda f: int(f[0])),
        "flags": {
            "assured": flags.get("[ASSURED]", 0),
            "unreplied": flags.get("[UNREPLIED]", 0),
            # the JSON counts each flag word; TableSummary.offloaded counts both words
            "offload": flags.get("[OFFLOAD]", 0),
            "hw_offload": flags.get("[HW_OFFLOAD]", 0),
        },
        "nat": nat,
        "timeout": {k: tuple(v) for k, v in histograms.items()},
        "no_timeout": no_timeout,
    }


def first_differences(expected: Norm, got: Norm) -> list[str]:
    """One line per breakdown that differs: its first differing key."""
    problems = []
    for name, want in expected.items():
        have = got.get(name)
        if want == have:
            continue
        if isinstance(want, dict) and isinstance(have, dict):
            for key in sorted(set(want) | set(have), key=repr):
                if want.get(key) != have.get(key):
                    problems.append(
                        f"{name}[{key!r}]: pipelines {want.get(key)!r}, ctguard "
                        f"{have.get(key)!r} ({len(want)} vs {len(have)} keys)"
                    )
                    break
        else:
            problems.append(f"{name}: pipelines {want!r}, ctguard {have!r}")
    return problems


# ---------------------------------------------------------------- offline


def ctguard_cli() -> str | None:
    """The console script, when it has an `analyze` command."""
    script = str(VENV_CTGUARD) if VENV_CTGUARD.exists() else shutil.which("ctguard")
    if script is None:
        return None
    done = subprocess.run(
        [script, "analyze", "--help"], capture_output=True, timeout=60, check=False
    )
    return script if done.returncode == 0 else None


def analyze_argv(cli: str | None, path: str) -> list[str]:
    if cli is None:
        python = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable
        return [python, str(THIS), "--library-child", path]
    return [cli, "analyze", path, "--format", "json", "--by", "all", "--top", "0"]


def make_dump(
    directory: str, entries: int, seed: int, distinct_sources: bool = False
) -> tuple[str, float]:
    kind = "distinct" if distinct_sources else "mix"
    path = os.path.join(directory, f"dump-{entries}-{kind}.txt")
    start = time.perf_counter()
    with open(path, "w", encoding="ascii", buffering=1 << 20) as out:
        write_dump(out, entries, "proc", seed, distinct_sources)
    made = time.perf_counter() - start
    os.sync()  # no writeback of the fresh dump during the timed runs
    subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)  # in the page cache
    return path, made


def offline(args: argparse.Namespace, cli: str | None) -> bool:
    from ctguard.table.summary import HISTOGRAM_BOUNDS

    if tuple(HISTOGRAM_BOUNDS) != BOUNDS:
        sys.exit(f"HISTOGRAM_BOUNDS is now {HISTOGRAM_BOUNDS}: update the timeout pipeline")
    label = "ctguard analyze FILE (json, all, top 0)" if cli else "library (--library)"
    ok = True
    with tempfile.TemporaryDirectory(prefix="ctguard-bench-") as directory:
        path, made = make_dump(directory, args.entries, args.seed)
        size = os.path.getsize(path)
        print(
            f"offline: {args.entries:,} entries, {size / 1e6:.1f} MB (proc format, seed "
            f"{args.seed}), generated in {made:.1f} s (not timed)"
        )
        cat_s, _, _ = median_runs(["cat", path], args.runs, stdout=subprocess.DEVNULL)
        argv = analyze_argv(cli, path)
        run_timed(argv)  # warm-up, not counted
        ct_s, out, rss = median_runs(argv, args.runs, rss=True)
        report = json.loads(out)
        pss, anon = tree_peak_pss(argv)
        env = {**os.environ, "LC_ALL": "C"}
        times: dict[str, Wall] = {}
        outputs: dict[str, bytes] = {}
        for name, pipeline in PIPELINES.items():
            command = ["bash", "-o", "pipefail", "-c", pipeline, "baseline", path]
            times[name], outputs[name], _ = median_runs(command, args.runs, env=env)
        base_s = sum(times.values())

        print(f"scanner: {report.get('scanner')} (ctguard.table.scanner.IMPLEMENTATION)")
        print(f"median wall of {args.runs} runs each (fastest-slowest)")
        print(f"  {'cat FILE > /dev/null':<44} {cat_s:8.3f} s {cat_s.spread()}")
        print(
            f"  {label:<44} {ct_s:8.3f} s {ct_s.spread()}  {ct_s * 1e6 / args.entries:.2f} us/entry"
        )
        print(f"  {'awk/sort pipelines, sum of ' + str(len(times)):<44} {base_s:8.3f} s")
        for name, seconds in times.items():
            print(f"      {name:<40} {seconds:8.3f} s {seconds.spread()}")
        ratio = base_s / ct_s
        print(
            f"peak memory: {rss or 0:.1f} MB RSS (largest process); process tree, sampled: "
            f"{pss:.1f} MB PSS, {anon:.1f} MB of it anonymous"
        )

        problems = first_differences(from_pipelines(outputs), from_json(report))
        if problems:
            print("ANSWERS DIFFER from the awk/sort pipelines: benchmark void")
            for problem in problems:
                print(f"  {problem}")
            return False
        print(
            f"answers: all {len(PIPELINES)} breakdowns equal to the pipelines' "
            f"({report['entries']:,} entries, {report['distinct']['src']:,} sources)"
        )

        rows: list[tuple[int, Wall]] = [(args.entries, ct_s)]
        if args.big:
            os.unlink(path)
            big, made = make_dump(directory, args.big, args.seed)
            big_size = os.path.getsize(big)
            print(f"big: {args.big:,} entries, {big_size / 1e6:.1f} MB, generated in {made:.1f} s")
            big_argv = analyze_argv(cli, big)
            run_timed(big_argv)  # warm-up, not counted
            big_s, big_out, big_rss = median_runs(big_argv, args.runs, rss=True)
            big_report = json.loads(big_out)
            if big_report["entries"] != args.big or big_report["bad_lines"]["count"]:
                sys.exit(
                    f"big dump: {big_report['entries']} entries, "
                    f"{big_report['bad_lines']['count']} bad: benchmark void"
                )
            big_pss, big_anon = tree_peak_pss(big_argv)
            print(
                f"  peak memory: {big_rss or 0:.1f} MB RSS (largest process); process tree, "
                f"sampled: {big_pss:.1f} MB PSS, {big_anon:.1f} MB of it anonymous"
            )
            rows.append((args.big, big_s))
        print("growth:")
        for entries, seconds in rows:
            print(
                f"  {entries:>10,} entries  {seconds:8.3f} s {seconds.spread()}  "
                f"{seconds * 1e6 / entries:6.2f} us/entry"
            )
        if len(rows) == 2:
            growth = (rows[1][1] / rows[1][0]) / (rows[0][1] / rows[0][0])
            print(
                f"  per-entry cost at {args.big:,} / at {args.entries:,}: {growth:.2f}x "
                f"({'linear' if growth <= 1.25 else 'WORSE than linear'}); marginal cost "
                f"{(rows[1][1] - rows[0][1]) * 1e6 / (rows[1][0] - rows[0][0]):.2f} us/entry"
            )

    for text, met in (
        (f"wall <= {OFFLINE_TARGET_S} s: {ct_s:.3f} s", ct_s <= OFFLINE_TARGET_S),
        (f"pipelines / ctguard >= {RATIO_TARGET}x: {ratio:.2f}x", ratio >= RATIO_TARGET),
        (
            f"peak RSS <= {RSS_TARGET_MB:.0f} MB: {rss or 0:.1f} MB (PSS tree {pss:.1f} MB)",
            max(rss or 0, pss) <= RSS_TARGET_MB,
        ),
    ):
        print(f"target {text}: {'meets' if met else 'MISSES'}")
        ok = ok and met
    return ok


# ---------------------------------------------------------------- high cardinality


def true_sources(path: str) -> tuple[int, list[dict[str, Any]]]:
    """Distinct original sources and the top 10 (most first; ties IPv4 before IPv6, then
    numeric), counted here from the file's text, independently of ctguard."""
    counts: dict[str, int] = {}
    with open(path, "rb") as dump:
        for line in dump:
            at = line.index(b" src=") + 5
            text = line[at : line.index(b" ", at)].decode()
            counts[text] = counts.get(text, 0) + 1
    merged: dict[Any, int] = {}
    for text, count in counts.items():
        address = ipaddress.ip_address(text)
        key = (address.version, int(address))
        merged[key] = merged.get(key, 0) + count
    top = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    return len(merged), [
        {"address": str(ipaddress.ip_address(n) if v == 4 else ipaddress.IPv6Address(n)),
         "count": c}
        for (v, n), c in top
    ]  # fmt: skip


def timed_cpu(argv: list[str]) -> tuple[float, bytes, float, float]:
    """One fresh run: (wall s, stdout, peak RSS MB of its largest process, CPU s of the
    whole tree: user + sys, children included). CPU time hardly moves with the machine's
    load, so its ratio is the steadier figure on a shared machine."""
    if not TIME.exists():
        wall, out, peak = run_timed(argv, rss=True)
        return wall, out, peak or 0.0, float("nan")
    fd, report = tempfile.mkstemp(prefix="ctguard-bench-cpu-")
    os.close(fd)
    try:
        start = time.perf_counter()
        done = subprocess.run(
            [str(TIME), "-f", "%U %S %M", "-o", report, *argv],
            capture_output=True,
            timeout=1800,
            check=False,
        )
        wall = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"{' '.join(argv)[:200]} exited {done.returncode}: {done.stderr[-400:]!r}")
        user, system, peak = Path(report).read_text().split()[-3:]
        return wall, done.stdout, int(peak) / 1024, float(user) + float(system)
    finally:
        os.unlink(report)


def crafted_long_addresses(directory: str, lines: int = 100_000, random: bool = False) -> str:
    """A gzip dump whose sources are 15 KB "addresses" (issue 17's input bomb), then
    10 real entries. The same 15 KB each time packs about 370:1 (a gzip bomb, refused
    past 64 MiB); ``random`` digits pack about 2:1, so the scanner meets them all."""
    path = os.path.join(directory, f"long-addresses-{'random' if random else 'same'}.gz")
    digits = bytes(48 + n % 10 for n in range(256))
    with gzip.open(path, "wt", compresslevel=6, encoding="ascii") as out:
        for i in range(lines):
            pad = os.urandom(15000).translate(digits).decode() if random else "7" * 15000
            out.write(
                f"ipv4     2 tcp      6 431999 ESTABLISHED src=10.{i}.{pad} dst=10.0.0.10 "
                f"sport=40000 dport=443 src=10.0.0.10 dst=10.{i}.{pad} sport=443 dport=40000 "
                "[ASSURED] mark=0 zone=0 use=2\n"
            )
        for i in range(10):  # and a few real entries, so the run succeeds
            out.write(
                f"ipv4     2 tcp      6 431999 ESTABLISHED src=192.0.2.{i + 1} dst=10.0.0.10 "
                f"sport=40000 dport=443 src=10.0.0.10 dst=192.0.2.{i + 1} sport=443 "
                "dport=40000 [ASSURED] mark=0 zone=0 use=2\n"
            )
    return path


def high_card(args: argparse.Namespace, cli: str | None) -> bool:
    if cli is None:
        sys.exit("--high-card measures `ctguard analyze`: install it first")
    ok = True
    with tempfile.TemporaryDirectory(prefix="ctguard-bench-") as directory:
        low, _ = make_dump(directory, args.entries, args.seed)
        high, _ = make_dump(directory, args.entries, args.seed, distinct_sources=True)
        print(
            f"high cardinality: {args.entries:,} entries each, {os.path.getsize(low) / 1e6:.1f}"
            f" MB (usual mix) and {os.path.getsize(high) / 1e6:.1f} MB (a source per entry)"
        )
        runs: dict[str, list[str]] = {
            "low, --by all": [cli, "analyze", low, "--format", "json", "--by", "all"],
            "high, --by all": [cli, "analyze", high, "--format", "json", "--by", "all"],
            "low, --by protocol": [cli, "analyze", low, "--format", "json", "--by", "protocol"],
            "high, --by protocol": [cli, "analyze", high, "--format", "json", "--by", "protocol"],
        }
        walls: dict[str, list[float]] = {name: [] for name in runs}
        cpus: dict[str, list[float]] = {name: [] for name in runs}
        peaks: dict[str, float] = dict.fromkeys(runs, 0.0)
        outs: dict[str, bytes] = {}
        for argv in runs.values():
            run_timed(argv)  # warm-up, not counted
        for _ in range(args.runs):  # interleaved: a burst of load hits every kind alike
            for name, argv in runs.items():
                wall, outs[name], peak, cpu = timed_cpu(argv)
                walls[name].append(wall)
                cpus[name].append(cpu)
                peaks[name] = max(peaks[name], peak)
        medians = {name: Wall.of(samples) for name, samples in walls.items()}
        cpu_medians = {name: Wall.of(samples) for name, samples in cpus.items()}
        print(
            f"median of {args.runs} interleaved runs each (fastest-slowest): wall, CPU (user +"
            " sys, children included), peak RSS"
        )
        for name in runs:
            print(
                f"  {name:<22} {medians[name]:7.3f} s {medians[name].spread()}  "
                f"cpu {cpu_medians[name]:6.3f} s {cpu_medians[name].spread()}  "
                f"{peaks[name]:6.1f} MB"
            )
        ratio = medians["high, --by all"] / medians["low, --by all"]
        proto = medians["high, --by protocol"] / medians["low, --by protocol"]
        cpu_ratio = cpu_medians["high, --by all"] / cpu_medians["low, --by all"]
        pairs = zip(walls["high, --by all"], walls["low, --by all"], strict=True)
        ratios = [high_s / low_s for high_s, low_s in pairs]
        print(
            f"high / low (--by all): wall {ratio:.2f}x (run by run {min(ratios):.2f}-"
            f"{max(ratios):.2f}), CPU {cpu_ratio:.2f}x; --by protocol: wall {proto:.2f}x"
        )
        distinct, top = true_sources(high)
        report = json.loads(outs["high, --by all"])
        if report["distinct"]["src"] != distinct or report["by"]["src"] != top:
            print(
                f"ANSWERS DIFFER: ctguard {report['distinct']['src']} sources, top "
                f"{report['by']['src'][:3]}...; counted here {distinct}, {top[:3]}...: void"
            )
            return False
        print(f"answers: {distinct:,} distinct sources and the top 10 equal to a count made here")
        if json.loads(outs["high, --by protocol"])["distinct"] != {"src": None, "dst": None}:
            print("--by protocol counted addresses: void")
            return False
        os.unlink(low)
        os.unlink(high)
        crafted = crafted_long_addresses(directory)
        crafted_argv = [cli, "analyze", crafted, "--format", "json", "--by", "all"]
        wall, err, bomb_rss = run_timed(crafted_argv, rss=True, codes=(3,))
        print(
            f"15 KB addresses, the same each line: {os.path.getsize(crafted) / 1e6:.1f} MB"
            f" gzip, 100,000 lines (1.5 GB unpacked): {wall:.2f} s, {bomb_rss or 0:.1f} MB RSS;"
            f" {err.decode().strip()[:160]}"
        )
        if b"unpacks to more than" not in err:
            print("the gzip bomb was not refused as one: void")
            return False
        os.unlink(crafted)
        crafted = crafted_long_addresses(directory, 5_000, random=True)
        crafted_argv = [cli, "analyze", crafted, "--format", "json", "--by", "all"]
        wall, out, crafted_rss = run_timed(crafted_argv, rss=True)
        crafted_report = json.loads(out)
        print(
            f"15 KB addresses, random digits: {os.path.getsize(crafted) / 1e6:.1f} MB gzip,"
            f" 5,000 such lines (75 MB unpacked) and 10 good ones: {wall:.2f} s,"
            f" {crafted_rss or 0:.1f} MB RSS; {crafted_report['bad_lines']['count']:,} bad"
            f" lines, {crafted_report['entries']} entries"
        )
        if (crafted_report["bad_lines"]["count"], crafted_report["entries"]) != (5_000, 10):
            print("the long addresses were not all bad lines: void")
            return False
        crafted_rss = max(crafted_rss or 0, bomb_rss or 0)
    for text, met in (
        (
            f"high / low <= {HIGH_CARD_RATIO_TARGET}x: {ratio:.2f}x",
            ratio <= HIGH_CARD_RATIO_TARGET,
        ),
        (
            f"--by protocol high / low <= {HIGH_CARD_RATIO_TARGET}x: {proto:.2f}x",
            proto <= HIGH_CARD_RATIO_TARGET,
        ),
        (
            f"peak RSS at high cardinality <= {HIGH_CARD_RSS_TARGET_MB:.0f} MB: "
            f"{peaks['high, --by all']:.1f} MB",
            peaks["high, --by all"] <= HIGH_CARD_RSS_TARGET_MB,
        ),
        (
            f"peak RSS on 15 KB addresses <= {HIGH_CARD_RSS_TARGET_MB:.0f} MB: "
            f"{crafted_rss or 0:.1f} MB",
            (crafted_rss or 0) <= HIGH_CARD_RSS_TARGET_MB,
        ),
    ):
        print(f"target {text}: {'meets' if met else 'MISSES'}")
        ok = ok and met
    return ok


# ---------------------------------------------------------------- live


def live(args: argparse.Namespace, cli: str | None) -> bool:
    why = why_not()
    if why:
        print(f"live: skipped ({why})")
        return True
    with full_netns("ctg-bench", LIVE_ENTRIES) as ns:
        name, inside, count, want = ns.name, ns.inside, ns.count, ns.wanted
        print(f"live: {ns.describe()}")
        if count < want:
            print(f"  warning: only {count:,} of {want:,} entries made it in")

        def check(out: bytes, what: str) -> None:
            report = json.loads(out)
            dports = {(r["protocol"], r["port"]): r["count"] for r in report["by"]["dport"]}
            if report["entries"] != count or dports.get(("tcp", 8983)) != count:
                sys.exit(
                    f"{what}: {report['entries']} entries, {dports} by dport; the "
                    f"namespace holds {count}: benchmark void"
                )

        print(f"  answers: every tool must report {count:,} entries, all tcp dport 8983")
        baseline = "ip netns exec NAME conntrack -L > /dev/null"
        contenders: list[tuple[str, list[str], float | None]] = [
            (baseline, [*inside, "conntrack", "-L"], None)
        ]
        if cli is None:
            python = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable
            argv = [*inside, python, str(THIS), "--library-child", "/proc/net/nf_conntrack"]
            contenders.append(("library on /proc/net/nf_conntrack", argv, LIVE_PROCFS_TARGET))
            print("  (no `ctguard analyze` yet: --source netlink not measured)")
        else:
            for label, extra, target in (
                ("ctguard analyze --netns NAME (procfs)", [], LIVE_PROCFS_TARGET),
                (
                    "ctguard analyze --netns NAME --source netlink",
                    ["--source", "netlink"],
                    LIVE_NETLINK_TARGET,
                ),
            ):
                argv = [cli, "analyze", "--netns", name, *extra, "--format", "json"]
                contenders.append((label, argv, target))
        # interleaved rounds, so a burst of load elsewhere hits every contender alike
        samples: dict[str, list[float]] = {label: [] for label, _, _ in contenders}
        for _ in range(args.runs):
            for label, argv, _ in contenders:
                quiet = label == baseline
                wall, out, _ = run_timed(argv, subprocess.DEVNULL if quiet else subprocess.PIPE)
                if not quiet:
                    check(out, label)
                samples[label].append(wall)
        rows = [(label, Wall.of(samples[label]), target) for label, _, target in contenders]
        base_s = rows[0][1]

    ok = True
    print(f"median wall of {args.runs} interleaved runs each (fastest-slowest)")
    for label, seconds, target in rows:
        line = (
            f"  {label:<46} {seconds:6.3f} s {seconds.spread()}  "
            f"{seconds / base_s:4.2f}x conntrack -L"
        )
        if target is not None:
            met = seconds / base_s <= target
            ok = ok and met
            line += f"   target <= {target}x: {'meets' if met else 'MISSES'}"
        print(line)
    return ok


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--big", type=int, default=4_000_000, help="0: skip")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument("--skip-offline", action="store_true")
    parser.add_argument(
        "--library",
        action="store_true",
        help="time the library, not `ctguard analyze` (before the CLI exists)",
    )
    parser.add_argument(
        "--high-card",
        action="store_true",
        help="only the high-cardinality comparison (issue 17): 1 source per entry vs the mix",
    )
    parser.add_argument("--library-child", metavar="FILE", help=argparse.SUPPRESS)
    parser.add_argument("--rusage-child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.library_child:
        json.dump(library_json(args.library_child), sys.stdout)
        return 0
    if args.rusage_child:
        import resource

        report, *argv = args.rusage_child
        code = subprocess.run(argv, check=False).returncode
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        Path(report).write_text(f"{peak}\n")
        return code

    try:
        import ctguard  # noqa: F401
    except ImportError:  # run by a python3 outside the venv: the source tree
        sys.path.insert(0, str(REPO / "src"))
    cli = None if args.library else ctguard_cli()
    if cli is None and not args.library:
        sys.exit("`ctguard analyze` does not exist yet: run with --library")
    if args.high_card:
        return 0 if high_card(args, cli) else 1
    ok = True
    if not args.skip_offline:
        ok = offline(args, cli) and ok
    if not args.skip_live:
        ok = live(args, cli) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
