"""``report`` for a terminal: the fleet numbers first, then each finding across the fleet
(worst first), then each host (worst first), then what was not counted and why.

As doctor's text: severity words carry the meaning without colour, lines are not wrapped.
A finding's hosts are named up to ``NAMED`` of them (the by-host part lists every host;
``--format csv`` gives every pair).

Hostnames, paths, titles, evidence and reasons come from the inputs, written on many
hosts: a control character in them (an ESC sequence could retitle the terminal, hide
lines or forge a link) is printed as ``?`` (``printable``).
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

from ctguard.findings import Severity
from ctguard.output.report_words import ORDER, headline, host_name, hosts, mix
from ctguard.usecases.report import FleetReport, HostReading

_STYLE = {
    Severity.CRITICAL: "bold red",
    Severity.WARNING: "yellow",
    Severity.INFO: "cyan",
    Severity.OK: "green",
}
NAMED = 12  # hosts named per finding and per fleet question
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1


def printable(text: str) -> str:
    """Text from an input, safe to print on a terminal: control characters become ``?``.

    >>> printable("web03\x1b]0;owned\x07 \x9b2J")
    'web03?]0;owned? ?2J'
    """
    return _CONTROL.sub("?", text)


def _names(readings: Sequence[HostReading]) -> str:
    shown = ", ".join(host_name(h) for h in readings[:NAMED])
    more = len(readings) - NAMED
    return f"{shown}, and {more:,} more" if more > 0 else shown


def render_report_text(report: FleetReport, color: bool = False, verbose: bool = False) -> str:
    from rich.console import Console
    from rich.markup import escape

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=color, no_color=not color, width=100, soft_wrap=True)

    def say(markup: str = "", plain: str = "") -> None:
        # every line's text goes through here, and every input-derived string with it
        console.print(markup + escape(printable(plain)), highlight=False)

    notes = []
    if report.duplicates:
        notes.append(f"{len(report.duplicates):,} duplicate")
    if report.unreadable:
        notes.append(f"{len(report.unreadable):,} unreadable")
    extra = f" ({', '.join(notes)})" if notes else ""
    head = f": {hosts(len(report.hosts))} from {report.inputs:,} inputs{extra}"
    say("[bold]ctguard report[/bold]", head)
    say()
    say("[bold]fleet[/bold]")
    width = max(len(a.question.label) for a in report.answers)
    for a in report.answers:
        names = f"  {_names(a.hosts)}" if a.hosts else ""
        say("", f"  {a.question.label:<{width}}  {hosts(len(a.hosts)):>10}{names}")
    if report.findings:
        say()
        say("[bold]by finding[/bold] (worst first)")
        for s in report.findings:
            style = _STYLE[s.worst]
            tag = f"[{style}]{s.worst.value.upper()}[/{style}] "
            spread = f" ({mix(s)})" if len({sev for _, sev in s.hosts}) > 1 else ""
            say(tag, headline(s) + spread)
            say("", f"  {_names([h for h, _ in s.hosts])}")
    say()
    say("[bold]by host[/bold] (worst first)")
    for h in report.hosts:
        word = h.state.upper()
        style = "magenta" if word == "UNKNOWN" else _STYLE[h.worst]
        taken = f"  {h.created_utc}" if h.created_utc else ""
        scope = f"  netns {h.netns}" if h.netns else ""
        say(f"[{style}]{word}[/{style}] ", f"{host_name(h)}{scope}{taken}  {h.path}")
        if word == "UNKNOWN":
            say("", "  every check skipped: nothing could be read")
        elif not h.findings:
            say("", "  nothing found")
        for f in h.findings:
            say("", f"  {f.severity.value} {f.id} {f.title}")
            if verbose:
                for line in f.evidence:
                    say("", f"    - {line}")
    if report.duplicates:
        say()
        say("[bold]duplicates[/bold] (older readings, not counted)")
        for d in report.duplicates:
            old, kept = d.reading, d.kept
            say(
                "",
                f"  {host_name(old)}: {old.path} ({old.created_utc or 'time unknown'});"
                f" counted: {kept.path} ({kept.created_utc or 'time unknown'})",
            )
    if report.unreadable:
        say()
        say("[bold]unreadable[/bold] (not counted)")
        for u in report.unreadable:
            say("", f"  {u.path}: {u.reason}")
    counts = [f"{report.hosts_at(s):,} {s.value}" for s in ORDER]
    counts.append(f"{report.hosts_at(Severity.OK):,} ok")
    if report.hosts_unknown:
        counts.append(f"{report.hosts_unknown:,} unknown")
    say()
    say(f"[bold]{report.status}[/bold]", f": {hosts(len(report.hosts))}: {', '.join(counts)}")
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"
