"""``top`` for a terminal: one frame as a rich renderable, readable without colour."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ctguard.model.rates import RATE_COUNTERS
from ctguard.model.units import number, percent
from ctguard.usecases.top import TopFrame

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType
    from rich.measure import Measurement
    from rich.segment import Segment
    from rich.table import Table

BAR_WIDTH = 40


def usage_style(pct: float | None) -> str:
    """The same thresholds as status and CT101: 80 % warn, 95 % critical."""
    if pct is None:
        return ""
    return "bold red" if pct >= 95 else "yellow" if pct >= 80 else "green"


class UsageBar:
    """``[████████░░░░]``; plain ``#`` and ``.`` where the console cannot show blocks."""

    def __init__(self, pct: float | None, width: int = BAR_WIDTH) -> None:
        self.pct = pct
        self.width = width

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        from rich.measure import Measurement

        return Measurement(self.width + 2, self.width + 2)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Segment]:
        from rich.segment import Segment
        from rich.style import Style

        full, empty = ("#", ".") if options.ascii_only else ("█", "░")
        filled = 0 if self.pct is None else round(min(100.0, self.pct) * self.width / 100)
        style = Style.parse(usage_style(self.pct) or "none")
        yield Segment("[")
        yield Segment(full * filled, style)
        yield Segment(empty * (self.width - filled), Style.parse("dim"))
        yield Segment("]")


def render_top(frame: TopFrame, live: bool = True) -> RenderableType:
    """One frame: gauge, rates, top ports / sources / states, namespaces, footer.

    ``live``: the footer says when the table is read next and that q quits.
    """
    from rich.columns import Columns
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    scope = f" (netns {frame.netns})" if frame.netns else ""
    clock = time.strftime("%H:%M:%S", time.localtime(frame.time))
    parts: list[RenderableType] = [Text.from_markup(f"[bold]ctguard top[/bold]{scope}  {clock}")]

    pct = frame.usage_percent
    style = usage_style(pct)
    limit = "unlimited" if frame.max == 0 else number(frame.max)
    gauge = Table.grid(padding=(0, 1))
    for _ in range(3):
        gauge.add_column()
    shown = percent(pct)
    gauge.add_row(
        Text(f"entries {number(frame.count)} / {limit}"),
        UsageBar(pct),
        Text(shown, style=style) if style else Text(shown),
    )
    parts.append(gauge)
    parts.append(_rates_line(frame, live))

    view = frame.table
    if view is None:
        parts.append(Text("table: not read yet", style="dim"))
    else:
        parts.append(Text(f"table: {number(view.entries)} entries, from {view.source}"))
        parts.append(
            Columns(
                [
                    _small_table(
                        "top ports",
                        ("port", "entries", "share"),
                        [
                            (f"{proto}/{port}", number(n), _share(n, view.entries))
                            for proto, port, n in view.ports
                        ],
                    ),
                    _small_table(
                        "top sources",
                        ("source", "entries", "share"),
                        [(addr, number(n), _share(n, view.entries)) for addr, n in view.sources],
                    ),
                    _small_table(
                        "states",
                        ("state", "entries", "share"),
                        [
                            (
                                f"{proto} {state}" if state else f"{proto} (no state)",
                                number(n),
                                _share(n, view.entries),
                            )
                            for proto, state, n in view.states
                        ],
                    ),
                ],
                padding=(0, 3),
            )
        )
    if frame.namespaces is not None:
        rows = [
            (
                ns.label,
                number(ns.count) if ns.count is not None else "?",
                percent(ns.share) if ns.share is not None else ns.error or "-",
            )
            for ns in frame.namespaces
        ]
        parts.append(_small_table("busiest namespaces", ("namespace", "entries", "of max"), rows))
    for note in frame.notes:
        parts.append(Text(f"note: {note}"))
    parts.append(Text(_footer(frame, live), style="dim"))
    return Group(*parts)


def render_top_text(frame: TopFrame, live: bool, color: bool) -> str:
    """``render_top`` as text: the terminal's width and colour when ``color``, else 100
    plain columns (a pipe, a script); no trailing blanks."""
    import io

    from rich.console import Console

    buf = io.StringIO()
    width = Console().width if color else 100
    console = Console(file=buf, force_terminal=color, no_color=not color, width=width)
    console.print(render_top(frame, live=live))
    return "".join(line.rstrip() + "\n" for line in buf.getvalue().splitlines())


def _rates_line(frame: TopFrame, live: bool) -> RenderableType:
    from rich.text import Text

    rates = frame.rates
    line = Text("per second  ")
    if rates is None:
        if not frame.counter_source:
            line.append("n/a (no counters)", "dim")
        else:
            line.append("from the next refresh" if live else "not measured (--interval 0)", "dim")
        return line
    for name in RATE_COUNTERS:
        value = rates.values.get(name)
        cell = "n/a" if value is None else f"{value:,.1f}"
        if name == "new" and rates.new_lower_bound and value is not None:
            cell = f">={cell}"
        bad = name != "new" and value is not None and value > 0
        line.append(f"{name} ")
        line.append(cell, "bold red" if bad else "bold")
        line.append("  ")
    # its own line: with five counters the rates fill an 80-column terminal
    line.append(f"\n            over {rates.seconds:.1f} s, from {frame.counter_source}", "dim")
    return line


def _small_table(
    title: str, headers: tuple[str, str, str], rows: list[tuple[str, str, str]]
) -> Table:
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1))
    table.add_column(headers[0], no_wrap=True)
    table.add_column(headers[1], justify="right")
    table.add_column(headers[2], justify="right")
    for row in rows:
        table.add_row(*row)
    if not rows:
        table.add_row("(none)", "", "")
    return table


def _share(count: int, total: int) -> str:
    return percent(100.0 * count / total) if total else "-"


def _footer(frame: TopFrame, live: bool) -> str:
    parts = []
    if frame.table_age is not None and frame.table_cost is not None:
        read = f"table read {frame.table_age:.2f} s ago, took {frame.table_cost:.2f} s"
        if live and frame.table_next is not None:
            read += f"; next in {frame.table_next:.1f} s"
        parts.append(read)
    if live:
        parts.append("q quits")
    return " · ".join(parts)
