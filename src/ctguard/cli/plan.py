"""``ctguard plan``, ``ctguard apply`` and ``ctguard rollback``.

Exit codes: 0 done (or nothing to do), 2 refused (unsafe size without --force, a plan
made for another host or an outdated state), 3 error (bad usage, not root, a write that
failed and was undone).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import click

from ctguard.cli.emit import changed, emit, note
from ctguard.cli.options import (
    FilePath,
    FiniteRange,
    NonEmpty,
    format_option,
    option_errors,
    target_of,
)
from ctguard.cli.prompt import confirmer
from ctguard.errors import CtguardError
from ctguard.exit_codes import ExitCode
from ctguard.model.sizing import (
    DEFAULT_BUDGET_PCT,
    HARD_LIMIT_PCT,
    KERNEL_MAX_LIMIT,
    KERNEL_TIMEOUT_LIMIT,
)
from ctguard.remediation.state_dir import DEFAULT_STATE_DIR

if TYPE_CHECKING:
    from ctguard.usecases.plan import Planning, PlanReport

F = Callable[..., Any]


# -- options --------------------------------------------------------------------------
def _timeout_pairs(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, int]:
    from ctguard.sources.sysctl_runtime import parse_sysctl_int

    pairs: dict[str, int] = {}
    for item in values:
        name, sep, text = item.partition("=")
        name = name.strip().removeprefix("net.netfilter.").removeprefix("nf_conntrack_")
        if not sep or "timeout" not in name:
            raise click.BadParameter(
                f"{item!r}: expected NAME=SECONDS, e.g. tcp_timeout_time_wait=30",
                param_hint="--timeout",
            )
        try:
            seconds = parse_sysctl_int(text.strip(), name)
        except CtguardError as exc:
            raise click.BadParameter(f"{item!r}: {exc}", param_hint="--timeout") from None
        if seconds < 1:
            raise click.BadParameter(f"{item!r}: must be at least 1 s", param_hint="--timeout")
        if seconds > KERNEL_TIMEOUT_LIMIT:
            raise click.BadParameter(
                f"{item!r}: no kernel takes more than {KERNEL_TIMEOUT_LIMIT} s",
                param_hint="--timeout",
            )
        pairs[name] = seconds
    return pairs


def plan_options(func: F) -> F:
    options = [
        click.option("--root", metavar="DIR|FILE.tar.gz",
                     help="Plan for a snapshot (directory or archive) or a directory tree (an"
                     " image being built) instead of this host; apply writes into a directory"
                     " only."),
        click.option("--netns", metavar="NAME",
                     help="Plan the values of a named network namespace (timeouts; runtime only)."),
        click.option("--target-max", type=click.IntRange(1, KERNEL_MAX_LIMIT), metavar="N",
                     help="Use this nf_conntrack_max instead of 2 x the observed peak."),
        click.option("--memory-budget", type=FiniteRange(min=0, min_open=True, max=100),
                     default=DEFAULT_BUDGET_PCT, show_default=True, metavar="PCT",
                     help="Most of MemTotal (%) a full table may take; over"
                     f" {HARD_LIMIT_PCT:g} needs --force."),
        click.option("--established-timeout", metavar="S",
                     type=click.IntRange(1, KERNEL_TIMEOUT_LIMIT),
                     help="Set nf_conntrack_tcp_timeout_established (default: only when idle"
                     " established flows fill the table, 3600 s, or 7440 s with NAT)."),
        click.option("--timeout", "timeouts", multiple=True, metavar="NAME=S",
                     callback=_timeout_pairs,
                     help="Set another timeout, repeatable: --timeout tcp_timeout_time_wait=30."),
        click.option("--force", is_flag=True,
                     help=f"Keep a plan over {HARD_LIMIT_PCT:g} % of MemTotal, MemAvailable or"
                     " the budget."),
        click.option("--no-table", is_flag=True,
                     help="Do not read the conntrack table (timeouts are then not sized)."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def _planning(kwargs: Mapping[str, Any]) -> Planning:
    from ctguard.remediation.plan import PlanOptions
    from ctguard.usecases.plan import Planning

    sizing = PlanOptions(
        target_max=kwargs["target_max"],
        budget_pct=kwargs["memory_budget"],
        established_timeout=kwargs["established_timeout"],
        timeouts=kwargs["timeouts"],
        force=kwargs["force"],
    )
    return Planning(sizing, table=not kwargs["no_table"])


# -- plan -----------------------------------------------------------------------------
@click.command("plan")
@plan_options
@format_option("sh", schema="ctguard.plan/1; sh is a script that applies the plan")
@click.option("-o", "--output", type=FilePath(dir_okay=False), metavar="FILE",
              help="Also save the plan (checksummed JSON) for 'apply --plan FILE'.")  # fmt: skip
@option_errors
def plan_command(fmt: str, output: str | None, **kwargs: Any) -> int:  # noqa: ANN401
    """Size the table for this host's memory and load, and show every change that would make
    it stick: values before -> after with their memory cost, file diffs, runtime commands.

    Never writes (except the -o file). Values are placed where they survive a reboot, a module
    reload and 'service iptables restart' on this host; keys kube-proxy or tuned own are left
    to them, with the knob to set.

    --format sh prints the plan as a POSIX shell script for a host that cannot run ctguard
    (CentOS 6 or 7, from its snapshot): run as root there, it changes nothing unless every
    file and value is still what the plan was made from, backs each up, writes each file by
    rename, sets and reads back the runtime values, and leaves an undo.sh beside the backups
    (/var/lib/ctguard/plan-sh/ID/). Run again after an interruption, it finishes. With
    CTGUARD_ROOT=DIR it works on a copy of the host's tree instead (runtime values in its
    proc/sys and sys files; never the real /proc/sys).

    \b
    Exit codes: 0 plan made (or nothing to do), 2 refused: a full table would take over
    25 % of MemTotal, MemAvailable or the --memory-budget (--force overrides), 3 error.

    \b
    Examples:
      ctguard plan                                 this host
      ctguard plan --root snap/ --format json      a snapshot (dir or .tar.gz), for scripts
      ctguard plan --target-max 1048576            check a value you have in mind
      ctguard plan -o plan.json && sudo ctguard apply --plan plan.json
      ctguard plan --root web03.tar.gz --format sh > plan.sh   then on web03: sudo sh plan.sh
    """
    from ctguard.usecases.plan import plan

    if fmt == "sh" and kwargs["netns"] is not None:
        raise click.UsageError(
            "--format sh writes a host's files and values; a namespace plan has runtime"
            " values only: use 'ctguard apply --netns'"
        )
    report = plan(target_of(kwargs["root"], kwargs["netns"]), _planning(kwargs), output)
    if output is not None:
        changed(f"saved the plan to {output}")
    if fmt == "sh":
        if report.plan.refused:  # no script for a plan that is not to be applied
            note(f"ctguard: refused, no script written: {report.plan.refusal}\n")
            return report.exit_code
        from ctguard.output.plan_sh import render_plan_sh

        emit(render_plan_sh(report))
    elif fmt == "json":
        from ctguard.output.plan_json import render_plan_json

        emit(render_plan_json(report))
    else:
        from ctguard.output.plan_text import render_plan_report

        emit(render_plan_report(report))
    return report.exit_code


# -- apply ----------------------------------------------------------------------------
@click.command("apply")
@plan_options
@click.option("--plan", "plan_file", type=FilePath(dir_okay=False), metavar="FILE",
              help="Execute exactly this saved plan (from 'ctguard plan -o FILE').")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option(
    "-y", "--yes", is_flag=True, help="Do not ask for confirmation (needed without a TTY)."
)
@click.option(
    "--state-dir",
    type=NonEmpty(),
    metavar="DIR",
    help=f"Journal and backups (default {DEFAULT_STATE_DIR}).",
)
@format_option(schema="ctguard.apply/1; the plan to confirm is shown on stderr")
@option_errors
def apply_command(
    plan_file: str | None,
    dry_run: bool,
    yes: bool,
    state_dir: str | None,
    fmt: str,
    **kwargs: Any,  # noqa: ANN401
) -> int:
    """Apply a plan: back up, write each file atomically, set the runtime values, verify.

    Every change is journalled under the state dir first; on any failure everything done is
    undone in reverse order. A second run of the same plan changes nothing. Undo with
    'ctguard rollback'. If ctguard was killed during an earlier apply, it refuses until
    'ctguard rollback' has put that one back. One apply or rollback runs at a time.

    \b
    Exit codes: 0 applied (or nothing to do), 2 refused (unsafe size without --force, a plan
    for another host, or the host changed since the plan), 3 error (not root, not confirmed,
    another apply running or an earlier one unfinished, a write failed: the message says
    what was undone).

    \b
    Examples:
      sudo ctguard apply                        plan and apply on this host (asks first)
      sudo ctguard apply --plan plan.json --yes exactly a reviewed plan
      ctguard apply --root /srv/image --yes     into an image tree (proc/sys files too)
      sudo ctguard apply --netns web1 --established-timeout 3600 --yes
      sudo ctguard apply --dry-run
      ctguard apply --dry-run --root snap.tgz   a snapshot (directory or archive)
    """
    from ctguard.output.plan_text import render_plan_report
    from ctguard.usecases.apply import ApplyOptions, apply

    def show(made: PlanReport) -> None:
        text = render_plan_report(made, hint=False) + "\n"
        if fmt != "json":
            emit(text)
        elif not (yes or dry_run) and sys.stdin.isatty():  # read before the question
            note(text)  # stdout stays one JSON document

    options = ApplyOptions(
        _planning(kwargs), plan_file=plan_file, dry_run=dry_run, state_dir=state_dir
    )
    report = apply(target_of(kwargs["root"], kwargs["netns"]), options, confirmer(yes), show)
    if report.entry_id is not None:
        changed(f"applied (journal entry {report.entry_id})")
    if fmt == "json":
        from ctguard.output.apply_json import render_apply_json

        emit(render_apply_json(report))
    else:
        from ctguard.output.apply_text import render_apply_text

        emit(render_apply_text(report))
    return ExitCode.OK


# -- rollback -------------------------------------------------------------------------
@click.command("rollback")
@click.argument("entry_id", metavar="[ID]", required=False)
@click.option("--list", "list_only", is_flag=True, help="Show the journal, newest first.")
@click.option("--root", metavar="DIR", help="The directory tree 'apply --root' wrote to.")
@click.option(
    "--state-dir",
    type=NonEmpty(),
    metavar="DIR",
    help=f"The journal (default {DEFAULT_STATE_DIR}).",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Restore even files or values changed since the apply.")
@format_option(schema="ctguard.rollback/1; with --list ctguard.journal-list/1")
@option_errors
def rollback_command(
    entry_id: str | None, list_only: bool, root: str | None, state_dir: str | None, yes: bool,
    force: bool, fmt: str,
) -> int:  # fmt: skip
    """Put back what an 'apply' changed: files byte for byte (files it created are removed),
    runtime values, and the firewall rules or modules of notrack/disable. Without ID, the
    newest entry that is applied or was left half done (ctguard killed mid-way: it finishes
    it). Rolling back twice is harmless; a rollback that was killed is finished by a rerun.

    The journal of a --root tree is data: its rollback writes only inside the tree and runs
    no command. A --state-dir that anyone but root could have written is refused.

    \b
    Exit codes: 0 rolled back (or nothing to do), 3 error (not root, unknown ID, another
    apply or rollback running, a file changed since the apply: --force restores it anyway).

    \b
    Examples:
      ctguard rollback --list
      ctguard rollback --list --format json     the journal, for scripts
      sudo ctguard rollback                     the latest apply
      sudo ctguard rollback 20261125T143357Z-3f2a --yes
      ctguard rollback --root /srv/image --yes
    """
    from ctguard.usecases.rollback import ROLLED_BACK, RollbackOptions, list_journal, rollback

    target = target_of(root, None)
    if list_only:
        listing = list_journal(target, state_dir)
        if fmt == "json":
            from ctguard.output.rollback_json import render_journal_json

            emit(render_journal_json(listing))
        else:
            from ctguard.output.rollback_text import render_journal_text

            emit(render_journal_text(listing))
        return ExitCode.OK
    options = RollbackOptions(entry_id=entry_id, state_dir=state_dir, force=force)
    report = rollback(target, options, confirmer(yes))
    if report.status == ROLLED_BACK:
        changed(f"rolled back journal entry {report.entry_id}")
    if fmt == "json":
        from ctguard.output.rollback_json import render_rollback_json

        emit(render_rollback_json(report))
    else:
        from ctguard.output.rollback_text import render_rollback_text

        emit(render_rollback_text(report))
    return ExitCode.OK
