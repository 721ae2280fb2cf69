"""``ctguard status``."""

from __future__ import annotations

import sys

import click

from ctguard.cli.emit import emit
from ctguard.cli.options import FiniteRange, format_option, netns_option, root_option


@click.command("status")
@root_option
@netns_option
@format_option(schema="ctguard.status/1")
@click.option(
    "--interval",
    type=FiniteRange(0, 3600),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="Measure per-second rates over this long; 0 prints totals since boot.",
)
def status_command(root: str | None, netns: str | None, fmt: str, interval: float) -> int:
    """One screen: how full the table is, what it costs, what it drops.

    Shows entries / max, buckets, the kernel memory the table takes now and would take
    at max, and per-second rates of new / drop / early_drop / insert_failed / invalid.

    \b
    Examples:
      ctguard status                       live host, rates over 1 s
      ctguard status --interval 0 --format json   totals since boot, for scripts
      ctguard status --netns web1          inside a named namespace
      ctguard status --root host.tar.gz    a snapshot (counters are totals)
    """
    from ctguard.host.target import Target
    from ctguard.usecases.status import status

    report = status(Target(root, netns), interval)
    if fmt == "json":
        from ctguard.output.status_json import render_status_json

        emit(render_status_json(report))
    else:
        from ctguard.output.status_text import render_status_text

        emit(render_status_text(report, color=sys.stdout.isatty()))
    return 0
