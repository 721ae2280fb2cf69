"""``ctguard report``: the fleet view of many doctor results."""

from __future__ import annotations

import sys

import click

from ctguard.cli.emit import emit
from ctguard.cli.options import format_option
from ctguard.findings import Severity


@click.command("report")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@format_option("csv", "html", schema="ctguard.report/1")
@click.option(
    "--fail-on", type=click.Choice(["warning", "critical"]), default="warning", show_default=True,
    help="Least severity that makes the exit code non-zero (as doctor's).",
)  # fmt: skip
@click.option(
    "--no-table", is_flag=True,
    help="Snapshots: do not read their conntrack table (CT402/CT505 are skipped).",
)  # fmt: skip
@click.option("-v", "--verbose", is_flag=True, help="Text: also each finding's evidence.")
def report_command(
    paths: tuple[str, ...], fmt: str, fail_on: str, no_table: bool, verbose: bool
) -> int:
    """The fleet view: many hosts' doctor results, by finding and by host.

    Each PATH is a 'ctguard doctor --format json' file, a snapshot (directory or archive
    from 'ctguard snapshot' or 'ctguard collector': doctor runs on it here), or a directory
    of them, walked (Ansible's fetch layout DEST/HOST/... works as it is). A host counts
    once, by hostname and machine id (a namespace's snapshot apart): its newest result
    wins, older ones are listed as duplicates. An input that is not ctguard's, or damaged,
    is listed with its reason and never stops the report.

    First the numbers that matter for a fleet: hosts dropping packets now, hosts whose
    settings will not survive a reload or reboot, hosts whose max the RAM cannot hold.
    --format html writes one self-contained page (no network): a table to sort and
    filter, readable on a phone.

    \b
    Exit codes (as doctor's, for the worst host):
      0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (a host no check could run on;
      no input could be read at all; bad usage)

    \b
    Examples:
      ctguard report results/                      every *.json and snapshot under it
      ctguard report web*.json snap.tar.gz         files given one by one
      ctguard report fetched/ --format html > fleet.html
      ctguard report fetched/ --format csv         one row per host and finding
    """
    from ctguard.usecases.report import ReportOptions, report

    options = ReportOptions(
        fail_on=Severity.CRITICAL if fail_on == "critical" else Severity.WARNING,
        table=not no_table,
        debug=bool(click.get_current_context().find_root().params.get("debug")),
    )
    fleet = report(paths, options)
    if fmt == "json":
        from ctguard.output.report_json import render_report_json

        emit(render_report_json(fleet))
    elif fmt == "csv":
        from ctguard.output.report_csv import render_report_csv

        emit(render_report_csv(fleet))
    elif fmt == "html":
        from ctguard.output.report_html import render_report_html

        emit(render_report_html(fleet))
    else:
        from ctguard.output.report_text import render_report_text

        emit(render_report_text(fleet, color=sys.stdout.isatty(), verbose=verbose))
    return fleet.exit_code
