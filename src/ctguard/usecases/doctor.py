"""``ctguard doctor``: read the target, run the catalogue over its Facts, decide the exit code."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from ctguard.exit_codes import ExitCode
from ctguard.facts import Facts, read_safely
from ctguard.findings import Finding, Severity, Status
from ctguard.host.root import HostRoot
from ctguard.host.target import Target, open_target
from ctguard.model.thresholds import Thresholds
from ctguard.rules import run_rules
from ctguard.sources.identity import Identity, read_identity
from ctguard.sources.kernel import KernelVersion
from ctguard.sources.manifest import ManifestInfo, read_manifest, utc_text
from ctguard.usecases.read_facts import read_facts


@dataclass(frozen=True)
class DoctorOptions:
    only: tuple[str, ...] = ()  # ID patterns (--only)
    fail_on: Severity = Severity.WARNING
    thresholds: Thresholds = field(default_factory=Thresholds)
    table: bool = True  # read the conntrack table (--no-table: no)
    debug: bool = False  # a rule that crashes raises instead of being skipped


@dataclass(frozen=True)
class DoctorReport:
    source: str  # "live" or "snapshot"
    netns: str | None
    kernel: str | None
    conntrack: str  # presence kind
    findings: tuple[Finding, ...]
    exit_code: int
    # which machine, and when it was read: a snapshot's manifest time, else now (a fleet
    # report tells hosts apart and keeps the newest reading of each)
    host: Identity = field(default_factory=lambda: Identity(None, None))
    created_utc: str | None = None

    @property
    def status(self) -> str:
        return ExitCode(self.exit_code).name

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
        return ExitCode.UNKNOWN
    worst = max((f.severity.rank for f in findings if f.found), default=0)
    if worst < fail_on.rank:
        return ExitCode.OK
    if worst >= Severity.CRITICAL.rank:
        return ExitCode.CRITICAL
    return ExitCode.WARNING if worst >= Severity.WARNING.rank else ExitCode.OK


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


def doctor(
    target: Target, options: DoctorOptions | None = None, now: datetime | None = None
) -> DoctorReport:
    """Check the target for every pitfall of the catalogue (or the ``only`` ones)."""
    options = options or DoctorOptions()
    with open_target(target) as opened:
        facts = read_facts(opened, options.table)
        # a namespace shares its host's hostname and machine id: read from the host root
        host = read_identity(opened.host)
        created = utc_text(now or datetime.now(UTC)) if target.live else _taken(opened.host)
    report = diagnose(facts, options.thresholds, options.only, options.fail_on, options.debug)
    return replace(report, host=host, created_utc=created)


def _taken(root: HostRoot) -> str | None:
    """When a snapshot was taken (its manifest says); None for a bare tree, a damaged
    manifest or a time not in ctguard's form: unknown, not the time it was read."""
    manifest = read_safely(read_manifest, root)
    return manifest.created_utc if isinstance(manifest, ManifestInfo) else None
