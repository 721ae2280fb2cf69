"""``status`` for a terminal: one screen, readable without colour."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from ctguard.model.units import human_bytes, number, percent
from ctguard.usecases.status import StatusReport

if TYPE_CHECKING:
    from rich.table import Table

_PRESENCE = {
    "module": "loadable module",
    "builtin": "built into the kernel",
    "absent": "not loaded",
    "unknown": "loaded (module or built-in not recorded)",
}


def _usage_style(pct: float | None) -> str:
    if pct is None:
        return ""
    return "bold red" if pct >= 95 else "yellow" if pct >= 80 else "green"


def render_status_text(report: StatusReport, color: bool = False, width: int = 80) -> str:
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=color, no_color=not color, width=width)
    scope = f" (netns {report.netns})" if report.netns else ""
    console.print(f"[bold]ctguard status[/bold]{scope}  kernel {report.kernel or '?'}")
    p = report.presence
    console.print(f"conntrack: {_PRESENCE.get(p.kind, p.kind)}")
    console.print(f"  [dim]{p.evidence}[/dim]", overflow="fold")
    if p.loaded:
        console.print(_grid(report))
    for note in report.notes:
        console.print(f"note: {note}")
    return _strip(buf.getvalue())


def _grid(report: StatusReport) -> Table:
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    pct = report.usage_percent
    style = _usage_style(pct)
    usage = f"{number(report.count)} / {number(report.max)}"
    grid.add_row("entries", f"{usage}  [{style}]{percent(pct)}[/{style}]" if style else usage)
    ratio = report.entries_per_bucket
    grid.add_row("buckets", f"{number(report.buckets)}  (max/buckets {number(ratio)})")
    m = report.memory
    if m is not None:
        grid.add_row(
            "memory now",
            f"{human_bytes(m.at_count)}  ({percent(m.percent(m.at_count))} of "
            f"{human_bytes(m.mem_total)} RAM)",
        )
        grid.add_row(
            "memory at max",
            f"{human_bytes(m.at_max)}  ({percent(m.percent(m.at_max))} of RAM; "
            f"{m.entry_bytes} B/entry, {m.entry_source})",
        )
    c = report.counters
    if c is not None:
        unit = f"per second over {c.interval:.1f} s" if c.mode == "rate" else "totals"
        cells = "  ".join(f"{k} {number(v, 'n/a')}" for k, v in c.values.items())
        grid.add_row("counters", f"{cells}")
        grid.add_row("", f"[dim]{unit}, from {c.source}[/dim]")
    return grid


def _strip(text: str) -> str:
    return "".join(line.rstrip() + "\n" for line in text.splitlines())
