"""Options shared by several commands."""

from __future__ import annotations

import math

import click

root_option = click.option(
    "--root",
    metavar="DIR|FILE.tar.gz",
    help="Audit a snapshot (directory or archive from 'ctguard snapshot') instead of this host.",
)
netns_option = click.option(
    "--netns",
    metavar="NAME",
    help="Read inside the named network namespace (see 'ip netns list'); needs root.",
)

source_option = click.option(
    "--source",
    type=click.Choice(["auto", "procfs", "netlink"]),
    default="auto",
    show_default=True,
    help="Live table source: /proc/net/nf_conntrack (auto, when the kernel has it), or"
    " 'conntrack -L' over netlink.",
)


def finite_seconds(_ctx: click.Context, _param: click.Parameter, value: float) -> float:
    """FloatRange lets nan through; an interval of nan seconds is a usage error."""
    if math.isnan(value):
        raise click.BadParameter("must be a number of seconds, not nan", param_hint="--interval")
    return value
