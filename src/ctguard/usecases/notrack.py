"""``ctguard notrack``: plan (and add, journalled) the notrack rules and the accepts that keep
the ports reachable; remove every rule tagged ctguard; verify a bypass on the live host.

The plan is made from the target's ruleset: this host's, a namespace's (read inside it), or
a snapshot's. Rules are added and removed only live, read back after, and undone when they
do not read back as planned.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ctguard.errors import CtguardError, RefusedError, UsageError
from ctguard.exit_codes import ExitCode
from ctguard.facts import read_safely
from ctguard.host.commands import Commands, LiveCommands
from ctguard.host.flow_watch import NewFlow, watch_new_flows
from ctguard.host.root import HostRoot
from ctguard.host.target import Opened, Target, open_target
from ctguard.missing import Missing
from ctguard.remediation.apply import apply_changes, rollback
from ctguard.remediation.changes import RunCommand
from ctguard.remediation.notrack import (
    NotrackPlan,
    NotrackRequest,
    Tools,
    check_flows,
    ephemeral_ports,
    flows_for,
    plan_notrack,
    untracked_family,
)
from ctguard.remediation.notrack_script import add_commands, ours_in, remove_commands
from ctguard.sources.local_port_range import (
    LocalPortRange,
    ephemeral_range,
    read_local_port_range,
)
from ctguard.sources.modules import read_module_names
from ctguard.sources.ruleset import PortSet, Ruleset, iptables_variant, read_ruleset
from ctguard.usecases.site import Confirm, Site, ask

READ_TIMEOUT = 60.0  # seconds for reading the ruleset inside a namespace
WATCH_MARGIN = 30.0  # seconds a --verify watch may take beyond its window


@dataclass(frozen=True)
class NotrackOptions:
    ports: PortSet | None = None  # None with every_packet
    proto: str = "tcp"
    direction: str = "server"  # server | client | both
    backend: str = "auto"
    every_packet: bool = False  # --all
    force: bool = False  # accept even where a chain admits the ports only conditionally
    apply: bool = False  # add the rules (live only)
    state_dir: str | None = None


@dataclass(frozen=True)
class Inputs:
    """What the planner reads from the target: in one pass (one archive extraction, one
    namespace entry)."""

    ruleset: Ruleset
    tools: Tools
    local_ports: PortSet  # ip_local_port_range, where a client's replies arrive
    # /proc/modules (None: unread): is ip6_tables loaded, so legacy IPv6 tables may exist?
    modules: frozenset[str] | None = None


@dataclass(frozen=True)
class NotrackReport:
    where: str  # this host, netns NAME, or the snapshot
    request: NotrackRequest
    plan: NotrackPlan
    commands: tuple[RunCommand, ...]  # the transactions that add plan.add (none if refused)
    entry_id: str | None = None  # --apply: the journal entry of the rules added

    @property
    def exit_code(self) -> int:
        return ExitCode.OK


@dataclass(frozen=True)
class Removal:
    where: str
    rules: tuple[str, ...]  # the rules tagged ctguard, as shown
    entry_id: str | None = None  # the journal entry of their removal


@dataclass(frozen=True)
class Verification:
    """What ``notrack --verify`` saw: the filter check and the new entries of the window."""

    fates: tuple[str, ...]  # one line per untracked flow
    dropped: tuple[str, ...]  # the flows the filter would drop
    window: float
    on_ports: tuple[NewFlow, ...]  # new entries on the untracked ports (should be none)
    others: int  # new entries for other traffic (some: conntrack is in use)

    @property
    def exit_code(self) -> int:
        return verify_verdict(self.dropped, len(self.on_ports), self.others)


def verify_verdict(dropped: Sequence[str], on_ports: int, others: int) -> ExitCode:
    """CRITICAL when the filter drops untracked packets or the ports still create entries;
    UNKNOWN when no other traffic created one either (the window proves nothing); else OK.

    >>> verify_verdict((), 0, 5).name, verify_verdict((), 0, 0).name
    ('OK', 'UNKNOWN')
    """
    if dropped or on_ports:
        return ExitCode.CRITICAL
    return ExitCode.UNKNOWN if others == 0 else ExitCode.OK


# -- reading --------------------------------------------------------------------------
def _ruleset(got: Ruleset | Missing) -> Ruleset:
    if isinstance(got, Missing):
        raise CtguardError(f"cannot read the firewall ruleset: {got.reason}")
    return got


def live_ruleset(netns: str | None) -> Ruleset:
    """The live merged ruleset of the namespace, or of this host (to re-read after a change)."""

    def job(_host: HostRoot, commands: Commands) -> Ruleset | Missing:
        return read_ruleset(commands)

    return _ruleset(Site.live(netns).opened.run(job, READ_TIMEOUT))


def live_modules() -> frozenset[str] | None:
    """The modules loaded on this host (global: the same in every namespace)."""
    return read_module_names(HostRoot("/"))


def live_tools() -> Tools:
    """What this host can run (a namespace runs this host's programs)."""
    version = LiveCommands().output("iptables-version")
    return Tools(
        nft=shutil.which("nft") is not None,
        iptables=shutil.which("iptables-restore") is not None,
        ip6tables=shutil.which("ip6tables-restore") is not None,
        iptables_variant=None if isinstance(version, Missing) else iptables_variant(version),
    )


def read_inputs(opened: Opened) -> Inputs:
    def job(
        host: HostRoot, commands: Commands
    ) -> tuple[Ruleset | Missing, LocalPortRange | Missing, frozenset[str] | None]:
        return (read_ruleset(commands), read_safely(read_local_port_range, host),
                read_module_names(host))  # fmt: skip

    got, ports, modules = opened.run(job, READ_TIMEOUT)
    ruleset = _ruleset(got)
    if opened.target.live:
        tools = live_tools()
    else:
        # a snapshot's host is assumed to have both tools; its iptables-save names the variant
        saved = opened.commands.output("iptables-save")
        variant = None if isinstance(saved, Missing) else iptables_variant(saved)
        tools = Tools(True, True, True, variant)
    return Inputs(ruleset, tools, PortSet.of(ephemeral_range(ports)), modules)


# -- plan and add -----------------------------------------------------------------------
def build_request(options: NotrackOptions, local_ports: PortSet) -> NotrackRequest:
    return NotrackRequest(options.ports, (options.proto,), options.direction,
                          options.backend, options.every_packet, options.force,
                          local_ports)  # fmt: skip


def _need_root() -> None:
    if os.geteuid() != 0:
        raise CtguardError("changing the firewall needs root (sudo ctguard notrack ...)")


def notrack(
    target: Target,
    options: NotrackOptions,
    confirm: Confirm,
    show: Callable[[NotrackReport], None],
) -> NotrackReport:
    """Plan the bypass for the target; with ``apply``, add it (live). ``show`` receives
    the plan before anything is written; RefusedError after it when the plan is refused."""
    target.check_writes("notrack --apply" if options.apply else None)
    if options.apply and not target.live:
        raise UsageError("--root plans against a snapshot; --apply/--remove/--verify act live")
    if options.apply:
        _need_root()
    with open_target(target) as opened:
        inputs = read_inputs(opened)
    request = build_request(options, inputs.local_ports)
    plan = plan_notrack(inputs.ruleset, request, inputs.tools, inputs.modules)
    commands = add_commands(inputs.ruleset, plan.add) if not plan.refused else ()
    report = NotrackReport(target.label, request, plan, commands)
    show(report)
    if plan.refused:
        raise RefusedError(f"refused: {plan.refusals[0].reason}")
    if options.apply and commands:
        entry_id = _add(report, target.netns, options.state_dir, inputs, confirm)
        report = replace(report, entry_id=entry_id)
    return report


def _add(report: NotrackReport, netns: str | None, state_dir: str | None, inputs: Inputs,
         confirm: Confirm) -> str:  # fmt: skip
    """Add the rules, journalled; read them back, and roll back when they differ."""
    plan = report.plan
    ask(confirm, f"Add {len(plan.add)} firewall rule(s)?")
    site = Site.live(netns)
    runner = site.runner()
    journal = site.state_dir(state_dir)
    meta = {"command": "notrack", "netns": netns}
    result = apply_changes((), (), root=Path("/"), runtime=site.runtime(), state_dir=journal,
                           meta=meta, commands=report.commands, runner=runner)  # fmt: skip
    assert result.entry_id is not None  # commands always make an entry
    try:
        again = plan_notrack(live_ruleset(netns), report.request, inputs.tools, inputs.modules)
    except CtguardError as exc:
        raise CtguardError(
            f"the rules were added (journal entry {result.entry_id}) but could not be read"
            f" back: {exc}; check them, and undo with: ctguard rollback {result.entry_id}"
        ) from None
    if again.add or again.refused:
        rollback(result.entry_id, root=Path("/"), runtime=site.runtime(), state_dir=journal,
                 runner=runner, force=True)  # fmt: skip
        missing = [r.shown() for r in again.add] or [r.reason for r in again.refusals]
        raise CtguardError(
            f"the rules did not read back as planned ({missing[0]}); rolled back {result.entry_id}"
        )
    return result.entry_id


# -- remove ---------------------------------------------------------------------------
def notrack_remove(
    target: Target, state_dir: str | None, confirm: Confirm, show: Callable[[Removal], None]
) -> Removal:
    """Delete every rule tagged ctguard (live), journalled; ``show`` receives them first."""
    target.check_writes("notrack --remove")
    if not target.live:
        raise UsageError("--root plans against a snapshot; --apply/--remove/--verify act live")
    _need_root()
    netns = target.netns
    ruleset = live_ruleset(netns)
    site = Site.live(netns)
    journal = site.state_dir(state_dir)
    commands, shown = remove_commands(ruleset, live_tools().iptables_variant == "nft")
    if not commands:
        return Removal(target.label, ())
    removal = Removal(target.label, tuple(shown))
    show(removal)
    ask(confirm, f"Delete {len(shown)} ctguard rule(s)?")
    result = apply_changes((), (), root=Path("/"), runtime=site.runtime(), state_dir=journal,
                           meta={"command": "notrack --remove", "netns": netns},
                           commands=commands, runner=site.runner())  # fmt: skip
    left = ours_in(live_ruleset(netns))
    if left:
        raise CtguardError(f"{len(left)} ctguard rule(s) are still there after --remove")
    return replace(removal, entry_id=result.entry_id)


# -- verify ---------------------------------------------------------------------------
def verify_notrack(target: Target, request: NotrackRequest, window: float) -> Verification:
    """Check the live filter for the untracked flows, then watch new conntrack entries
    for ``window`` seconds: none may be on the ports, and other traffic should make some."""
    if not target.live:
        raise UsageError("--root plans against a snapshot; --apply/--remove/--verify act live")
    ruleset = live_ruleset(target.netns)
    family = untracked_family(ruleset, request, live_tools(), live_modules())
    fates, dropped = check_flows(ruleset, flows_for(request, family), ephemeral_ports(request))

    def job(_host: HostRoot, _commands: Commands) -> list[NewFlow] | Missing:
        return watch_new_flows(window)

    seen = Site.live(target.netns).opened.run(job, window + WATCH_MARGIN)
    if isinstance(seen, Missing):
        raise CtguardError(f"cannot watch new conntrack entries: {seen.reason}")
    on_ports = [f for f in seen if is_untracked_entry(f, request, family)]
    return Verification(fates, dropped, window, tuple(on_ports), len(seen) - len(on_ports))


def is_untracked_entry(flow: NewFlow, request: NotrackRequest, family: str = "inet") -> bool:
    """An entry whose original direction goes to one of the ports: a connection to the
    service (server) or from this host to it (client), of the family untracked ("ip": an
    IPv6 entry is expected, IPv6 stays tracked); the source port is ignored, since an
    ephemeral source port may equal the service port by chance."""
    if family == "ip" and flow.ipv6:
        return False
    if request.every_packet:
        return True
    ports = request.ports
    return flow.proto in request.protos and ports is not None and ports.contains(flow.dport)
