"""``ctguard report PATH...``: the fleet view of many doctor results.

Each input is a doctor JSON document, or a snapshot (directory or archive) that doctor is
run on here. A host is counted once, by (hostname, machine id): its newest reading wins
and the others are listed as duplicates (a reading without a machine id joins the one id
its hostname has, if it has exactly one). An input that cannot be read is listed with its
reason and never stops the report. The three fleet questions (dropping packets now,
settings that will not survive a reload, a max the RAM cannot hold) are answered from
the catalogue's one table (``catalogue.FLEET_QUESTIONS``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ctguard.catalogue import CATALOGUE, FLEET_QUESTIONS, FleetQuestion, fleet_answers
from ctguard.errors import CtguardError, ParseError
from ctguard.exit_codes import ExitCode
from ctguard.findings import Finding, Severity, Status
from ctguard.sources.doctor_document import DoctorDocument, parse_doctor_document
from ctguard.usecases.report_inputs import JSON, Input, Unreadable, find_inputs

if TYPE_CHECKING:
    from ctguard.usecases.doctor import DoctorReport

MAX_DOCUMENT_BYTES = 16 << 20  # doctor's JSON is tens of KiB; past this it is not one
MACHINE_ID_SHOWN = 8  # text and HTML show this much of a machine id: enough to tell apart


@dataclass(frozen=True)
class ReportOptions:
    fail_on: Severity = Severity.WARNING
    table: bool = True  # doctor on a snapshot reads its table (--no-table: no)
    debug: bool = False  # a crash while reading an input raises instead of being listed


@dataclass(frozen=True)
class HostReading:
    """One host as one input saw it."""

    path: str  # the input
    kind: str  # json, snapshot or archive
    hostname: str | None
    machine_id: str | None
    created_utc: str | None
    netns: str | None
    kernel: str | None
    findings: tuple[Finding, ...]  # found ones, worst first, then by ID
    checks: int  # how many checks ran (found, passed or skipped)
    skipped: int

    @property
    def key(self) -> tuple[str, ...]:
        """Who this is: hostname and machine id (and the namespace, for a snapshot taken in
        one: its table is not the host's); the input's path when neither is known."""
        if self.hostname is None and self.machine_id is None:
            return ("path", self.path)
        return ("host", self.hostname or "", self.machine_id or "", self.netns or "")

    @property
    def label(self) -> str:
        return self.hostname or self.path

    @property
    def short_id(self) -> str | None:
        return self.machine_id[:MACHINE_ID_SHOWN] if self.machine_id else None

    @property
    def unknown(self) -> bool:
        """No check could run (doctor's UNKNOWN)."""
        return self.skipped == self.checks

    @property
    def worst(self) -> Severity:
        return max((f.severity for f in self.findings), key=_rank, default=Severity.OK)

    @property
    def state(self) -> str:
        """The worst severity's word, or "unknown" when every check was skipped."""
        return "unknown" if self.unknown and not self.findings else self.worst.value


@dataclass(frozen=True)
class Duplicate:
    reading: HostReading  # not counted
    kept: HostReading  # the newer reading of the same host


@dataclass(frozen=True)
class FindingSpread:
    """One catalogue ID across the fleet."""

    id: str
    title: str  # the catalogue's
    worst: Severity
    hosts: tuple[tuple[HostReading, Severity], ...]  # worst first, then by label
    answers: tuple[str, ...]  # keys of the fleet questions it answers yes to, at its worst

    def count(self, severity: Severity) -> int:
        return sum(1 for _, s in self.hosts if s is severity)


@dataclass(frozen=True)
class Answer:
    question: FleetQuestion
    hosts: tuple[HostReading, ...]


@dataclass(frozen=True)
class FleetReport:
    inputs: int  # inputs looked at: read, or listed as unreadable
    hosts: tuple[HostReading, ...]  # one per host, worst first, then by label
    findings: tuple[FindingSpread, ...]  # worst first, then most hosts, then ID
    answers: tuple[Answer, ...]  # in FLEET_QUESTIONS order
    duplicates: tuple[Duplicate, ...]
    unreadable: tuple[Unreadable, ...]
    exit_code: int

    @property
    def status(self) -> str:
        return ExitCode(self.exit_code).name

    def hosts_at(self, severity: Severity) -> int:
        """Hosts whose worst finding is ``severity`` (OK: nothing found, and not unknown)."""
        if severity is Severity.OK:
            return sum(1 for h in self.hosts if h.worst is Severity.OK and not h.unknown)
        return sum(1 for h in self.hosts if h.worst is severity)

    @property
    def hosts_unknown(self) -> int:
        return sum(1 for h in self.hosts if h.unknown and h.worst is Severity.OK)


def _rank(severity: Severity) -> int:
    return severity.rank


def _title(finding: Finding) -> str:
    pitfall = CATALOGUE.get(finding.id)
    return pitfall.title if pitfall is not None else finding.title or finding.id


def _worst_first(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    return tuple(sorted(findings, key=lambda f: (-f.severity.rank, f.id)))


def document_reading(path: str, doc: DoctorDocument) -> HostReading:
    """A host reading from a doctor document read back."""
    return HostReading(
        path=path,
        kind=JSON,
        hostname=doc.hostname,
        machine_id=doc.machine_id,
        created_utc=doc.created_utc,
        netns=doc.netns,
        kernel=doc.kernel,
        findings=_worst_first(doc.found),
        checks=doc.checks,
        skipped=doc.skipped,
    )


def doctor_reading(path: str, kind: str, doc: DoctorReport) -> HostReading:
    """A host reading from doctor run here, on a snapshot."""
    return HostReading(
        path=path,
        kind=kind,
        hostname=doc.host.hostname,
        machine_id=doc.host.machine_id,
        created_utc=doc.created_utc,
        netns=doc.netns,
        kernel=doc.kernel,
        findings=_worst_first(f for f in doc.findings if f.found),
        checks=len(doc.findings),
        skipped=sum(1 for f in doc.findings if f.status is Status.SKIPPED),
    )


def read_json(path: str) -> DoctorDocument:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise CtguardError(str(exc.strerror or exc)) from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ParseError(f"larger than {MAX_DOCUMENT_BYTES >> 20} MiB: not a doctor document")
    return parse_doctor_document(data)


def read_input(item: Input, options: ReportOptions) -> HostReading:
    """One input as a host reading; CtguardError says why it cannot be one."""
    if item.kind == JSON:
        return document_reading(item.path, read_json(item.path))
    # imported here: the rules and their sources are not needed for doctor documents
    from ctguard.host.target import Target
    from ctguard.usecases.doctor import DoctorOptions, doctor

    report = doctor(Target(item.path), DoctorOptions(table=options.table, debug=options.debug))
    return doctor_reading(item.path, item.kind, report)


def _safely(item: Input, options: ReportOptions) -> HostReading | Unreadable:
    try:
        return read_input(item, options)
    except CtguardError as exc:
        return Unreadable(item.path, _one_line(str(exc)))
    except OSError as exc:
        return Unreadable(item.path, _one_line(f"{exc.filename or ''} {exc.strerror or exc}"))
    except Exception as exc:  # a bug must not cost the rest of the fleet its report
        if options.debug:
            raise
        return Unreadable(item.path, _one_line(f"internal error: {type(exc).__name__}: {exc}"))


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else "unreadable"


def _keys(readings: Sequence[HostReading]) -> list[tuple[str, ...]]:
    """Each reading's host key. A reading without a machine id (an old doctor, a snapshot
    without /etc/machine-id) is the host of its hostname and namespace when the readings
    name exactly one machine id for them: the same host read before it had one, not a
    second host. With several ids it cannot be told which, and stays its own host."""
    ids: dict[tuple[str, str], set[str]] = {}
    for r in readings:
        if r.hostname is not None and r.machine_id is not None:
            ids.setdefault((r.hostname, r.netns or ""), set()).add(r.machine_id)
    keys: list[tuple[str, ...]] = []
    for r in readings:
        known = ids.get((r.hostname, r.netns or "")) if r.hostname is not None else None
        if r.machine_id is None and known is not None and len(known) == 1:
            keys.append(("host", r.hostname or "", next(iter(known)), r.netns or ""))
        else:
            keys.append(r.key)
    return keys


def dedupe(readings: Sequence[HostReading]) -> tuple[list[HostReading], list[Duplicate]]:
    """One reading per host (``_keys``): the newest (created_utc; an unknown time is the
    oldest; the later input on a tie). The others are duplicates of it, in input order."""
    keys = _keys(readings)
    newest: dict[tuple[str, ...], HostReading] = {}
    for key, r in zip(keys, readings, strict=True):
        kept = newest.get(key)
        if kept is None or (r.created_utc or "") >= (kept.created_utc or ""):
            newest[key] = r
    duplicates = [
        Duplicate(r, newest[key])
        for key, r in zip(keys, readings, strict=True)
        if newest[key] is not r
    ]
    return list(newest.values()), duplicates


def spread(hosts: Sequence[HostReading]) -> list[FindingSpread]:
    by_id: dict[str, list[tuple[HostReading, Finding]]] = {}
    for host in hosts:
        # a host counts once per ID, at its worst, even if its document lists an ID twice
        worst_of: dict[str, Finding] = {}
        for f in host.findings:  # worst first
            worst_of.setdefault(f.id, f)
        for f in worst_of.values():
            by_id.setdefault(f.id, []).append((host, f))
    spreads = []
    for finding_id, seen in by_id.items():
        seen.sort(key=lambda hf: (-hf[1].severity.rank, hf[0].label, hf[0].path))
        worst = seen[0][1].severity
        spreads.append(
            FindingSpread(
                finding_id,
                _title(seen[0][1]),
                worst,
                tuple((h, f.severity) for h, f in seen),
                fleet_answers(finding_id, worst),
            )
        )
    spreads.sort(key=lambda s: (-s.worst.rank, -len(s.hosts), s.id))
    return spreads


def answers(hosts: Sequence[HostReading]) -> list[Answer]:
    return [
        Answer(
            q,
            tuple(
                h
                for h in hosts
                if any(q.key in fleet_answers(f.id, f.severity) for f in h.findings)
            ),
        )
        for q in FLEET_QUESTIONS
    ]


def fleet_exit_code(hosts: Sequence[HostReading], fail_on: Severity = Severity.WARNING) -> int:
    """doctor's code for the worst host: 2 if any host has a critical finding, else 1 for a
    warning, else 3 if a host could not be checked at all (UNKNOWN ranks above OK, as
    monitoring ranks it), else 0. ``fail_on`` critical: warnings count as OK."""
    worst = max((h.worst.rank for h in hosts), default=0)
    if worst >= Severity.CRITICAL.rank:
        return ExitCode.CRITICAL
    if worst >= Severity.WARNING.rank and fail_on.rank <= Severity.WARNING.rank:
        return ExitCode.WARNING
    if any(h.unknown for h in hosts):
        return ExitCode.UNKNOWN
    return ExitCode.OK


def report(paths: Sequence[str], options: ReportOptions | None = None) -> FleetReport:
    """Read every input under ``paths`` and build the fleet view. CtguardError (exit 3)
    when no input at all could be read: there is no fleet to report on."""
    options = options or ReportOptions()
    inputs, unreadable = find_inputs(paths)
    readings: list[HostReading] = []
    for item in inputs:
        got = _safely(item, options)
        if isinstance(got, Unreadable):
            unreadable.append(got)
        else:
            readings.append(got)
    if not readings:
        why = f"{unreadable[0].path}: {unreadable[0].reason}" if unreadable else "nothing found"
        more = f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else ""
        raise CtguardError(f"no doctor result or snapshot could be read: {why}{more}")
    hosts, duplicates = dedupe(readings)
    hosts.sort(key=lambda h: (-h.worst.rank, not h.unknown, h.label, h.path))
    return FleetReport(
        inputs=len(readings) + len(unreadable),
        hosts=tuple(hosts),
        findings=tuple(spread(hosts)),
        answers=tuple(answers(hosts)),
        duplicates=tuple(duplicates),
        unreadable=tuple(unreadable),
        exit_code=fleet_exit_code(hosts, options.fail_on),
    )
