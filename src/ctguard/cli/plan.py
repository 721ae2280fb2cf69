"""``ctguard plan``, ``ctguard apply`` and ``ctguard rollback``.

Exit codes: 0 done (or nothing to do), 2 refused (unsafe size without --force, a plan
made for another host or an outdated state), 3 error (bad usage, not root, a write that
failed and was undone).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ctguard.cli.emit import emit
from ctguard.errors import CtguardError, RefusedError
from ctguard.exit_codes import REFUSED

if TYPE_CHECKING:
    from ctguard.host.root import HostRoot
    from ctguard.remediation.apply import RuntimeFiles, Tree
    from ctguard.remediation.command_runner import CommandRunner
    from ctguard.remediation.plan import Plan, PlanOptions
    from ctguard.remediation.plan_file import HostIdentity, LoadedPlan
    from ctguard.remediation.state_dir import StateDir

DEFAULT_STATE_DIR = "/var/lib/ctguard"
F = Callable[..., Any]


Refused = RefusedError


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
        pairs[name] = seconds
    return pairs


def plan_options(func: F) -> F:
    options = [
        click.option("--root", metavar="DIR",
                     help="Plan for (apply: write into) a directory tree instead of this host:"
                     " a snapshot directory or an image being built."),
        click.option("--netns", metavar="NAME",
                     help="Plan the values of a named network namespace (timeouts; runtime only)."),
        click.option("--target-max", type=click.IntRange(min=1), metavar="N",
                     help="Use this nf_conntrack_max instead of 2 x the observed peak."),
        click.option("--memory-budget", type=click.FloatRange(min=0, min_open=True), default=5.0,
                     show_default=True, metavar="PCT",
                     help="Most of MemTotal (%) a full table may take; over 25 needs --force."),
        click.option("--established-timeout", type=click.IntRange(min=1), metavar="S",
                     help="Set nf_conntrack_tcp_timeout_established (default: only when idle"
                     " established flows fill the table, 3600 s, or 7440 s with NAT)."),
        click.option("--timeout", "timeouts", multiple=True, metavar="NAME=S",
                     callback=_timeout_pairs,
                     help="Set another timeout, repeatable: --timeout tcp_timeout_time_wait=30."),
        click.option("--force", is_flag=True,
                     help="Keep a plan over 25 % of MemTotal, MemAvailable or the budget."),
        click.option("--no-table", is_flag=True,
                     help="Do not read the conntrack table (timeouts are then not sized)."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


@dataclass(frozen=True)
class Target:
    """Where a plan is made and applied: this host, a directory tree, or a namespace."""

    root: str | None
    netns: str | None

    @property
    def label(self) -> str:
        return self.root if self.root is not None else "/"

    def host(self) -> HostRoot:
        from ctguard.host.root import HostRoot

        return HostRoot(self.root or "/")

    @cached_property
    def tree(self) -> Tree:
        """The tree written: opened once, so the journal, the runtime values and the files
        of one command are the same directory even if the --root path is swapped meanwhile."""
        from ctguard.remediation.apply import Tree

        try:
            return Tree(self.root or "/")
        except OSError as exc:
            raise CtguardError(f"{self.root}: {exc.strerror or exc}") from None

    def runtime(self) -> RuntimeFiles:
        from ctguard.remediation.apply import NetnsRuntime, TreeRuntime

        if self.netns is not None:
            return NetnsRuntime(self.netns)
        return TreeRuntime(self.tree)

    def file_reader(self) -> Callable[[str], bytes | None]:
        """A host file's bytes (None when it does not exist), for the planners."""
        host = self.host()

        def read(path: str) -> bytes | None:
            if not host.is_file(path):
                return None
            try:
                return host.read_bytes(path)
            except OSError as exc:
                raise CtguardError(f"cannot read {path}: {exc.strerror or exc}") from None

        return read

    def state_dir(self, given: str | None) -> StateDir:
        """The journal's home: ``--state-dir DIR`` or the default on this machine (checked:
        only root may have written it), or, for a tree, the tree's own (data, resolved
        inside the tree and never trusted to run a command)."""
        from ctguard.remediation.state_dir import StateDir

        try:
            if given is not None:
                return StateDir.on_machine(given)
            if self.root is not None:
                return StateDir.in_tree(self.tree, DEFAULT_STATE_DIR)
            return StateDir.on_machine(DEFAULT_STATE_DIR)
        except OSError as exc:
            where = given or f"{self.root or ''}{DEFAULT_STATE_DIR}"
            raise CtguardError(f"{where}: {exc.strerror or exc}; give --state-dir") from None


def _target(root: str | None, netns: str | None) -> Target:
    if root is not None and netns is not None:
        raise click.UsageError("--root and --netns cannot be combined")
    target = Target(root, netns)
    if root is not None:
        check_tree_root(target)
    return target


