"""``ctguard disable``: what keeps nf_conntrack loaded and the plan that keeps it out; with
``apply``, carry it out: unload the modules (live only), then write the modprobe.d file,
journalled so that ``ctguard rollback`` undoes it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ctguard.errors import RefusedError, UsageError
from ctguard.exit_codes import ExitCode
from ctguard.host.target import Target
from ctguard.remediation.apply import apply_changes, dry_run
from ctguard.remediation.changes import RunCommand
from ctguard.remediation.disable import BLOCKER, DisablePlan, plan_disable
from ctguard.usecases.read_facts import read_facts
from ctguard.usecases.site import Confirm, Site, ask, open_site

# what disable did (DisableReport.status)
PLANNED = "planned"  # no --apply: the plan only
NOTHING_TO_DO = "nothing-to-do"
DRY_RUN = "dry-run"
DONE = "done"


@dataclass(frozen=True)
class DisableOptions:
    apply: bool = False
    dry_run: bool = False  # with apply: say what would change, change nothing
    state_dir: str | None = None


@dataclass(frozen=True)
class DisableReport:
    plan: DisablePlan
    status: str
    tree: bool  # written into a directory tree: files only, no modules to unload
    would: tuple[str, ...] = ()  # dry run: what would change (or is in place), one line each
    would_run: tuple[tuple[str, ...], ...] = ()  # dry run: the commands, as argv
    done: tuple[str, ...] = ()  # what was done: commands, then files
    entry_id: str | None = None

    @property
    def exit_code(self) -> int:
        return ExitCode.OK


def disable(
    target: Target,
    options: DisableOptions,
    confirm: Confirm,
    show: Callable[[DisablePlan], None],
) -> DisableReport:
    """``show`` receives the plan before anything is written; RefusedError after it when
    something still needs conntrack (or it is built in)."""
    if options.apply and target.netns is not None:
        raise UsageError("modules are global: --apply acts on the host, without --netns")
    writes = "disable --apply" if options.apply and not options.dry_run else None
    with open_site(target, writes) as site:
        facts = read_facts(site.opened, table=False)
        plan = plan_disable(facts, site.file_reader())
        show(plan)
        if plan.refused:
            more = len(plan.refusals) - 1
            raise RefusedError(
                f"disable refused: {plan.refusals[0]}"
                + (f" (and {more} more above)" if more else "")
            )
        if not options.apply:
            return DisableReport(plan, PLANNED, tree=target.root is not None)
        return _apply(site, plan, options, confirm)


def _apply(site: Site, plan: DisablePlan, options: DisableOptions,
           confirm: Confirm) -> DisableReport:  # fmt: skip
    """Unload the modules (live only), then write the modprobe.d file; journalled."""
    tree = site.target.root is not None
    edits = [fate for fate in plan.rules if fate.verdict != BLOCKER]
    if edits:
        raise RefusedError(
            f"disable --apply: change the {len(edits)} rule(s) above first (ctguard does not"
            " rewrite a firewall it does not own), then run it again"
        )
    if plan.nothing_to_do:
        return DisableReport(plan, NOTHING_TO_DO, tree)
    files = [plan.modprobe_file] if plan.modprobe_file is not None else []
    # A tree (--root) has files, not modules: only the file is written there.
    commands = [] if tree else [
        RunCommand(f"unload {module}", ("modprobe", "-r", module), "", ("modprobe", module))
        for module in plan.unload_order
    ]  # fmt: skip
    if options.dry_run:
        changed, same = dry_run(files, (), root=site.tree, runtime=site.runtime())
        argvs = tuple(c.argv for c in commands)
        return DisableReport(plan, DRY_RUN, tree, (*changed, *same), argvs)
    site.need_root("disable --apply")
    ask(confirm, f"Unload {len(commands)} module(s) and write {len(files)} file(s)?")
    result = apply_changes(
        files, (), root=site.tree, runtime=site.runtime(),
        state_dir=site.state_dir(options.state_dir), meta={"command": "disable", "netns": None},
        commands=commands, runner=site.runner(),
    )  # fmt: skip
    done = (*result.commands, *result.files)
    return DisableReport(plan, DONE, tree, done=done, entry_id=result.entry_id)
