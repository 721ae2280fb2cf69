"""``ctguard explain``: the story of one catalogue ID, or the index of every ID."""

from __future__ import annotations

from dataclasses import dataclass

from ctguard.catalogue import CATALOGUE, Entry, Pitfall, load_story
from ctguard.errors import UsageError


@dataclass(frozen=True)
class ExplainReport:
    index: tuple[Pitfall, ...]  # every ID, when no ID was asked for
    story: Entry | None  # the asked ID's story


def explain(finding_id: str | None = None) -> ExplainReport:
    if finding_id is None:
        return ExplainReport(tuple(CATALOGUE.values()), None)
    pitfall = CATALOGUE.get(finding_id.strip().upper())
    if pitfall is None:
        raise UsageError(f"unknown ID {finding_id!r} (run 'ctguard explain' for the list)")
    return ExplainReport((), load_story(pitfall.id))
