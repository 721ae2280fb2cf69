"""``ctguard analyze``: what fills the table, in one pass (the library side)."""

from __future__ import annotations

from dataclasses import dataclass

from ctguard.table.candidates import Candidate, notrack_candidates
from ctguard.table.scanner import IMPLEMENTATION
from ctguard.table.summary import BREAKDOWNS, DEFAULT_BREAKDOWNS, TableSummary, summarize
from ctguard.table.tally import Tally
from ctguard.table.whatif import WhatIf, current_timeouts, what_if


@dataclass(frozen=True)
class AnalyzeReport:
    source: str
    scanner: str
    summary: TableSummary
    breakdowns: tuple[str, ...]
    top: int | None  # None: every row
    candidates: list[Candidate]
    what_if: list[WhatIf] | None
    netns: str | None = None


def parse_breakdowns(spec: str | None) -> tuple[str, ...]:
    """``--by dport,src`` / ``--by all`` / default.

    >>> parse_breakdowns("dport, src")
    ('dport', 'src')
    """
    if spec is None:
        return DEFAULT_BREAKDOWNS
    names = tuple(part.strip() for part in spec.split(",") if part.strip())
    if names == ("all",):
        return BREAKDOWNS
    unknown = [name for name in names if name not in BREAKDOWNS]
    if unknown or not names:
        raise ValueError(f"--by {spec!r}: choose from {', '.join(BREAKDOWNS)} (or all)")
    return names


def build_report(
    tally: Tally,
    source: str,
    breakdowns: tuple[str, ...] = DEFAULT_BREAKDOWNS,
    top: int | None = 10,
    sysctls: dict[str, int] | None = None,
    proposed: dict[str, int] | None = None,
    netns: str | None = None,
) -> AnalyzeReport:
    summary = summarize(tally, top)
    rows = None
    if proposed is not None:
        rows = what_if(tally, current_timeouts(sysctls or {}), proposed)
    return AnalyzeReport(
        source=source,
        scanner=IMPLEMENTATION,
        summary=summary,
        breakdowns=breakdowns,
        top=top,
        candidates=notrack_candidates(summary),
        what_if=rows,
        netns=netns,
    )
