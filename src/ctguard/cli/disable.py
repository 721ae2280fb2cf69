"""``ctguard disable``: what keeps nf_conntrack loaded, and the plan that keeps it out.

Exit codes: 0 plan made (or nothing to do), 2 refused (something still needs conntrack,
or it is built in), 3 error (bad usage, unreadable input).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from ctguard.cli.emit import changed, emit, note
from ctguard.cli.options import NonEmpty, format_option, netns_option, option_errors, target_of
from ctguard.cli.prompt import confirmer
from ctguard.errors import RefusedError
from ctguard.remediation.state_dir import DEFAULT_STATE_DIR

if TYPE_CHECKING:
    from ctguard.remediation.disable import DisablePlan


@click.command("disable")
@click.option(
    "--root",
    metavar="DIR|FILE.tar.gz",
    help="Plan for a snapshot (directory or archive from 'ctguard snapshot') instead of this"
    " host; --apply writes into a directory only.",
)
@netns_option
@format_option(schema="ctguard.disable/1: the chain and the plan")
@click.option("--apply", is_flag=True, help="Carry the plan out (journalled; rollback undoes it).")
@click.option(
    "--dry-run", is_flag=True, help="With --apply: show what would change; change nothing."
)
@click.option("-y", "--yes", is_flag=True, help="With --apply: do not ask for confirmation.")
@click.option("--state-dir", type=NonEmpty(), metavar="DIR",
              help=f"With --apply: journal and backups (default {DEFAULT_STATE_DIR}).")  # fmt: skip
@option_errors
def disable_command(
    root: str | None,
    netns: str | None,
    fmt: str,
    apply: bool,
    dry_run: bool,
    yes: bool,
    state_dir: str | None,
) -> int:
    """Show what keeps nf_conntrack loaded, and plan how to really keep it out.

    The chain: modules holding nf_conntrack (/proc/modules "used by",
    /sys/module/nf_conntrack/holders), every rule that needs conntrack (state/ctstate
    matches, NAT, nft ct expressions, CT target) and agents that put such rules back
    (kube-proxy, dockerd, firewalld, libvirt, Open vSwitch). The plan replaces obviously
    stateful rules by their stateless equivalent, writes 'install MOD /bin/false' lines
    to /etc/modprobe.d (a 'blacklist' line does not stop a dependency from loading it),
    and unloads the modules in order. Anything else that needs conntrack refuses the
    plan, with the list. A built-in nf_conntrack cannot be unloaded: use
    'ctguard notrack --all' there. Never writes without --apply.

    \b
    Exit codes: 0 plan made (or nothing to do), 2 refused (something still needs
    conntrack, or it is built in), 3 error (bad usage, unreadable input).

    \b
    Examples:
      ctguard disable                             this host (rules need root to read)
      ctguard disable --root snap/ --format json  a snapshot (dir or .tgz), for scripts
      sudo ctguard disable --netns web1           rules of one namespace (modules are global)
    """
    from ctguard.output.disable_text import render_disable_result
    from ctguard.usecases.disable import DisableOptions, disable

    target = target_of(root, netns)
    if not apply and (dry_run or yes or state_dir is not None):
        raise click.UsageError("--dry-run, --yes and --state-dir go with --apply")
    if apply and netns is not None:
        raise click.UsageError("modules are global: --apply acts on the host, without --netns")

    shown: list[DisablePlan] = []

    def show(plan: DisablePlan) -> None:
        if fmt == "json":
            shown.append(plan)  # printed once, with the result of --apply in the document
            if apply and not (yes or dry_run) and sys.stdin.isatty():  # read before the question
                from ctguard.output.disable_text import render_disable_text

                note(render_disable_text(plan))
        else:
            from ctguard.output.disable_text import render_disable_text

            emit(render_disable_text(plan))

    options = DisableOptions(apply=apply, dry_run=dry_run, state_dir=state_dir)
    try:
        report = disable(target, options, confirmer(yes), show)
    except RefusedError:
        if fmt == "json" and shown:  # the plan says why: stdout is still its one document
            from ctguard.output.disable_json import render_disable_json

            emit(render_disable_json(shown[0]))
        raise
    if report.entry_id is not None:
        changed(f"disable carried out (journal entry {report.entry_id})")
    if fmt == "json":
        from ctguard.output.disable_json import render_disable_json

        emit(render_disable_json(report.plan, report if apply else None))
    else:
        emit(render_disable_result(report))
    return report.exit_code
