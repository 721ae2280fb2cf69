"""`ctguard report DIR --format json` over 10,000 doctor JSON files (target: <= 5 s wall).

Makes the fleet first: real doctor outputs of the repository's snapshots (examples/ and
tests/roots/doctor: every severity, every fleet question, evidence of every length),
copied under 10,000 host identities and times, laid out as Ansible's fetch lays them
(DIR/<host>/var/tmp/ctguard-doctor.json), a few duplicates among them. Then times, as
fresh processes on the same files (the page cache warm for both, by a first read):

- baseline: a Python process that opens and json.loads every file (the least any reader
  of these files pays), measured in the same run;
- ctguard report DIR --format json.

Prints both, the ratio, and checks the answer: every host counted once, the duplicates
named, the fleet numbers equal to the ones counted here from the documents written.

    python3 bench/report.py [--hosts 10000] [--runs 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_S = 5.0
REPO = Path(__file__).resolve().parent.parent
BASES = [REPO / "examples" / "rhel6-table-full", *sorted((REPO / "tests/roots/doctor").glob("ct*"))]
DUPLICATE_EVERY = 50  # one host in 50 also has an older reading
BASELINE = """
import json, os, sys
n = 0
for top, _dirs, files in os.walk(sys.argv[1]):
    for name in files:
        if name.endswith(".json"):
            with open(os.path.join(top, name), "rb") as f:
                json.load(f)
            n += 1
print(n)
"""


def doctor_documents(ctguard: str) -> list[dict[str, Any]]:
    documents = []
    for root in BASES:
        if not (root / "ctguard_manifest.json").is_file():
            continue
        done = subprocess.run(
            [ctguard, "doctor", "--root", str(root), "--format", "json"],
            capture_output=True, check=False, timeout=120,
        )  # fmt: skip
        if done.returncode in (0, 1, 2):
            documents.append(json.loads(done.stdout))
    if len(documents) < 20:
        sys.exit(f"only {len(documents)} doctor outputs from the fixture snapshots")
    return documents


def make_fleet(dest: Path, hosts: int, documents: list[dict[str, Any]]) -> dict[str, int]:
    """Write the fleet; returns what a correct report must count."""
    want = {"hosts": hosts, "duplicates": 0, "dropping": 0, "ram": 0}
    for i in range(hosts):
        base = documents[i % len(documents)]
        name = f"node{i:05d}.dc{i % 7}.example.net"
        mid = hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()
        document = copy.copy(base)
        document["host"] = {"hostname": name, "machine_id": mid}
        document["created_utc"] = f"2026-12-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z"
        path = dest / name / "var" / "tmp" / "ctguard-doctor.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(document, indent=2))
        found = {f["id"]: f["severity"] for f in base["findings"] if f["status"] == "found"}
        want["dropping"] += found.get("CT102") == "critical"
        want["ram"] += found.get("CT201") == "critical"
        if i % DUPLICATE_EVERY == 0:
            older = dict(document, created_utc="2026-11-30T00:00:00Z")
            (path.parent / "ctguard-doctor.old.json").write_text(json.dumps(older, indent=2))
            want["duplicates"] += 1
    return want


def timed(argv: list[str], runs: int) -> tuple[float, bytes]:
    samples, out = [], b""
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, check=False, timeout=600)
        samples.append(time.perf_counter() - start)
        if done.returncode not in (0, 1, 2):
            sys.exit(f"{' '.join(argv[:3])} exited {done.returncode}: {done.stderr[:300]!r}")
        out = done.stdout
    return statistics.median(samples), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", help="make the fleet in this directory and keep it")
    args = parser.parse_args()
    ctguard = shutil.which("ctguard")
    if ctguard is None:
        sys.exit("ctguard is not on PATH (bash scripts/install; export PATH=.venv/bin:$PATH)")
    with tempfile.TemporaryDirectory(prefix="ctguard-bench-report-") as tmp:
        dest = Path(args.keep) if args.keep else Path(tmp) / "fetched"
        dest.mkdir(parents=True, exist_ok=False)
        want = make_fleet(dest, args.hosts, doctor_documents(ctguard))
        files = args.hosts + want["duplicates"]
        size = sum(p.stat().st_size for p in dest.rglob("*.json"))
        print(f"{files:,} doctor JSON files ({size / 2**20:.0f} MiB) for {args.hosts:,} hosts")

        read_all = [sys.executable, "-c", BASELINE, str(dest)]
        report = [ctguard, "report", str(dest), "--format", "json"]
        timed(read_all, 1)  # warm the page cache for both
        base_s, counted = timed(read_all, args.runs)
        if int(counted) != files:
            sys.exit(f"the baseline read {int(counted)} files, not {files}")
        report_s, out = timed(report, args.runs)
        doc = json.loads(out)
        got = {
            "hosts": doc["summary"]["hosts"],
            "duplicates": doc["summary"]["duplicates"],
            "dropping": next(q["count"] for q in doc["fleet"] if q["key"] == "dropping"),
            "ram": next(q["count"] for q in doc["fleet"] if q["key"] == "ram"),
        }
        if got != want or doc["unreadable"]:
            sys.exit(f"wrong answer: {got} != {want} (unreadable: {doc['unreadable'][:3]})")

    print(f"median wall time of {args.runs} runs each (page cache warm)")
    print(f"  {'python: open + json.load every file':<40} {base_s:7.2f} s")
    print(
        f"  {'ctguard report DIR --format json':<40} {report_s:7.2f} s   {report_s / base_s:5.2f}x"
    )
    scaled = report_s * 10_000 / args.hosts
    verdict = "meets" if scaled <= TARGET_S else "MISSES"
    print(f"target <= {TARGET_S:.0f} s for 10,000 files: {verdict} ({scaled:.2f} s per 10,000)")
    return 0 if scaled <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
