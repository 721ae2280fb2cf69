"""``ctguard snapshot``."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from ctguard.cli.emit import changed, emit
from ctguard.cli.options import NonEmpty, format_option, netns_option


@click.command("snapshot")
@click.option(
    "-o",
    "--output",
    type=NonEmpty(),
    metavar="FILE.tar.gz|DIR/",
    help="Where to write (default: ctguard-<host>-<UTC time>.tar.gz here).",
)
@click.option("--no-table", is_flag=True, help="Skip the table dump (it can be hundreds of MB).")
@click.option("--redact", is_flag=True, help="Replace addresses in table and logs with tokens.")
@netns_option
@format_option(schema="the manifest, ctguard_manifest.json")
def snapshot_command(
    output: str | None, no_table: bool, redact: bool, netns: str | None, fmt: str
) -> int:
    """Capture every file and command output ctguard reads, to audit elsewhere.

    The snapshot keeps host paths (proc/..., etc/...) plus command outputs under
    ctguard_commands/ and a ctguard_manifest.json saying what was captured and what
    failed. A capture that fails is recorded, not fatal. Read it back with --root.

    \b
    Examples:
      sudo ctguard snapshot -o web1.tar.gz --redact
      ctguard status --root web1.tar.gz
      sudo ctguard snapshot --netns web1 -o snap/
    """
    from ctguard.host.target import Target
    from ctguard.usecases.snapshot import SnapshotOptions, snapshot

    options = SnapshotOptions(output=output, table=not no_table, redact=redact)
    report = snapshot(Target(netns=netns), options, datetime.now(UTC))
    changed(f"wrote the snapshot {report.path}")
    if fmt == "json":
        from ctguard.output.snapshot_text import render_snapshot_json

        emit(render_snapshot_json(report))
    else:
        from ctguard.output.snapshot_text import render_snapshot_text

        emit(render_snapshot_text(report))
    return 0
