"""``ctguard analyze``: what fills the table (live, a namespace, a snapshot, a file, stdin)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from ctguard.cli.emit import emit
from ctguard.cli.options import root_option, source_option
from ctguard.errors import CtguardError
from ctguard.missing import Missing
from ctguard.table.summary import BREAKDOWNS

if TYPE_CHECKING:  # imported when a command runs, to keep `ctguard --help` quick
    from ctguard.host.root import HostRoot
    from ctguard.table.source import TableRead
    from ctguard.usecases.analyze import AnalyzeReport


@dataclass(frozen=True)
class _Read:
    """What one reading job brings back (picklable, so it crosses from a namespace)."""

    table: TableRead | Missing
    sysctls: dict[str, int]


def _sysctls(host: HostRoot) -> dict[str, int]:
    """The namespace's (or snapshot's) nf_conntrack_* values; empty when unreadable."""
    from ctguard.sources.sysctl_runtime import read_conntrack_sysctls

    values = read_conntrack_sysctls(host)
    return {} if isinstance(values, Missing) else dict(values.values)


def _read_host(root_path: str, source: str, by_sport: bool, live: bool, exact: bool) -> _Read:
    from ctguard.host.commands import CapturedCommands, LiveCommands
    from ctguard.host.root import HostRoot
    from ctguard.table.source import read_table

    host = HostRoot(root_path)
    commands = LiveCommands() if live else CapturedCommands(host)
    return _Read(read_table(host, commands, source, by_sport, exact), _sysctls(host))


def _read_file(path: str, by_sport: bool, exact: bool) -> TableRead:
    from ctguard.table.reader import gunzipped, scan_path, scan_stream
    from ctguard.table.source import TableRead

    if path == "-":
        try:
            tally = scan_stream(gunzipped(sys.stdin.buffer), by_sport, False, exact)
        except (OSError, EOFError) as exc:  # a truncated or corrupt gzip stream
            raise CtguardError(f"stdin: {exc}") from None
        return TableRead(tally, "stdin")
    try:
        tally = scan_path(path, by_sport, exact_timeouts=exact)
    except FileNotFoundError:
        raise CtguardError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CtguardError(f"{path} is a directory (use --root DIR for a snapshot)") from None
    except (OSError, EOFError) as exc:  # EOFError: a truncated gzip file
        raise CtguardError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None
    return TableRead(tally, path)


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
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "csv"]),
    default="text",
    show_default=True,
)
@click.option(
    "--what-if",
    "what_if_spec",
    metavar="NAME=S,...",
    help="How many entries would already have expired under these timeouts, e.g. "
    "tcp_timeout_established=600,udp_timeout=30 (current values from the host, --root "
    "or --netns).",
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

    Exit codes: 0 analyzed (an empty table too), 3 input unreadable, or only
    unparseable lines.
    """
    from ctguard.table.whatif import parse_what_if
    from ctguard.usecases.analyze import build_report, parse_breakdowns

    if dump is not None and netns is not None:
        raise click.UsageError("a FILE and --netns cannot be combined")
    if root is not None and netns is not None:
        raise click.UsageError("--root and --netns cannot be combined (a snapshot is not live)")
    try:
        breakdowns = parse_breakdowns(by_spec)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    proposed = parse_what_if(what_if_spec) if what_if_spec is not None else None
    by_sport = "sport" in breakdowns
    if netns == "all":
        from ctguard.cli.analyze_netns import analyze_all_namespaces

        return analyze_all_namespaces(source, breakdowns, None if top == 0 else top, fmt)
    read = _gather(dump, root, netns, source, by_sport, proposed is not None)
    table = read.table
    if isinstance(table, Missing):
        raise CtguardError(f"cannot read the conntrack table: {table.reason}")
    tally = table.tally
    if tally.entries == 0 and tally.bad > 0:
        raise CtguardError(
            f"{table.source}: no conntrack entries in {tally.lines} lines "
            f"(line {tally.first_bad}: {tally.first_bad_text[:60].decode('utf-8', 'replace')!r})"
        )
    report = build_report(
        tally,
        table.source,
        breakdowns,
        None if top == 0 else top,
        read.sysctls,
        proposed,
        netns,
    )
    emit(_render(report, fmt))
    return 0


def _gather(
    dump: str | None,
    root: str | None,
    netns: str | None,
    source: str,
    by_sport: bool,
    need_sysctls: bool,
) -> _Read:
    if root is not None:
        from ctguard.host.archive import open_root

        with open_root(root) as host:
            if dump is None:
                return _read_host(str(host.base), source, by_sport, False, need_sysctls)
            # the file is the table; the snapshot only lends its timeouts
            return _Read(_read_file(dump, by_sport, need_sysctls), _sysctls(host))
    if dump is not None:
        from ctguard.host.root import HostRoot

        sysctls = _sysctls(HostRoot("/")) if need_sysctls else {}
        return _Read(_read_file(dump, by_sport, need_sysctls), sysctls)
    if netns is not None:
        from ctguard.host.netns import run_in_netns

        return run_in_netns(netns, lambda: _read_host("/", source, by_sport, True, need_sysctls))
    if os.geteuid() != 0:
        raise CtguardError("reading the live table needs root (/proc/net/nf_conntrack is 0440)")
    return _read_host("/", source, by_sport, True, need_sysctls)


def _render(report: AnalyzeReport, fmt: str) -> str:
    if fmt == "json":
        from ctguard.output.analyze_json import render_analyze_json

        return render_analyze_json(report)
    if fmt == "csv":
        from ctguard.output.analyze_csv import render_analyze_csv

        return render_analyze_csv(report)
    from ctguard.output.analyze_text import render_analyze_text

    return render_analyze_text(report)
