"""A throw-away network namespace whose conntrack table is filled for real (docs/design.md §10).

Used by bench/analyze.py (live part), bench/top.py and bench/exporter.py. Only loopback
addresses; the initial namespace's sysctls are read, never written; the namespace is always
deleted.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MAX_FILE = Path("/proc/sys/net/netfilter/nf_conntrack_max")


@dataclass(frozen=True)
class FullNetns:
    name: str
    inside: list[str]  # argv prefix that runs a program in the namespace
    count: int  # entries actually in the table
    wanted: int
    limit: int  # the global nf_conntrack_max (a namespace fills against it)
    filled_in: float  # seconds `conntrack -R` took

    def describe(self) -> str:
        return (
            f"namespace {self.name}: {self.count:,} entries (wanted {self.wanted:,}, max "
            f"{self.limit:,}), filled in {self.filled_in:.1f} s"
        )


def why_not() -> str | None:
    """Why this machine cannot run the live benchmarks, or None."""
    import os

    if os.geteuid() != 0:
        return "needs root to create a network namespace"
    for tool in ("ip", "conntrack"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not MAX_FILE.exists():
        return "this kernel has no nf_conntrack"
    return None


def fill_lines(n: int) -> str:
    """One `conntrack -I` per entry, distinct by (source, source port), 127/8 only."""
    return "".join(
        f"-I -p tcp -s 127.0.{i // 60000 + 1}.2 -d 127.0.0.1 --sport {1024 + i % 60000} "
        "--dport 8983 --state ESTABLISHED --status ASSURED,SEEN_REPLY -t 3600\n"
        for i in range(n)
    )


@contextmanager
def full_netns(prefix: str, entries: int) -> Iterator[FullNetns]:
    """A namespace holding min(entries, nf_conntrack_max) assured tcp entries to 8983
    (none for ``entries`` 0), its loopback up."""
    limit = int(MAX_FILE.read_text())
    wanted = min(entries, limit)
    name = f"{prefix}-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    try:
        inside = ["ip", "netns", "exec", name]
        subprocess.run([*inside, "ip", "link", "set", "lo", "up"], check=True, timeout=30)
        filled_in = fill(inside, wanted, prefix) if wanted else 0.0
        yield FullNetns(name, inside, count_entries(inside), wanted, limit, filled_in)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=60)


def fill(inside: list[str], entries: int, prefix: str) -> float:
    """Insert ``entries`` lines of fill_lines with `conntrack -R`; the seconds it took."""
    with tempfile.NamedTemporaryFile("w", prefix=f"{prefix}-fill-") as lines:
        lines.write(fill_lines(entries))
        lines.flush()
        start = time.perf_counter()
        subprocess.run(
            [*inside, "conntrack", "-R", lines.name], capture_output=True, check=False, timeout=600
        )
        return time.perf_counter() - start


def count_entries(inside: list[str]) -> int:
    """`conntrack -C` in the namespace."""
    counted = subprocess.run(
        [*inside, "conntrack", "-C"], capture_output=True, text=True, check=True, timeout=60
    )
    return int(counted.stdout)
