"""``ctguard plan``: size the table for the target's memory and load, and place every value
where it survives a reboot, a module reload and a firewall restart; never writes, except
the plan file asked for with ``-o``."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctguard.errors import CtguardError
from ctguard.exit_codes import REFUSED, ExitCode
from ctguard.findings import Status
from ctguard.host.target import Target
from ctguard.remediation.plan import Plan, PlanOptions, build_plan
from ctguard.remediation.plan_file import HostIdentity, dump_plan, plan_document
from ctguard.usecases.doctor import diagnose
from ctguard.usecases.read_facts import read_facts
from ctguard.usecases.site import Site, open_site

# What a plan was made with, as its file records it (under the CLI's option names), in
# this order.
RECORDED = (
    "target_max", "memory_budget", "established_timeout", "timeouts", "force", "no_table",
)  # fmt: skip


@dataclass(frozen=True)
class Planning:
    """How a plan is made: the planner's options, and whether the table is read."""

    sizing: PlanOptions = field(default_factory=PlanOptions)
    table: bool = True  # read the conntrack table (--no-table: timeouts are not sized)

    def record(self) -> dict[str, Any]:
        """The ``options`` of the plan file, so ``apply --plan`` can make the plan again."""
        s = self.sizing
        values = (s.target_max, s.budget_pct, s.established_timeout, dict(s.timeouts),
                  s.force, not self.table)  # fmt: skip
        return dict(zip(RECORDED, values, strict=True))

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Planning:
        """The inverse of ``record``; KeyError, TypeError or ValueError when it is damaged."""
        values = {name: record[name] for name in RECORDED}
        timeouts = {str(k): int(v) for k, v in dict(values["timeouts"]).items()}
        sizing = PlanOptions(
            target_max=values["target_max"],
            budget_pct=values["memory_budget"],
            established_timeout=values["established_timeout"],
            timeouts=timeouts,
            force=values["force"],
        )
        return cls(sizing, table=not values["no_table"])


@dataclass(frozen=True)
class PlanReport:
    plan: Plan
    identity: HostIdentity
    root: str | None  # the --root given, as given
    archive: bool  # that root is a snapshot archive
    document: dict[str, Any]  # ctguard.plan/1: what --format json prints and -o saves

    @property
    def exit_code(self) -> int:
        return REFUSED if self.plan.refused else ExitCode.OK


def make_plan(site: Site, planning: Planning) -> Plan:
    """The plan for the site's facts now, with the doctor's findings it fixes."""
    facts = read_facts(site.opened, planning.table)
    found = [f.id for f in diagnose(facts).findings if f.status is Status.FOUND]
    return build_plan(facts, planning.sizing, site.file_reader(), found)


def plan_report(site: Site, planning: Planning, identity: HostIdentity | None = None) -> PlanReport:
    made = make_plan(site, planning)
    identity = identity or site.identity()
    document = plan_document(made, identity, planning.record())
    return PlanReport(made, identity, site.target.root, site.archive, document)


def plan(target: Target, planning: Planning, save_to: str | None = None) -> PlanReport:
    """The plan for the target (this host, a namespace, a snapshot directory or archive);
    ``save_to``: also save it, checksummed, for ``apply --plan FILE``."""
    with open_site(target) as site:
        report = plan_report(site, planning)
    if save_to is not None:
        save_plan(save_to, report.document)
    return report


def save_plan(output: str, document: Mapping[str, Any]) -> None:
    """Write the plan next to its name and rename it there: never half written, and the
    temporary name is unpredictable and created exclusively (mkstemp), so a link planted in
    a shared directory such as /tmp cannot turn root's write into someone else's file."""
    path = Path(output)
    temp: str | None = None
    try:
        refuse_other_than_file(path)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
        with os.fdopen(fd, "w") as f:
            f.write(dump_plan(document))
        os.replace(temp, path)
    except OSError as exc:
        if temp is not None:
            Path(temp).unlink(missing_ok=True)
        raise CtguardError(f"cannot write {output}: {exc.strerror or exc}") from None


def refuse_other_than_file(path: Path) -> None:
    """The rename that finishes the write replaces whatever has the name: as root, a device
    node (``-o /dev/full``, ``-o /dev/null``), a FIFO or a socket would be gone, replaced by
    the plan. Only a regular file (or a link, itself replaced) is ours to overwrite."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise OSError(errno.EEXIST, "not a regular file (-o would replace it)")
