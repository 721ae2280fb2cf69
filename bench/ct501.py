"""Cost of CT501's fate comparison on big rulesets (review: 20 NOTRACKs over a 5,000-entry
NEW-only allow-list took 12 s; target: at most 10x the cost of parsing the ruleset).

For each generated ruleset (iptables-save text) this times, in the same run, parsing it
(the baseline: ctguard must read the ruleset anyway) and comparing tracked and untracked
fates for every NOTRACK (model.notrack_effect), and prints the ratio. The answers are
checked too: every allow-list entry must come back as one loss, so a fast but wrong walk
cannot pass.

    python3 bench/ct501.py [--accepts 8000] [--notracks 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import sys
import time

from ctguard.model.firewall import notrack_rules, packet_of
from ctguard.model.notrack_effect import DROPPED, notrack_effect
from ctguard.sources.ruleset import PortSet, parse_iptables_save

TARGET_RATIO = 10.0
EPHEMERAL = PortSet.of((32768, 60999))


def ruleset(notracks: int, accepts: int) -> str:
    raw = "".join(
        f"-A PREROUTING -p tcp -m tcp --dport {8000 + i} -j NOTRACK\n" for i in range(notracks)
    )
    allow = "".join(
        f"-A INPUT -s 10.{i // 250}.{i % 250}.1/32 -p tcp -m tcp --dport {8000 + i % notracks}"
        " -m state --state NEW -j ACCEPT\n"
        for i in range(accepts)
    )
    return (
        f"*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n{raw}COMMIT\n"
        "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        f"-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT\n{allow}COMMIT\n"
    )


def best(runs: int, job: object) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        job()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accepts", type=int, default=8000)
    parser.add_argument("--notracks", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    text = ruleset(args.notracks, args.accepts)
    rs = parse_iptables_save(text)

    def compare() -> int:
        lost = 0
        for notrack, _ in notrack_rules(rs):
            got = notrack_effect(rs, "input", packet_of(notrack), EPHEMERAL)
            if got.outcome != DROPPED:
                sys.exit(f"NOTRACK {notrack.text}: {got.outcome}, not dropped: benchmark void")
            lost += len(got.losses)
        return lost

    lost = compare()
    if lost != args.accepts:
        sys.exit(f"{lost} losses for {args.accepts} allow-list entries: benchmark void")
    parse = best(args.runs, lambda: parse_iptables_save(text))
    fates = best(args.runs, compare)
    ratio = fates / parse
    print(f"{args.notracks} NOTRACKs, {args.accepts} NEW-only accepts (best of {args.runs})")
    print(f"  parse iptables-save (baseline)   {parse * 1000:8.1f} ms   1.00x")
    print(f"  CT501 fate comparison            {fates * 1000:8.1f} ms   {ratio:5.2f}x")
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    print(f"target <= {TARGET_RATIO:.0f}x the parse: {verdict}")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
