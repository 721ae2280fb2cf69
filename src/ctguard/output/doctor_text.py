"""``doctor`` for a terminal: findings grouped by severity, evidence, then the fix.

Readable without colour: severity words, not colours, carry the meaning, and lines are
never wrapped (a fix is a command to copy).
"""

from __future__ import annotations

import io

from ctguard.findings import Finding, Severity, Status
from ctguard.usecases.doctor import DoctorReport

_STYLE = {Severity.CRITICAL: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
_ORDER = (Severity.CRITICAL, Severity.WARNING, Severity.INFO)


def _finding_lines(f: Finding) -> list[str]:
    style = _STYLE[f.severity]
    lines = [f"[{style}]{f.severity.value.upper()}[/{style}] [bold]{f.id}[/bold] {f.title}"]
    lines += [f"  - {line}" for line in f.evidence]
    if f.fix:
        fix = f.fix.splitlines()
        lines.append(f"  fix: {fix[0]}")
        lines += [f"       {line}" for line in fix[1:]]
    lines.append(f"  more: ctguard explain {f.id}")
    return lines


def render_doctor_text(report: DoctorReport, color: bool = False, verbose: bool = False) -> str:
    from rich.console import Console
    from rich.markup import escape

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=color, no_color=not color, width=100, soft_wrap=True)
    scope = f", netns {report.netns}" if report.netns else ""
    console.print(
        f"[bold]ctguard doctor[/bold] ({report.source}{scope}, kernel {report.kernel or '?'},"
        f" conntrack {report.conntrack})",
        highlight=False,
    )
    for severity in _ORDER:
        for f in report.findings:
            if f.found and f.severity is severity:
                console.print()
                first, *rest = _finding_lines(f)
                console.print(first, highlight=False)
                for line in rest:
                    console.print(escape(line), highlight=False)
    skipped = [f for f in report.findings if f.status is Status.SKIPPED]
    if skipped:
        console.print()
        console.print("[bold]skipped[/bold] (input missing, nothing guessed):", highlight=False)
        for f in skipped:
            console.print(escape(f"  {f.id} {f.title}: {f.reason}"), highlight=False)
    passed = [f for f in report.findings if f.status is Status.PASSED]
    if passed and verbose:
        console.print()
        console.print("[bold]passed[/bold]:", highlight=False)
        for f in passed:
            console.print(escape(f"  {f.id} {f.title}: {f.reason}"), highlight=False)
    elif passed:
        console.print()
        console.print(escape(f"passed: {' '.join(f.id for f in passed)}  (-v shows why)"))
    found = {s: report.count(Status.FOUND, s) for s in _ORDER}
    console.print()
    console.print(
        f"[bold]{report.status}[/bold]: {found[Severity.CRITICAL]} critical,"
        f" {found[Severity.WARNING]} warning, {found[Severity.INFO]} info,"
        f" {len(passed)} passed, {len(skipped)} skipped",
        highlight=False,
    )
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"
