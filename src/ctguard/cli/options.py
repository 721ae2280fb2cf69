"""Options shared by several commands."""

from __future__ import annotations

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
