"""What a rule says: a finding with evidence and a fix, a pass, or a skip with its reason."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Severity(Enum):
    OK = "ok"
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {Severity.OK: 0, Severity.INFO: 1, Severity.WARNING: 2, Severity.CRITICAL: 3}


class Status(Enum):
    FOUND = "found"  # the pitfall is present
    PASSED = "passed"  # checked, not present
    SKIPPED = "skipped"  # an input was missing: nothing is guessed


@dataclass(frozen=True)
class Finding:
    """One rule's result. ``evidence`` quotes the file line or counter the rule saw."""

    id: str
    status: Status
    severity: Severity
    title: str
    evidence: tuple[str, ...] = ()
    fix: str = ""
    reason: str = ""  # why it passed or was skipped, one line

    @property
    def found(self) -> bool:
        return self.status is Status.FOUND
