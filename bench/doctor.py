"""Cold-start cost of `ctguard doctor --format json` (issue target: <= 400 ms wall each).

Runs the doctor RUNS times as a fresh process on the live host and on the shipped
snapshot `examples/rhel6-table-full`, and prints the median wall time of each beside the
interpreter floor, `python3 -c pass`, measured in the same run. The answers are checked
too: both outputs must parse, and the snapshot must report CT102 found (its stat file
counts drops), so a fast but broken doctor cannot pass.

    python3 bench/doctor.py [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from timing import median_ms

TARGET_MS = 400.0
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "rhel6-table-full"


def check(argv: list[str]) -> dict[str, dict[str, object]]:
    done = subprocess.run(argv, capture_output=True, check=False, timeout=60)
    if done.returncode not in (0, 1, 2):
        sys.exit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()[:200]}")
    report = json.loads(done.stdout)
    return {f["id"]: f for f in report["findings"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    ctguard = shutil.which("ctguard")
    if ctguard is None:
        sys.exit("ctguard is not on PATH (bash scripts/install; export PATH=.venv/bin:$PATH)")
    live = [ctguard, "doctor", "--format", "json"]
    snapshot = [*live, "--root", str(EXAMPLE)]
    check(live)
    if check(snapshot)["CT102"]["status"] != "found":
        sys.exit("the example snapshot did not report CT102: benchmark void")

    rows = [("python3 -c pass", median_ms([sys.executable, "-c", "pass"], args.runs))]
    # doctor exits 1/2 when it finds something: an answer, not a failure
    for name, argv in (("ctguard doctor --format json (live)", live),
                       ("ctguard doctor ... --root examples/rhel6", snapshot)):  # fmt: skip
        rows.append((name, median_ms(argv, args.runs, check=False)))

    base = rows[0][1]
    print(f"median wall time of {args.runs} cold runs each")
    for name, ms in rows:
        print(f"  {name:<42} {ms:8.1f} ms   {ms / base:5.2f}x python3 -c pass")
    worst = max(ms for _, ms in rows[1:])
    verdict = "meets" if worst <= TARGET_MS else "MISSES"
    print(f"target <= {TARGET_MS:.0f} ms each: {verdict} (slowest {worst:.1f} ms)")
    return 0 if worst <= TARGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
