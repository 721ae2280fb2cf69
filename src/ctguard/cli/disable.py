"""``ctguard disable``: what keeps nf_conntrack loaded, and the plan that keeps it out.

Exit codes: 0 plan made (or nothing to do), 2 refused (something still needs conntrack,
or it is built in), 3 error (bad usage, unreadable input).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ctguard.cli.emit import emit
from ctguard.cli.options import netns_option
from ctguard.cli.plan import DEFAULT_STATE_DIR
from ctguard.errors import RefusedError

if TYPE_CHECKING:
    from ctguard.cli.plan import Target
    from ctguard.remediation.disable import DisablePlan


@click.command("disable")
@click.option(
    "--root",
    metavar="DIR",
    help="Plan for a snapshot directory (from 'ctguard snapshot') instead of this host.",
)
@netns_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the chain and the plan as JSON (ctguard.disable/1).",
)
@click.option("--apply", is_flag=True, help="Carry the plan out (journalled; rollback undoes it).")
@click.option(
    "--dry-run", is_flag=True, help="With --apply: show what would change; change nothing."
)
@click.option("-y", "--yes", is_flag=True, help="With --apply: do not ask for confirmation.")
@click.option("--state-dir", metavar="DIR",
              help=f"With --apply: journal and backups (default {DEFAULT_STATE_DIR}).")  # fmt: skip
def disable_command(
    root: str | None,
    netns: str | None,
    as_json: bool,
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
      ctguard disable                          this host (rules need root to read)
      ctguard disable --root snap/ --json      a snapshot directory, for scripts
      sudo ctguard disable --netns web1        rules of one namespace (modules are global)
    """
    from ctguard.cli.plan import _target
    from ctguard.host.target import Target as Reading
    from ctguard.host.target import open_target
    from ctguard.remediation.disable import plan_disable
    from ctguard.usecases.read_facts import read_facts

    target = _target(root, netns)
    if not apply and (dry_run or yes or state_dir is not None):
        raise click.UsageError("--dry-run, --yes and --state-dir go with --apply")
    if apply and netns is not None:
        raise click.UsageError("modules are global: --apply acts on the host, without --netns")
    with open_target(Reading(target.root, target.netns)) as opened:
        facts = read_facts(opened, table=False)
    read = target.file_reader()

    plan = plan_disable(facts, read)
    if as_json:
        from ctguard.output.disable_json import render_disable_json

        emit(render_disable_json(plan))
    else:
        from ctguard.output.disable_text import render_disable_text

        emit(render_disable_text(plan))
    if plan.refused:
        more = len(plan.refusals) - 1
        raise RefusedError(
            f"disable refused: {plan.refusals[0]}" + (f" (and {more} more above)" if more else "")
        )
    if apply:
        _apply(plan, target, dry_run, yes, state_dir)
    return 0


def _apply(plan: DisablePlan, target: Target, dry_run: bool, yes: bool,
           state_dir: str | None) -> None:  # fmt: skip
    """Unload the modules (live only), then write the modprobe.d file; journalled."""
    from ctguard.cli.plan import _confirm, _need_root, command_runner
    from ctguard.remediation.apply import apply_changes
    from ctguard.remediation.apply import dry_run as would
    from ctguard.remediation.changes import RunCommand
    from ctguard.remediation.disable import BLOCKER

    edits = [fate for fate in plan.rules if fate.verdict != BLOCKER]
    if edits:
        raise RefusedError(
            f"disable --apply: change the {len(edits)} rule(s) above first (ctguard does not"
            " rewrite a firewall it does not own), then run it again"
        )
    if plan.nothing_to_do:
        emit("nothing to do\n")
        return
    files = [plan.modprobe_file] if plan.modprobe_file is not None else []
    # A tree (--root) has files, not modules: only the file is written there.
    commands = [] if target.root is not None else [
        RunCommand(f"unload {module}", ("modprobe", "-r", module), "", ("modprobe", module))
        for module in plan.unload_order
    ]  # fmt: skip
    root = Path(target.root or "/")
    if dry_run:
        changed, same = would(files, (), root=root, runtime=target.runtime())
        emit("".join(f"would {line}\n" for line in [*changed, *same]))
        emit("".join(f"would run: {' '.join(c.argv)}\n" for c in commands))
        if target.root is not None:
            emit("(a directory tree has no modules to unload: only the file is written)\n")
        return
    _need_root(target, "disable --apply")
    _confirm(f"Unload {len(commands)} module(s) and write {len(files)} file(s)?", yes)
    result = apply_changes(
        files, (), root=root, runtime=target.runtime(), state_dir=target.state_dir(state_dir),
        meta={"command": "disable", "netns": None}, commands=commands,
        runner=command_runner(None),
    )  # fmt: skip
    done = [*result.commands, *result.files]
    emit(f"done: {', '.join(done) or 'nothing to change'}; journal entry {result.entry_id};"
         f" undo with: ctguard rollback {result.entry_id}\n")  # fmt: skip
