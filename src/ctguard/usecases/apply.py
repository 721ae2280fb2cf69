"""``ctguard apply``: make a plan (or load a saved one, checked against the host) and carry
it out through remediation/apply.py: journalled, undone on any failure, refused while an
earlier apply is unfinished."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ctguard.errors import CtguardError, RefusedError
from ctguard.host.root import read_regular_file
from ctguard.host.target import Target
from ctguard.remediation import apply as writer
from ctguard.remediation.changes import SetSysctl, WriteFile
from ctguard.remediation.plan_file import (
    HostIdentity,
    LoadedPlan,
    PlanFileError,
    load_plan,
    signature,
)
from ctguard.usecases.baseline import counters_now
from ctguard.usecases.plan import Planning, PlanReport, make_plan, plan_report
from ctguard.usecases.site import Confirm, Site, ask, open_site

MAX_PLAN_BYTES = 64 * 1024 * 1024  # a plan carries the bytes of a few config files

# what an apply did (ApplyReport.status)
NOTHING_PLANNED = "nothing-planned"  # the plan changes nothing
DRY_RUN = "dry-run"
IN_PLACE = "in-place"  # every change was already in place: no journal entry
APPLIED = "applied"


@dataclass(frozen=True)
class ApplyOptions:
    planning: Planning = field(default_factory=Planning)
    plan_file: str | None = None  # execute exactly this saved plan
    dry_run: bool = False
    state_dir: str | None = None


@dataclass(frozen=True)
class ApplyReport:
    status: str
    root: str | None  # the --root written, as given
    netns: str | None
    plan_checksum: str
    changed: tuple[str, ...] = ()  # applied: the paths written; dry run: one line each
    in_place: tuple[str, ...] = ()  # already in place: paths (applied), lines (dry run)
    entry_id: str | None = None  # the journal entry of an apply

    @property
    def undo(self) -> str | None:
        """The command that puts back what this apply changed."""
        if self.entry_id is None:
            return None
        return f"ctguard rollback {self.entry_id}" + (f" --root {self.root}" if self.root else "")


def read_plan_file(path: str) -> str:
    """A saved plan's text: a regular file (not a FIFO or /dev/zero), bounded, UTF-8."""
    try:
        return read_regular_file(path, MAX_PLAN_BYTES).decode("utf-8")
    except OSError as exc:
        raise CtguardError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CtguardError(f"cannot read {path}: not UTF-8 (not a saved plan)") from None


def _in_place(site: Site, loaded: LoadedPlan) -> bool:
    """Every change of the saved plan is already made (it was applied): a second run of it
    has nothing to do, as a second run of a fresh plan, and is not "outdated"."""
    try:
        change, _ = writer.dry_run(
            list(loaded.files), list(loaded.sysctls), root=site.tree, runtime=site.runtime()
        )
    except writer.StalePlanError:
        return False
    return not change


def same_plan_now(site: Site, loaded: LoadedPlan, source: str) -> None:
    """Refuse a saved plan that ctguard would no longer make: the host moved on since
    (a file the plan read but does not write, a count, a rule), so it is outdated."""
    try:
        fresh = make_plan(site, Planning.from_record(loaded.options))
    except (KeyError, TypeError, ValueError) as exc:
        raise RefusedError(str(PlanFileError(f"{source}: damaged plan (options: {exc})"))) from None
    now, was = signature(fresh.files, fresh.sysctls), loaded.signature()
    if now != was and not _in_place(site, loaded):
        differ = sorted({path for path, _ in set(now) ^ set(was)})
        raise RefusedError(
            f"{source}: outdated: the host changed since the plan was made (planning now"
            f" changes {', '.join(differ[:3]) or 'other contents'} differently); make a new plan"
        )


def _saved_plan(
    site: Site, identity: HostIdentity, source: str
) -> tuple[list[WriteFile], list[SetSysctl], str]:
    try:
        loaded = load_plan(read_plan_file(source), identity, source)
    except PlanFileError as exc:
        raise RefusedError(str(exc)) from None
    if loaded.refusal and not loaded.forced:
        raise RefusedError(f"{source}: the plan was refused when made: {loaded.refusal}")
    same_plan_now(site, loaded, source)
    return list(loaded.files), list(loaded.sysctls), loaded.checksum


def apply(
    target: Target,
    options: ApplyOptions,
    confirm: Confirm,
    show: Callable[[PlanReport], None],
) -> ApplyReport:
    """Make the target match the plan. ``show`` receives a plan made now (not a saved one)
    that changes something, before anything is written; ``confirm`` is asked before the
    first write. RefusedError: an unsafe plan, one for another host, or a host that changed
    since; CtguardError: anything else (what was undone is in the message)."""
    with open_site(target, writes=None if options.dry_run else "apply") as site:
        if not options.dry_run:
            site.need_root("apply")  # first: a non-root run learns nothing and writes nothing
        identity = site.identity()
        if options.plan_file is not None:
            files, sysctls, checksum = _saved_plan(site, identity, options.plan_file)
        else:
            made = plan_report(site, options.planning, identity)
            if made.plan.refused:
                raise RefusedError(f"{made.plan.refusal} (--force overrides)")
            files, sysctls = list(made.plan.files), list(made.plan.sysctls)
            # the checksum 'ctguard plan' prints for the same plan (options included)
            checksum = str(made.document["checksum"])
            if not made.plan.empty:
                show(made)
        return _carry_out(site, identity, options, files, sysctls, checksum, confirm)


def _carry_out(
    site: Site,
    identity: HostIdentity,
    options: ApplyOptions,
    files: list[WriteFile],
    sysctls: list[SetSysctl],
    checksum: str,
    confirm: Confirm,
) -> ApplyReport:
    root, netns = site.target.root, site.target.netns
    if not files and not sysctls:
        return ApplyReport(NOTHING_PLANNED, root, netns, checksum)
    runtime = site.runtime()
    tree = site.tree
    if options.dry_run:
        change, same = writer.dry_run(files, sysctls, root=tree, runtime=runtime)
        return ApplyReport(DRY_RUN, root, netns, checksum, tuple(change), tuple(same))
    ask(confirm, f"Apply {len(files)} file change(s) and {len(sysctls)} runtime value(s)?")
    meta = {"command": "apply", "plan_checksum": checksum, "root": identity.root,
            "netns": netns, "hostname": identity.hostname}  # fmt: skip
    try:
        result = writer.apply_changes(
            files, sysctls, root=tree, runtime=runtime, state_dir=site.state_dir(options.state_dir),
            meta=meta, baseline=counters_now(site.opened),
        )  # fmt: skip
    except writer.StalePlanError as exc:
        raise RefusedError(str(exc)) from None
    if result.entry_id is None:
        return ApplyReport(IN_PLACE, root, netns, checksum, in_place=result.skipped)
    changed = (*result.files, *result.sysctls)
    return ApplyReport(APPLIED, root, netns, checksum, changed, result.skipped, result.entry_id)