def check_tree_root(target: Target) -> None:
    """A ``--root`` to write into: a directory that is not this host's ``/`` (however it
    is named: a link, a bind mount, /proc/1/root), checked on the directory opened."""
    root = target.root or ""
    if not root.strip():
        raise click.BadParameter("is empty (leave --root out to work on this host)",
                                 param_hint="--root")  # fmt: skip
    if not os.path.isdir(root):
        raise click.BadParameter(
            f"{root!r} is not a directory (plans are made for and applied to a directory tree;"
            " extract a snapshot archive first)",
            param_hint="--root",
        )
    try:
        live = target.tree.is_live
    except CtguardError as exc:
        raise click.BadParameter(str(exc), param_hint="--root") from None
    if live:
        raise click.BadParameter(
            f"{root!r} is this host's / (leave --root out to work on this host, as root)",
            param_hint="--root",
        )


def _identity(target: Target) -> HostIdentity:
    from ctguard.remediation.plan_file import HostIdentity

    host = target.host()

    def first_line(path: str) -> str | None:
        text = host.try_read_text(path, 4096)
        return None if not isinstance(text, str) else (text.strip() or None)

    root = str(Path(target.root).resolve()) if target.root is not None else "/"
    return HostIdentity(
        first_line("/proc/sys/kernel/hostname"), first_line("/etc/machine-id"), root, target.netns
    )


PLAN_OPTION_NAMES = (
    "target_max", "memory_budget", "established_timeout", "timeouts", "force", "no_table",
)  # fmt: skip


def _options(kwargs: Mapping[str, Any]) -> PlanOptions:
    from ctguard.remediation.plan import PlanOptions

    return PlanOptions(
        target_max=kwargs["target_max"],
        budget_pct=kwargs["memory_budget"],
        established_timeout=kwargs["established_timeout"],
        timeouts=kwargs["timeouts"],
        force=kwargs["force"],
    )


def make_plan(target: Target, options: PlanOptions, table: bool) -> Plan:
    from ctguard.findings import Status
    from ctguard.host.target import Target as Reading
    from ctguard.host.target import open_target
    from ctguard.remediation.plan import build_plan
    from ctguard.usecases.doctor import diagnose
    from ctguard.usecases.read_facts import read_facts

    with open_target(Reading(target.root, target.netns)) as opened:
        facts = read_facts(opened, table)
    found = [f.id for f in diagnose(facts).findings if f.status is Status.FOUND]
    read = target.file_reader()

    return build_plan(facts, options, read, found)


def _host_label(identity: HostIdentity, target: Target) -> str:
    name = identity.hostname or "this host"
    return f"{name} (tree {target.root})" if target.root is not None else name


# -- plan -----------------------------------------------------------------------------
@click.command("plan")
@plan_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (ctguard.plan/1).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also save the plan (checksummed JSON) for 'apply --plan FILE'.")  # fmt: skip
def plan_command(as_json: bool, output: str | None, **kwargs: Any) -> int:  # noqa: ANN401
    """Size the table for this host's memory and load, and show every change that would make
    it stick: values before -> after with their memory cost, file diffs, runtime commands.

    Never writes (except the -o file). Values are placed where they survive a reboot, a module
    reload and 'service iptables restart' on this host; keys kube-proxy or tuned own are left
    to them, with the knob to set.

    \b
    Exit codes: 0 plan made (or nothing to do), 2 refused: a full table would take over
    25 % of MemTotal, MemAvailable or the --memory-budget (--force overrides), 3 error.

    \b
    Examples:
      ctguard plan                                 this host
      ctguard plan --root snap/ --json             a snapshot directory, for scripts
      ctguard plan --target-max 1048576            check a value you have in mind
      ctguard plan -o plan.json && sudo ctguard apply --plan plan.json
    """
    from ctguard.remediation.plan_file import plan_document

    target = _target(kwargs["root"], kwargs["netns"])
    plan = make_plan(target, _options(kwargs), not kwargs["no_table"])
    identity = _identity(target)
    document = plan_document(plan, identity, {k: kwargs[k] for k in PLAN_OPTION_NAMES})
    if output is not None:
        _save(output, document)
    if as_json:
        emit(json.dumps(document, indent=2) + "\n")
    else:
        from ctguard.output.plan_text import render_plan_text

        emit(render_plan_text(plan, _host_label(identity, target)))
    return REFUSED if plan.refused else 0


def _save(output: str, document: dict[str, Any]) -> None:
    """Write the plan next to its name and rename it there: never half written, and the
    temporary name is unpredictable and created exclusively (mkstemp), so a link planted in
    a shared directory such as /tmp cannot turn root's write into someone else's file."""
    import tempfile

    path = Path(output)
    temp: str | None = None
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(document, indent=2) + "\n")
        os.replace(temp, path)
    except OSError as exc:
        if temp is not None:
            Path(temp).unlink(missing_ok=True)
        raise CtguardError(f"cannot write {output}: {exc.strerror or exc}") from None


