"""Write the ``proc/net/nf_conntrack`` files of the table scenarios (CT401, CT402, CT505).

Run from the repository root after changing a recipe; the README gives the arithmetic.
Each scenario is a copy of ``ct401-near-low-usage`` (a quiet Debian 12 host) plus a table
of 1,200 entries (the rules' ``table_min_entries`` is 1,000).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOTS = Path(__file__).parent
BASE = "ct401-near-low-usage"


def tcp(n: int, state: str, dport: int, remaining: int, dnat: bool = False) -> str:
    src = f"10.0.{n // 250}.{n % 250 + 1}"
    sport = 20000 + n
    reply_src = "10.9.9.9" if dnat else "192.0.2.10"
    flag = "[ASSURED] " if state in ("ESTABLISHED", "TIME_WAIT") else ""
    return (
        f"ipv4     2 tcp      6 {remaining} {state} src={src} dst=192.0.2.10 sport={sport}"
        f" dport={dport} src={reply_src} dst={src} sport={dport} dport={sport} {flag}"
        "mark=0 zone=0 use=2\n"
    )


def udp(n: int, remaining: int) -> str:
    src = f"10.1.{n // 250}.{n % 250 + 1}"
    sport = 30000 + n
    return (
        f"ipv4     2 udp      17 {remaining} src={src} dst=192.0.2.53 sport={sport} dport=53"
        f" src=192.0.2.53 dst={src} sport=53 dport={sport} mark=0 zone=0 use=2\n"
    )


def spread(
    count: int, state: str, first: int, remaining: range, ports: tuple[int, ...]
) -> list[str]:
    return [
        tcp(first + i, state, ports[i % len(ports)], remaining[i % len(remaining)])
        for i in range(count)
    ]


PORTS3 = (80, 8080, 8443)
RECIPES: dict[str, list[str]] = {
    # 720 TIME_WAIT (60 %) over three ports, 480 ESTABLISHED: no port above 33.4 %
    "ct402-time-wait-majority": spread(720, "TIME_WAIT", 0, range(1, 121), PORTS3)
    + spread(480, "ESTABLISHED", 720, range(431000, 432000, 7), PORTS3),
    # 588 TIME_WAIT (49 %): just under the 50 % threshold
    "ct402-near-49pct": spread(588, "TIME_WAIT", 0, range(1, 121), PORTS3)
    + spread(612, "ESTABLISHED", 588, range(431000, 432000, 7), PORTS3),
    # 720 ESTABLISHED to tcp/8983 (60 %), not NATed; 480 DNS entries
    "ct505-hot-port": [tcp(i, "ESTABLISHED", 8983, 431000 + i) for i in range(720)]
    + [udp(i, 1 + i % 30) for i in range(480)],
    # the same 60 % on tcp/443, but DNATed (reply source 10.9.9.9): not a candidate
    "ct505-near-nated-port": [tcp(i, "ESTABLISHED", 443, 431000 + i, dnat=True) for i in range(720)]
    + [udp(i, 1 + i % 30) for i in range(480)],
    # timeout 432000; 960 of 1,200 ESTABLISHED entries idle 1-4 days (80 %)
    "ct401-idle-established-table": spread(960, "ESTABLISHED", 0, range(90000, 420000, 997), PORTS3)
    + spread(240, "ESTABLISHED", 960, range(431000, 432000, 3), PORTS3),
    # all 1,200 ESTABLISHED entries saw a packet in the last 20 minutes: busy, not idle
    "ct401-near-active-table": spread(1200, "ESTABLISHED", 0, range(430800, 432000, 1), PORTS3),
}


def main() -> None:
    for name, lines in RECIPES.items():
        root = ROOTS / name
        if not root.exists():
            shutil.copytree(ROOTS / BASE, root, symlinks=True)
            for generated in ("expected.json", "contract.json"):
                (root / generated).unlink(missing_ok=True)
        (root / "proc/net/nf_conntrack").write_text("".join(lines))
        count = root / "proc/sys/net/netfilter/nf_conntrack_count"
        count.write_text(f"{len(lines)}\n")
        if name.startswith("ct402-"):
            # the kernel default 120 s at runtime, and no file setting it (else CT301)
            (root / "proc/sys/net/netfilter/nf_conntrack_tcp_timeout_time_wait").write_text("120\n")
            conf = root / "etc/sysctl.d/60-conntrack.conf"
            kept = [ln for ln in conf.read_text().splitlines() if "time_wait" not in ln]
            conf.write_text("\n".join(kept) + "\n")
        manifest_path = root / "ctguard_manifest.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["table"] = True
        if "/proc/net/nf_conntrack" not in manifest["captured"]:
            manifest["captured"] = sorted([*manifest["captured"], "/proc/net/nf_conntrack"])
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        print(name, len(lines), file=sys.stderr)


if __name__ == "__main__":
    main()
