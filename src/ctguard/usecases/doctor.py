"""``ctguard doctor``: run the catalogue over Facts and decide the exit code (design §3)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ctguard.facts import Facts
from ctguard.findings import Finding, Severity, Status
from ctguard.model.thresholds import Thresholds
from ctguard.rules import run_rules
from ctguard.sources.kernel import KernelVersion

EXIT_OK, EXIT_WARNING, EXIT_CRITICAL, EXIT_UNKNOWN = 0, 1, 2, 3
STATUS_NAMES = {
    EXIT_OK: "OK",
    EXIT_WARNING: "WARNING",
    EXIT_CRITICAL: "CRITICAL",
    EXIT_UNKNOWN: "UNKNOWN",
}


@dataclass(frozen=True)
class DoctorReport:
    source: str  # "live" or "snapshot"
    netns: str | None
    kernel: str | None
    conntrack: str  # presence kind
    findings: tuple[Finding, ...]
    exit_code: int

    @property
    def status(self) -> str:
        return STATUS_NAMES[self.exit_code]

    def count(self, status: Status, severity: Severity | None = None) -> int:
        return sum(
            1
            for f in self.findings
            if f.status is status and (severity is None or f.severity is severity)
        )


def exit_code(findings: Sequence[Finding], fail_on: Severity = Severity.WARNING) -> int:
    """0 OK, 1 WARNING, 2 CRITICAL; 3 UNKNOWN when no rule could run at all.

    ``fail_on`` is the least severity that changes the exit code: with CRITICAL, warnings
    still print but exit 0.
    """
    if findings and all(f.status is Status.SKIPPED for f in findings):
        return EXIT_UNKNOWN
    worst = max((f.severity.rank for f in findings if f.found), default=0)
    if worst < fail_on.rank:
        return EXIT_OK
    if worst >= Severity.CRITICAL.rank:
        return EXIT_CRITICAL
    return EXIT_WARNING if worst >= Severity.WARNING.rank else EXIT_OK


def diagnose(
    facts: Facts,
    thresholds: Thresholds | None = None,
    only: Iterable[str] = (),
    fail_on: Severity = Severity.WARNING,
    debug: bool = False,
) -> DoctorReport:
    findings = tuple(run_rules(facts, thresholds, only, debug))
    kernel = facts.kernel.release if isinstance(facts.kernel, KernelVersion) else None
    return DoctorReport(
        source="live" if facts.live else "snapshot",
        netns=facts.netns,
        kernel=kernel,
        conntrack=facts.presence.kind,
        findings=findings,
        exit_code=exit_code(findings, fail_on),
    )
