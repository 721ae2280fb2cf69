"""Time and peak memory of `ctguard status --root BOMB` for the archive bombs of issue 17.

Issue 17 measured, before the fix: a 1.5 MB archive whose pax header or GNU long name
claims 1.5 GB took 1.6 GB RSS and 12-42 s before "damaged"; 2 M empty members in 12 MB
took 913 MB and 100 s before the 200k-member refusal. The target: refused in bounded
memory and under a second. Each bomb is built at that size in a temp dir (the data the
headers claim is not there), then run RUNS times as a fresh process; the wall time
(median and spread) and the child's peak RSS (wait4) are printed, with the one-line error.

    python3 bench/archive_bombs.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from archive_bombs import claiming_header, deep_name, many_members, zeros_member

TARGET_S = 1.0
TARGET_RSS_MB = 100.0
CLAIM = 1_500_000_000
BOMBS: dict[str, Callable[[Path], Path]] = {
    "pax 'x' header claims 1.5 GB (1.5 MB)": lambda d: claiming_header(
        d / "pax.tar.gz", tarfile.XHDTYPE, CLAIM, 1_500_000
    ),
    "GNU long name claims 1.5 GB (1.5 MB)": lambda d: claiming_header(
        d / "gnu.tar.gz", tarfile.GNUTYPE_LONGNAME, CLAIM, 1_500_000
    ),
    "2 M empty members": lambda d: many_members(d / "many.tar.gz", 2_000_000),
    "1 GiB of zeros as the table dump": lambda d: zeros_member(
        d / "zeros.tar.gz", "proc/net/nf_conntrack", 1 << 30
    ),
    # the review of issue 17: the member check grew with the square of a name's length
    # (29 s for this one name; 31 names of 1 MB fit under the header budget: hours)
    'one name "a/" * 100000 + "f0"': lambda d: deep_name(d / "deep.tar.gz", 100_000),
    '31 names "a/" * 524000 + "fN" (1 MB each)': lambda d: deep_name(
        d / "deeper.tar.gz", 524_000, 31
    ),
}


def run_once(argv: list[str]) -> tuple[float, float, int, str]:
    """Wall seconds, peak RSS in MB, exit code and stderr of one fresh run."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert child.stderr is not None
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss / 1024, child.returncode, err.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ctguard = shutil.which("ctguard")
    if ctguard is None:
        sys.exit("ctguard is not on PATH (bash scripts/install; export PATH=.venv/bin:$PATH)")
    ok = True
    with tempfile.TemporaryDirectory(prefix="ctguard-bombs-") as work:
        for title, build in BOMBS.items():
            bomb = build(Path(work))
            runs = [run_once([ctguard, "status", "--root", str(bomb)]) for _ in range(args.runs)]
            walls = sorted(r[0] for r in runs)
            rss = max(r[1] for r in runs)
            code, err = runs[-1][2], runs[-1][3]
            met = code == 3 and walls[len(walls) // 2] < TARGET_S and rss < TARGET_RSS_MB
            ok = ok and met
            print(f"{title}: {bomb.stat().st_size:,} byte archive")
            print(
                f"  wall median {statistics.median(walls):.2f} s "
                f"(min {walls[0]:.2f}, max {walls[-1]:.2f}), peak RSS {rss:.0f} MB, exit {code}"
                f" -> {'meets' if met else 'MISSES'} < {TARGET_S:.0f} s, < {TARGET_RSS_MB:.0f} MB"
            )
            print(f"  {err}")
            bomb.unlink()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
