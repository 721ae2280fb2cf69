"""``ctguard snapshot``."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import click

from ctguard.cli.options import netns_option
from ctguard.errors import CtguardError
from ctguard.host.commands import LiveCommands
from ctguard.host.netns import netns_born, run_in_netns
from ctguard.host.root import SMALL_FILE_BYTES, HostRoot
from ctguard.missing import Missing
from ctguard.sources.sysctl_runtime import NETFILTER_DIR


def _init_values(host: HostRoot) -> tuple[tuple[str, str], ...]:
    """The initial namespace's conntrack sysctls, kept beside a namespace's snapshot."""
    values = []
    for path in host.glob(NETFILTER_DIR, "nf_conntrack_*"):
        text = host.try_read_text(path, SMALL_FILE_BYTES)
        if not isinstance(text, Missing):
            values.append((path.rsplit("/", 1)[1], text))
    return tuple(values)


def default_name(host: HostRoot, now: datetime) -> str:
    name = host.try_read_text("/proc/sys/kernel/hostname")
    safe = "host" if isinstance(name, Missing) else re.sub(r"[^A-Za-z0-9._-]", "_", name.strip())
    return f"ctguard-{safe or 'host'}-{now.strftime('%Y%m%dT%H%M%SZ')}.tar.gz"


@click.command("snapshot")
@click.option(
    "-o",
    "--output",
    metavar="FILE.tar.gz|DIR/",
    help="Where to write (default: ctguard-<host>-<UTC time>.tar.gz here).",
)
@click.option("--no-table", is_flag=True, help="Skip the table dump (it can be hundreds of MB).")
@click.option("--redact", is_flag=True, help="Replace addresses in table and logs with tokens.")
@netns_option
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def snapshot_command(
    output: str | None, no_table: bool, redact: bool, netns: str | None, as_json: bool
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
    # imported here, not at the top: keeps `ctguard status` start-up fast
    from ctguard.snapshot.capture import CaptureOptions, capture
    from ctguard.snapshot.writer import open_writer

    now = datetime.now(UTC)
    target = output or default_name(HostRoot("/"), now)
    opts = CaptureOptions(
        table=not no_table,
        redact=redact,
        netns=netns,
        init_values=_init_values(HostRoot("/")) if netns else (),
        netns_born=netns_born(netns) if netns else None,
    )

    def job() -> dict[str, Any]:
        return capture(HostRoot("/"), LiveCommands(), open_writer(target), opts, now)

    try:
        # every program has its own timeout; this only bounds a wedged helper process
        manifest = run_in_netns(netns, job, timeout=3600) if netns else job()
    except OSError as exc:
        raise CtguardError(f"writing {target}: {exc.strerror or exc}") from None
    if as_json:
        click.echo(json.dumps(manifest, indent=2))
    else:
        failed = manifest["failed"]
        click.echo(
            f"wrote {target}: {len(manifest['captured'])} items captured, {len(failed)} failed"
        )
        for item in failed:
            click.echo(f"  not captured: {item['what']}: {item['why']}")
    return 0
