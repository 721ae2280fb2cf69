"""``ctguard collector``."""

from __future__ import annotations

import click

from ctguard.cli.emit import emit


@click.command("collector")
def collector_command() -> int:
    """Print a POSIX sh script that snapshots a host which cannot run ctguard.

    For hosts without Python 3.11 (CentOS 6 and 7): the script needs only /bin/sh
    (bash, dash or busybox ash) and the usual tools, runs as root or not, and writes
    the archive `ctguard snapshot` writes, with the same layout and a manifest saying
    what it captured and what it could not, and why. Every program it runs has a
    timeout, and the table dump a size cap. It writes only its archive, in the
    directory -o names (default: the current one), under a temporary name first.

    Options of the script: -o DIR, --redact, --no-table, --netns NAME; CTGUARD_ROOT=/path
    reads host files from a copied tree instead of / (and runs none of the programs, which
    would read this host, unless CTGUARD_TREE_COMMANDS=1).

    \b
    Examples:
      ctguard collector > ctguard-collect.sh
      scp ctguard-collect.sh old-web1:/var/tmp/
      ssh old-web1 'sudo sh /var/tmp/ctguard-collect.sh -o /var/tmp --redact'
      scp 'old-web1:/var/tmp/ctguard-old-web1-*.tar.gz' .
      ctguard doctor --root ctguard-old-web1-*.tar.gz
    """
    from ctguard.snapshot.collector import collector_script

    emit(collector_script())
    return 0
