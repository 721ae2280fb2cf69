"""New conntrack entries seen during a short window (``notrack --verify``).

``conntrack -E -e NEW`` prints one line per entry created, for example::

    [NEW] tcp      6 120 SYN_SENT src=127.0.0.1 dst=127.0.0.1 sport=40512 dport=8983 \
          [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=8983 dport=40512

(one line, folded here).

An untracked packet never creates an entry, so a port that is really bypassed never shows
up here, while tracked traffic does. The watch runs for a bounded number of seconds.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import time
from dataclasses import dataclass

from ctguard.missing import Missing

_EVENT = re.compile(
    r"^\s*\[NEW\]\s+(\w+)\s+\d+\s+(?:\d+\s+)?.*?src=(\S+) .*?sport=(\d+) dport=(\d+)"
)
MAX_CHUNKS = 1_600  # 64 KiB reads: at most 100 MiB of events, whatever the window


@dataclass(frozen=True)
class NewFlow:
    proto: str
    sport: int
    dport: int
    ipv6: bool = False


def parse_new_events(text: str) -> list[NewFlow]:
    """The first (original direction) tuple of each ``[NEW]`` line; other lines are skipped.

    >>> parse_new_events("[NEW] udp      17 30 src=127.0.0.1 dst=127.0.0.1 sport=5 dport=53 "
    ...                  "[UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=53 dport=5\\n")
    [NewFlow(proto='udp', sport=5, dport=53, ipv6=False)]
    """
    flows: list[NewFlow] = []
    for line in text.splitlines():
        m = _EVENT.match(line)
        if m:
            ipv6 = ":" in m.group(2)
            flows.append(NewFlow(m.group(1), int(m.group(3)), int(m.group(4)), ipv6))
    return flows


def watch_new_flows(seconds: float) -> list[NewFlow] | Missing:
    """Entries created in this namespace during ``seconds`` (bounded), or why not."""
    prog = shutil.which("conntrack")
    if prog is None:
        return Missing("conntrack is not installed (apt-get install conntrack)")
    try:
        child = subprocess.Popen(
            [prog, "-E", "-e", "NEW"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "LC_ALL": "C"},
        )
    except OSError as exc:
        return Missing(f"conntrack -E could not run: {exc.strerror or exc}")
    assert child.stdout is not None
    chunks: list[bytes] = []
    deadline = time.monotonic() + seconds
    try:
        while (left := deadline - time.monotonic()) > 0 and len(chunks) < MAX_CHUNKS:
            ready, _, _ = select.select([child.stdout], [], [], left)
            if not ready:
                continue
            chunk = os.read(child.stdout.fileno(), 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        child.kill()
        _, err = child.communicate(timeout=5)
    if not chunks and child.returncode not in (0, -9):
        why = err.decode("utf-8", "replace").strip().splitlines()
        return Missing(f"conntrack -E failed: {why[0] if why else child.returncode}")
    return parse_new_events(b"".join(chunks).decode("utf-8", "replace"))
