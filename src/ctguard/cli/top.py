"""``ctguard top``: a live view of the table, refreshed every ``--interval``."""

from __future__ import annotations

import os
import select
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from ctguard.cli.emit import emit, lost
from ctguard.cli.options import FiniteRange, format_option, netns_option, source_option

if TYPE_CHECKING:
    from ctguard.usecases.top import TopSampler

MIN_LIVE_INTERVAL = 0.1


@click.command("top")
@click.option(
    "--interval",
    type=FiniteRange(0, 3600),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="Refresh period; rates are per second over it. 0 only with --once (totals, no rates).",
)
@netns_option
@source_option
@click.option(
    "--top",
    type=click.IntRange(1, 1000),
    default=5,
    show_default=True,
    help="Rows of ports, sources, states and namespaces.",
)
@click.option("--once", is_flag=True, help="Print one frame and exit (for scripts).")
@format_option(schema="ctguard.top/1, one frame per line")
def top_command(
    interval: float, netns: str | None, source: str, top: int, once: bool, fmt: str
) -> int:
    """A live view: usage, per-second rates, top ports, sources and states.

    Counters are read every refresh; the full table only as often as its own cost
    allows (at most 15 % of one core on average), so top never becomes the load.
    On the host (without --netns) it also lists the busiest network namespaces.
    Press q or Ctrl-C to quit.

    \b
    Examples:
      ctguard top                          live, refresh every 2 s
      ctguard top --netns web1             inside a named namespace
      ctguard top --once --interval 1      one frame, rates over 1 s, then exit
      ctguard top --format json | jq .count   a JSON object per refresh (JSON Lines)
    """
    from ctguard.output.top_text import render_top_text
    from ctguard.usecases.top import one_frame, top_session

    if interval < MIN_LIVE_INTERVAL and not once:
        raise click.UsageError(
            f"a live view refreshes at most every {MIN_LIVE_INTERVAL:g} s "
            "(--interval 0 works only with --once)"
        )
    with top_session(netns, source, top, interval) as sampler:
        try:
            if once:
                frame = one_frame(sampler, interval)
                if fmt == "json":
                    from ctguard.output.top_json import render_top_json

                    emit(render_top_json(frame))
                else:
                    emit(render_top_text(frame, live=False, color=sys.stdout.isatty()))
            elif fmt == "json":
                _json_lines(sampler, interval)
            else:
                _live(sampler, interval)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how one leaves a live view: not an error
    return 0


@contextmanager
def _keys() -> Iterator[int | None]:
    """stdin in cbreak mode (keys arrive unbuffered, unechoed; Ctrl-C still interrupts),
    restored on the way out; None when stdin is not a terminal."""
    if not sys.stdin.isatty():
        yield None
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield fd
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _wait_for_quit(keys: int | None, until: float) -> bool:
    """Sleep until ``until`` (monotonic); True as soon as q is pressed."""
    while (left := until - time.monotonic()) > 0:
        if keys is None:
            time.sleep(left)
            return False
        ready, _, _ = select.select([keys], [], [], left)
        if ready:
            typed = os.read(keys, 64)
            if not typed or b"q" in typed.lower():
                return True  # q, or the terminal went away
    return False


def _json_lines(sampler: TopSampler, interval: float) -> None:
    """One JSON object per refresh, for scripts; q (on a terminal) or Ctrl-C ends it."""
    from ctguard.output.top_json import render_top_json

    with _keys() as keys:
        while True:
            started = time.monotonic()
            emit(render_top_json(sampler.sample()))
            if lost() or _wait_for_quit(keys, started + interval):
                return  # stdout gone (| head -1): nobody reads further frames


def _live(sampler: TopSampler, interval: float) -> None:
    from rich.console import Console

    from ctguard.output.top_text import render_top, render_top_text

    console = Console()
    with _keys() as keys:
        if not console.is_terminal:  # piped: one frame after another
            while True:
                started = time.monotonic()
                emit(render_top_text(sampler.sample(), live=True, color=False) + "\n")
                if lost() or _wait_for_quit(keys, started + interval):
                    return
        from rich.live import Live

        with Live(console=console, screen=False, auto_refresh=False) as live:
            while True:
                started = time.monotonic()
                live.update(render_top(sampler.sample()), refresh=True)
                if _wait_for_quit(keys, started + interval):
                    return
