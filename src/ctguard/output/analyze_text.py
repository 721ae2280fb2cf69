"""``analyze`` for a terminal: formats the JSON document (output/analyze_json.py)."""

from __future__ import annotations

from typing import Any

from ctguard.model.units import number
from ctguard.output.analyze_json import analyze_document
from ctguard.usecases.analyze import AnalyzeReport

_TITLES = {
    "family": "by address family",
    "protocol": "by protocol",
    "state": "by state",
    "dport": "by destination port (original direction: the local service for inbound)",
    "sport": "by source port",
    "src": "top sources",
    "dst": "top destinations",
    "zone": "by zone",
    "mark": "by mark",
}


def row_key(row: dict[str, Any]) -> str:
    return "/".join(str(v) for k, v in row.items() if k not in ("count", "nat") and v is not None)


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:5.1f}%" if whole else "    -"


def render_analyze_text(report: AnalyzeReport) -> str:
    doc = analyze_document(report)
    total = doc["entries"]
    out: list[str] = []
    scope = f" (netns {doc['netns']})" if doc["netns"] else ""
    noun = "entry" if total == 1 else "entries"
    out.append(f"ctguard analyze{scope}: {number(total)} {noun} from {doc['source']}")
    bad = doc["bad_lines"]
    if bad["count"]:
        out.append(
            f"warning: {number(bad['count'])} unparseable lines skipped "
            f"(first: line {bad['first_line']}: {bad['first_text'][:80]!r})"
        )
    for name, rows in doc["by"].items():
        if isinstance(rows, dict) or name == "timeout":
            continue
        out.append("")
        out.append(_TITLES.get(name, name))
        for row in rows:
            nat = f"  NAT {number(row['nat'])}" if row.get("nat") else ""
            out.append(
                f"  {row_key(row):<40} {number(row['count']):>12} {_pct(row['count'], total)}{nat}"
            )
    by = doc["by"]
    if "flags" in by or "nat" in by:
        out.append("")
        out.append("flags")
        for name, count in {**by.get("flags", {}), **by.get("nat", {})}.items():
            out.append(f"  {name:<40} {number(count):>12} {_pct(count, total)}")
    if by.get("timeout"):
        labels = list(by["timeout"][0]["histogram"])
        out.append("")
        out.append("remaining timeout by state")
        out.append(f"  {'':<20}" + "".join(f"{label:>10}" for label in labels))
        for row in by["timeout"]:
            name = "/".join(v for v in (row["protocol"], row["state"]) if v)
            out.append(
                f"  {name:<20}" + "".join(f"{number(c):>10}" for c in row["histogram"].values())
            )
        if doc["no_timeout"]:
            out.append(f"  offloaded (no timeout shown): {number(doc['no_timeout'])}")
    if "what_if" in doc:
        out.append("")
        out.append("what if (entries that would already have expired)")
        for row in doc["what_if"]:
            out.append(
                f"  {row['timeout']} {row['current']} -> {row['proposed']} s: "
                f"{number(row['expired'])} of {number(row['affected'])} entries "
                f"({row['expired_share']:.1f}% of the table)"
            )
    out.append("")
    if doc["notrack_skipped"]:
        out.append(f"NOTRACK candidates: none proposed ({doc['notrack_skipped']})")
    elif doc["notrack_candidates"]:
        out.append("NOTRACK candidates (no NAT or forwarding seen on these ports)")
        for c in doc["notrack_candidates"]:
            split = ", ".join(f"{way} {number(n)}" for way, n in c["split"].items())
            out.append(
                f"  {c['protocol']}/{c['port']}: {number(c['entries'])} entries "
                f"({c['share']:.1f}%; {split})  {c['command']}"
            )
    else:
        out.append("NOTRACK candidates: none (no NAT-free port holds 5% of the table)")
    for p in doc["notrack_passed_over"]:
        out.append(
            f"  not {p['protocol']}/{p['port']} ({number(p['entries'])} entries,"
            f" {p['share']:.1f}%): {p['why']}"
        )
    return "\n".join(out) + "\n"
