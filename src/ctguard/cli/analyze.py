"""``ctguard analyze``: what fills the table (live, a namespace, a snapshot, a file, stdin)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ctguard.cli.emit import emit
from ctguard.cli.options import format_option, root_option, source_option
from ctguard.table.summary import BREAKDOWNS

if TYPE_CHECKING:  # imported when a command runs, to keep `ctguard --help` quick
    from ctguard.usecases.analyze import AnalyzeReport
    from ctguard.usecases.analyze_namespaces import NamespacesReport


@click.command("analyze")
@click.argument("dump", required=False, metavar="[FILE|-]")
@root_option
@click.option(
    "--netns",
    metavar="NAME|all",
    help="Read inside a named network namespace; 'all' lists every namespace's entry "
    "count and analyzes the busiest. Needs root.",
)
@source_option
@click.option(
    "--by",
    "by_spec",
    metavar="LIST|all",
    help=f"Breakdowns to show, comma-separated: {', '.join(BREAKDOWNS)}. Default: all but sport.",
)
@click.option(
    "--top",
    type=click.IntRange(0, 10_000_000),
    default=10,
    show_default=True,
    help="Rows per breakdown (0: every row).",
)
@format_option("csv", schema="ctguard.analyze/1, one line: pipe to jq")
@click.option(
    "--what-if",
    "what_if_spec",
    metavar="NAME=S,...",
    help="How many entries would already have expired under these timeouts, e.g. "
    "tcp_timeout_established=600,udp_timeout=30 (current values from the host, --root "
    "or --netns).",
)
@click.option(
    "--local-address",
    "local_spec",
    metavar="ADDR,...",
    help="With a FILE: the addresses of the host the dump comes from, which tell each "
    "entry's direction (whom a NOTRACK candidate's --direction must fit). Without them "
    "(or a --root snapshot's) a file gets no candidates. Live and snapshot tables use the "
    "host's own (/proc/net/fib_trie and if_inet6, else ip -j addr).",
)
def analyze_command(
    dump: str | None,
    root: str | None,
    netns: str | None,
    source: str,
    by_spec: str | None,
    top: int,
    fmt: str,
    what_if_spec: str | None,
    local_spec: str | None,
) -> int:
    """What fills the conntrack table: every breakdown in one pass over the table.

    Reads the live table (/proc/net/nf_conntrack, or 'conntrack -L' when procfs is
    off), a namespace's, a snapshot's, or a dump file: /proc/net/nf_conntrack or
    'conntrack -L' text, plain or gzip, '-' for stdin. Unparseable lines are counted
    and reported, never fatal.

    \b
    Examples:
      ctguard analyze                              live table, top 10 of each breakdown
      ctguard analyze --by dport,state --top 5     only those breakdowns
      ctguard analyze --what-if tcp_timeout_established=600,udp_timeout=30
      ctguard analyze --netns all                  every namespace, busiest first
      conntrack -L | ctguard analyze - --format json
      ctguard analyze table.txt.gz --root host.tar.gz --what-if udp_timeout=10
      ctguard analyze table.txt.gz --local-address 10.0.0.10,2001:db8::10

    Exit codes: 0 analyzed (an empty table too), 3 input unreadable, or only
    unparseable lines.
    """
    from ctguard.host.target import Target
    from ctguard.table.whatif import parse_what_if
    from ctguard.usecases.analyze import (
        AnalyzeOptions,
        analyze,
        parse_breakdowns,
        parse_local_addresses,
    )

    if local_spec is not None and dump is None:
        raise click.UsageError(
            "--local-address is for a FILE (a live or snapshot table uses its ip -j addr)"
        )
    try:
        breakdowns = parse_breakdowns(by_spec)
        local = None if local_spec is None else parse_local_addresses(local_spec)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    options = AnalyzeOptions(
        breakdowns=breakdowns,
        top=None if top == 0 else top,
        source=source,
        what_if=parse_what_if(what_if_spec) if what_if_spec is not None else None,
        local_addresses=local,
    )
    target = Target(root, netns)  # --root with --netns (all too) is refused here
    if netns == "all":
        from ctguard.usecases.analyze_namespaces import analyze_namespaces

        if dump is not None:
            raise click.UsageError("a FILE and --netns cannot be combined")
        emit(_render_namespaces(analyze_namespaces(options), fmt))
        return 0
    emit(_render(analyze(target, options, dump), fmt))
    return 0


def _render(report: AnalyzeReport, fmt: str) -> str:
    if fmt == "json":
        from ctguard.output.analyze_json import render_analyze_json

        return render_analyze_json(report)
    if fmt == "csv":
        from ctguard.output.analyze_csv import render_analyze_csv

        return render_analyze_csv(report)
    from ctguard.output.analyze_text import render_analyze_text

    return render_analyze_text(report)


def _render_namespaces(report: NamespacesReport, fmt: str) -> str:
    from ctguard.output import analyze_namespaces as render

    if fmt == "json":
        return render.render_namespaces_json(report)
    if fmt == "csv":
        return render.render_namespaces_csv(report)
    return render.render_namespaces_text(report)
