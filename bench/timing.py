"""Wall-clock timing shared by the benchmarks: the median of cold process starts."""

from __future__ import annotations

import statistics
import subprocess
import time


def median_ms(argv: list[str], runs: int, check: bool = True) -> float:
    """Median wall time of ``runs`` fresh runs of ``argv``, in milliseconds.

    ``check=False`` for commands whose non-zero exit is an answer (``doctor`` exits 1/2
    when it finds something), not a failure.
    """
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=check, timeout=60)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)
