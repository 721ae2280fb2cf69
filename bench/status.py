"""Cold-start cost of `ctguard status --json --interval 0` (issue target: <= 250 ms wall).

Each command is started as a fresh process RUNS times; the median wall time of each is
printed beside two baselines measured in the same run: `python3 -c pass` (the interpreter
floor) and `conntrack -C` (the C tool an operator would otherwise run). The status output
is also checked: it must parse and report the same max as /proc.

    python3 bench/status.py [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from timing import median_ms

TARGET_MS = 250.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    ctguard = shutil.which("ctguard")
    if ctguard is None:
        sys.exit("ctguard is not on PATH (bash scripts/install; export PATH=.venv/bin:$PATH)")
    status = [ctguard, "status", "--json", "--interval", "0"]

    first = subprocess.run(status, capture_output=True, check=True, timeout=60)
    report = json.loads(first.stdout)
    proc_max = Path("/proc/sys/net/netfilter/nf_conntrack_max")
    if proc_max.exists() and report["table"]["max"] != int(proc_max.read_text()):
        sys.exit("status reported a max different from /proc: benchmark void")

    rows = [("python3 -c pass", median_ms([sys.executable, "-c", "pass"], args.runs))]
    if shutil.which("conntrack"):
        rows.append(("conntrack -C", median_ms(["conntrack", "-C"], args.runs)))
    status_ms = median_ms(status, args.runs)
    rows.append(("ctguard status --json --interval 0", status_ms))

    base = rows[0][1]
    print(f"median wall time of {args.runs} cold runs each")
    for name, ms in rows:
        print(f"  {name:<36} {ms:8.1f} ms   {ms / base:5.2f}x python3 -c pass")
    verdict = "meets" if status_ms <= TARGET_MS else "MISSES"
    print(f"target <= {TARGET_MS:.0f} ms: {verdict} ({status_ms:.1f} ms)")
    return 0 if status_ms <= TARGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
