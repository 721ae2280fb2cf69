"""``ctguard status``."""

from __future__ import annotations

import sys

import click

from ctguard.cli.emit import emit
from ctguard.cli.options import finite_seconds, format_option, netns_option, root_option
from ctguard.errors import CtguardError
from ctguard.host.archive import open_root
from ctguard.host.commands import CapturedCommands, LiveCommands
from ctguard.host.ct_events import count_new_events
from ctguard.host.netns import run_in_netns
from ctguard.host.root import HostRoot
from ctguard.sources.manifest import read_manifest
from ctguard.sources.sysctl_runtime import read_conntrack_sysctls
from ctguard.usecases.status import StatusInputs, StatusReport, build_status, gather


def collect_status(root: str | None, netns: str | None, interval: float) -> StatusReport:
    if root is not None:
        with open_root(root) as host:
            manifest = read_manifest(host)
            inputs = gather(host, CapturedCommands(host), interval=0)
            return build_status(inputs, netns=manifest.netns if manifest else None)
    if netns is not None:

        def job() -> StatusInputs:
            return gather(HostRoot("/"), LiveCommands(), interval, count_new_events)

        inside = run_in_netns(netns, job, timeout=interval + 60)
        init = read_conntrack_sysctls(HostRoot("/"))
        return build_status(inside.with_globals(init), netns=netns)
    return build_status(gather(HostRoot("/"), LiveCommands(), interval, count_new_events))


@click.command("status")
@root_option
@netns_option
@format_option(schema="ctguard.status/1")
@click.option(
    "--interval",
    type=click.FloatRange(0, 3600),
    callback=finite_seconds,
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
    if root is not None and netns is not None:
        raise click.UsageError("--root and --netns cannot be combined (a snapshot is not live)")
    try:
        report = collect_status(root, netns, interval)
    except OSError as exc:
        raise CtguardError(f"{exc.filename or 'reading host'}: {exc.strerror or exc}") from None
    if fmt == "json":
        from ctguard.output.status_json import render_status_json

        emit(render_status_json(report))
    else:
        from ctguard.output.status_text import render_status_text

        emit(render_status_text(report, color=sys.stdout.isatty()))
    return 0