# -- apply ----------------------------------------------------------------------------
def _need_root(target: Target, what: str) -> None:
    if target.root is None and os.geteuid() != 0:
        raise CtguardError(
            f"{what} writes /etc and /proc/sys: run it as root (sudo ctguard {what}),"
            " or try --dry-run / --root DIR"
        )


def command_runner(netns: str | None) -> CommandRunner:
    """Runs firewall and module commands here, or inside the named namespace."""
    from ctguard.remediation.command_runner import LiveRunner, NetnsRunner

    return NetnsRunner(netns) if netns is not None else LiveRunner()


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise CtguardError(f"{question.rstrip('?')}: no terminal to confirm on; add --yes")
    if not click.confirm(question, default=False, err=True):
        raise CtguardError("nothing changed (not confirmed)")


@click.command("apply")
@plan_options
@click.option("--plan", "plan_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Execute exactly this saved plan (from 'ctguard plan -o FILE').")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option(
    "-y", "--yes", is_flag=True, help="Do not ask for confirmation (needed without a TTY)."
)
@click.option(
    "--state-dir", metavar="DIR", help=f"Journal and backups (default {DEFAULT_STATE_DIR})."
)
def apply_command(
    plan_file: str | None,
    dry_run: bool,
    yes: bool,
    state_dir: str | None,
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
    """
    from ctguard.remediation import apply as writer
    from ctguard.remediation.plan_file import PlanFileError, load_plan

    target = _target(kwargs["root"], kwargs["netns"])
    if not dry_run:
        _need_root(target, "apply")  # first: a non-root run learns nothing and writes nothing
    identity = _identity(target)
    if plan_file is not None:
        text = read_plan_file(plan_file)
        try:
            loaded = load_plan(text, identity, plan_file)
        except PlanFileError as exc:
            raise Refused(str(exc)) from None
        files, sysctls, checksum = loaded.files, loaded.sysctls, loaded.checksum
        if loaded.refusal and not loaded.forced:
            raise Refused(f"{plan_file}: the plan was refused when made: {loaded.refusal}")
        _same_plan_now(target, loaded, plan_file)
    else:
        plan = make_plan(target, _options(kwargs), not kwargs["no_table"])
        if plan.refused:
            raise Refused(f"{plan.refusal} (--force overrides)")
        from ctguard.output.plan_text import render_plan_text
        from ctguard.remediation.plan_file import plan_document

        files, sysctls = plan.files, plan.sysctls
        checksum = plan_document(plan, identity)["checksum"]
        if not plan.empty:
            emit(render_plan_text(plan, _host_label(identity, target), hint=False) + "\n")
    if not files and not sysctls:
        emit("nothing to do: the files and the running values already match the plan\n")
        return 0
    runtime = target.runtime()
    root = target.tree
    if dry_run:
        change, same = writer.dry_run(files, sysctls, root=root, runtime=runtime)
        emit("".join(f"would {line}\n" for line in change))
        emit("".join(f"already in place: {line}\n" for line in same))
        return 0
    _confirm(f"Apply {len(files)} file change(s) and {len(sysctls)} runtime value(s)?", yes)
    meta = {"command": "apply", "plan_checksum": checksum, "root": identity.root,
            "netns": target.netns, "hostname": identity.hostname}  # fmt: skip
    try:
        result = writer.apply_changes(
            files, sysctls, root=root, runtime=runtime, state_dir=target.state_dir(state_dir),
            meta=meta,
        )  # fmt: skip
    except writer.StalePlanError as exc:
        raise Refused(str(exc)) from None
    if result.entry_id is None:
        emit("nothing to do: every change is already in place\n")
        return 0
    done = [*result.files, *result.sysctls]
    emit(f"applied {len(done)} change(s): {', '.join(done)}\n")
    if result.skipped:
        emit(f"already in place: {', '.join(result.skipped)}\n")
    emit(f"journal entry {result.entry_id}; undo with: ctguard rollback {result.entry_id}"
         + (f" --root {target.root}" if target.root else "") + "\n")  # fmt: skip
    return 0


MAX_PLAN_BYTES = 64 * 1024 * 1024  # a plan carries the bytes of a few config files


def read_plan_file(path: str) -> str:
    """A saved plan's text: a regular file (not a FIFO or /dev/zero), bounded, UTF-8."""
    from ctguard.host.root import read_regular_file

    try:
        return read_regular_file(path, MAX_PLAN_BYTES).decode("utf-8")
    except OSError as exc:
        raise CtguardError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CtguardError(f"cannot read {path}: not UTF-8 (not a saved plan)") from None


def _same_plan_now(target: Target, loaded: LoadedPlan, source: str) -> None:
    """Refuse a saved plan that ctguard would no longer make: the host moved on since
    (a file the plan read but does not write, a count, a rule), so it is outdated."""
    from ctguard.remediation.plan_file import PlanFileError, signature

    try:
        options = {name: loaded.options[name] for name in PLAN_OPTION_NAMES}
        options["timeouts"] = {str(k): int(v) for k, v in dict(options["timeouts"]).items()}
        fresh = make_plan(target, _options(options), not options["no_table"])
    except (KeyError, TypeError, ValueError) as exc:
        raise Refused(str(PlanFileError(f"{source}: damaged plan (options: {exc})"))) from None
    now, was = signature(fresh.files, fresh.sysctls), loaded.signature()
    if now != was:
        differ = sorted({path for path, _ in set(now) ^ set(was)})
        raise Refused(
            f"{source}: outdated: the host changed since the plan was made (planning now"
            f" changes {', '.join(differ[:3]) or 'other contents'} differently); make a new plan"
        )


# -- rollback -------------------------------------------------------------------------
@click.command("rollback")
@click.argument("entry_id", metavar="[ID]", required=False)
@click.option("--list", "list_only", is_flag=True, help="Show the journal, newest first.")
@click.option("--root", metavar="DIR", help="The directory tree 'apply --root' wrote to.")
@click.option("--state-dir", metavar="DIR", help=f"The journal (default {DEFAULT_STATE_DIR}).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Restore even files or values changed since the apply.")
@click.option("--json", "as_json", is_flag=True, help="--list as JSON.")
def rollback_command(
    entry_id: str | None, list_only: bool, root: str | None, state_dir: str | None, yes: bool,
    force: bool, as_json: bool,
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
      sudo ctguard rollback                     the latest apply
      sudo ctguard rollback 20261125T143357Z-3f2a --yes
      ctguard rollback --root /srv/image --yes
    """
    from ctguard.remediation import apply as writer
    from ctguard.remediation.journal import list_entries
    from ctguard.remediation.rollback import NothingToRollBack, entry_to_roll_back, tidy

    target = _target(root, None)
    journal = target.state_dir(state_dir)
    if list_only:
        entries = list_entries(journal)
        if as_json:
            rows = [{"id": e.id, "created": e.created, "state": e.state, "meta": dict(e.meta),
                     "files": [f.path for f in e.files],
                     "sysctls": [s.name for s in e.sysctls],
                     "commands": [c.what for c in e.commands]} for e in entries]  # fmt: skip
            emit(json.dumps({"schema": "ctguard.journal-list/1", "entries": rows}, indent=2) + "\n")
            return 0
        if not entries:
            emit(f"no journal entries in {journal.shown()}\n")
        for e in entries:
            what = [c.what for c in e.commands] + [f.path for f in e.files]
            what += [s.name for s in e.sysctls]
            emit(f"{e.id}  {e.state:<12} {e.created}  {', '.join(what) or e.error or ''}\n")
        return 0
    if not journal.exists() and entry_id is None:
        emit(f"nothing to do: no journal in {journal.shown()}\n")
        return 0
    if entry_id is None:
        _need_root(Target(root, None), "rollback")
        swept = tidy(journal)  # entries an apply killed while creating its journal left
        try:
            chosen = entry_to_roll_back(journal, None)
        except NothingToRollBack as exc:
            emit(f"nothing to do: {exc}" + (f" (removed the empty entry {', '.join(swept)}"
                 " an interrupted apply had left)" if swept else "") + "\n")  # fmt: skip
            return 0
    else:
        chosen = entry_to_roll_back(journal, entry_id)
    # A tree's journal is data: its files are put back inside the tree, its runtime values
    # are the tree's files, and no namespace or command it names is ever used.
    netns = chosen.meta.get("netns") if root is None else None
    runtime_target = target if root is not None else Target(None, netns)
    _need_root(runtime_target, "rollback")
    _confirm(f"Roll back {chosen.id}?", yes)
    runner = command_runner(netns) if journal.trusted and root is None else None
    result = writer.rollback(
        chosen.id, root=target.tree, runtime=runtime_target.runtime(), state_dir=journal,
        force=force, runner=runner,
    )  # fmt: skip
    if result.nothing_to_do:
        emit(f"nothing to do: {result.entry_id} is already rolled back\n")
        return 0
    done = [
        *result.files,
        *result.removed,
        *result.sysctls,
        *(f"undid: {c}" for c in result.commands),
    ]
    emit(f"rolled back {result.entry_id}: {', '.join(done) or 'nothing had changed'}\n")
    return 0
