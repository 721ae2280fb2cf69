"""``ctguard notrack``: untrack named ports (or everything) without blackholing them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from ctguard.cli.emit import emit
from ctguard.cli.plan import DEFAULT_STATE_DIR, Target, _confirm, command_runner
from ctguard.errors import CtguardError, RefusedError
from ctguard.exit_codes import ExitCode
from ctguard.remediation.notrack import BACKENDS, DIRECTIONS, PROTOS

if TYPE_CHECKING:
    from ctguard.missing import Missing
    from ctguard.remediation.changes import RunCommand
    from ctguard.remediation.notrack import NotrackPlan, NotrackRequest, Tools
    from ctguard.sources.ruleset import PortSet, Ruleset


def parse_ports(text: str) -> PortSet:
    """``8983,9200-9300`` as a PortSet; BadParameter for anything else."""
    from ctguard.sources.ruleset import MAX_PORT, PortSet

    items: list[tuple[int, int]] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            raise click.BadParameter(f"{part.strip()!r} is not a port or a range like 9200-9300",
                                     param_hint="--port") from None  # fmt: skip
        if not (1 <= first <= last <= MAX_PORT):
            raise click.BadParameter(f"{part.strip()!r}: ports are 1-{MAX_PORT}, low-high",
                                     param_hint="--port")  # fmt: skip
        items.append((first, last))
    return PortSet.of(*items)


T = TypeVar("T")


def _inside(netns: str | None, job: Callable[[], T]) -> T:
    """``job()`` computed in the named namespace, or here."""
    if netns is None:
        return job()
    from ctguard.host.netns import run_in_netns

    return run_in_netns(netns, job, timeout=60)


def _ruleset(got: Ruleset | Missing) -> Ruleset:
    from ctguard.missing import Missing

    if isinstance(got, Missing):
        raise CtguardError(f"cannot read the firewall ruleset: {got.reason}")
    return got


def read_ruleset(netns: str | None) -> Ruleset:
    """The live merged ruleset of the namespace, or of this host (to re-read after a change)."""
    from ctguard.host.commands import LiveCommands
    from ctguard.sources.ruleset import read_ruleset as read

    return _ruleset(_inside(netns, lambda: read(LiveCommands())))


@dataclass(frozen=True)
class Inputs:
    """What the planner reads from the target: in one pass (one archive extraction, one
    namespace entry)."""

    ruleset: Ruleset
    tools: Tools
    local_ports: PortSet  # ip_local_port_range, where a client's replies arrive


def read_inputs(root: str | None, netns: str | None) -> Inputs:
    from ctguard.host.commands import CapturedCommands, LiveCommands
    from ctguard.host.root import HostRoot
    from ctguard.missing import Missing
    from ctguard.remediation.notrack import Tools
    from ctguard.sources.ruleset import iptables_variant
    from ctguard.sources.ruleset import read_ruleset as read

    if root is None:

        def job() -> tuple[Ruleset | Missing, PortSet]:
            text = HostRoot("/").try_read_text(LOCAL_PORT_RANGE, 256)
            return read(LiveCommands()), port_range(text)

        got, ports = _inside(netns, job)
        return Inputs(_ruleset(got), live_tools(), ports)
    from ctguard.host.archive import open_root

    with open_root(root) as host:
        commands = CapturedCommands(host)
        got = read(commands)
        saved = commands.output("iptables-save")
        ports = port_range(host.try_read_text(LOCAL_PORT_RANGE, 256))
    # a snapshot's host is assumed to have both tools; its iptables-save names the variant
    variant = None if isinstance(saved, Missing) else iptables_variant(saved)
    return Inputs(_ruleset(got), Tools(True, True, True, variant), ports)


def live_tools() -> Tools:
    from ctguard.host.commands import LiveCommands
    from ctguard.missing import Missing
    from ctguard.remediation.notrack import Tools
    from ctguard.sources.ruleset import iptables_variant

    version = LiveCommands().output("iptables-version")
    return Tools(
        nft=shutil.which("nft") is not None,
        iptables=shutil.which("iptables-restore") is not None,
        ip6tables=shutil.which("ip6tables-restore") is not None,
        iptables_variant=None if isinstance(version, Missing) else iptables_variant(version),
    )


def _request(ports: str | None, proto: str, direction: str, backend: str, every: bool,
             force: bool) -> NotrackRequest:  # fmt: skip
    from ctguard.remediation.notrack import NotrackRequest

    if every and ports:
        raise click.UsageError("--all and --port cannot be combined")
    if not every and not ports:
        raise click.UsageError("say which ports (--port 8983) or --all")
    portset = parse_ports(ports) if ports else None
    return NotrackRequest(portset, (proto,), direction, backend, every, force)


LOCAL_PORT_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"
DEFAULT_LOCAL_PORTS = (32768, 60999)  # the kernel's default ip_local_port_range


def port_range(text: str | Missing) -> PortSet:
    """``ip_local_port_range`` ("32768\t60999"); the kernel default when unreadable."""
    from ctguard.missing import Missing
    from ctguard.sources.ruleset import PortSet

    words = [] if isinstance(text, Missing) else text.split()
    if len(words) == 2 and all(w.isdigit() for w in words):
        lo, hi = int(words[0]), int(words[1])
        if 0 < lo <= hi <= 65535:
            return PortSet.of((lo, hi))
    return PortSet.of(DEFAULT_LOCAL_PORTS)


@click.command("notrack")
@click.option(
    "--port", "ports", metavar="P[,P-Q...]", help="Ports to untrack: 8983 or 9200-9300,53."
)
@click.option("--proto", type=click.Choice(PROTOS), default="tcp", show_default=True)
@click.option(
    "--direction",
    type=click.Choice(DIRECTIONS),
    default="server",
    show_default=True,
    help="server: this host serves the port; client: it connects to it; both.",
)
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="auto",
    show_default=True,
    help="Where the notrack rules go; auto follows the ruleset.",
)
@click.option(
    "--all",
    "every_packet",
    is_flag=True,
    help="Untrack everything stateful rules do not need (built-in conntrack).",
)
@click.option("--apply", "do_apply", is_flag=True, help="Add the rules (journalled).")
@click.option("--remove", is_flag=True, help="Delete every rule tagged ctguard (journalled).")
@click.option(
    "--verify",
    is_flag=True,
    help="Check the live ruleset and watch new entries for --window seconds.",
)
@click.option(
    "--window",
    type=click.FloatRange(0.5, 60),
    default=3.0,
    show_default=True,
    metavar="SECONDS",
    help="How long --verify watches new conntrack entries.",
)
@click.option("--netns", metavar="NAME", help="Act inside the named network namespace.")
@click.option("--root", metavar="DIR|FILE.tar.gz", help="Plan against a snapshot (no --apply).")
@click.option(
    "--force",
    is_flag=True,
    help="Add accepts even where the chain admits these ports only conditionally.",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="The plan as JSON (ctguard.notrack/1).")
@click.option("--state-dir", metavar="DIR", help=f"Journal (default {DEFAULT_STATE_DIR}).")
def notrack_command(
    ports: str | None, proto: str, direction: str, backend: str, every_packet: bool,
    do_apply: bool, remove: bool, verify: bool, window: float, netns: str | None,
    root: str | None, force: bool, yes: bool, as_json: bool, state_dir: str | None,
) -> int:  # fmt: skip
    """Stop tracking named ports, with the filter changes that keep them reachable.

    A NOTRACK rule alone blackholes a service behind a stateful firewall (untracked packets
    are never ESTABLISHED: CT501) and breaks NAT (untracked packets are never NATed: CT502).
    This adds, tagged 'ctguard': notrack rules at raw priority for the direction asked, and
    an accept for untracked packets of exactly those ports first in every filter chain that
    would drop them. It refuses when NAT could match them, or when a chain admits the port
    only under conditions (addresses) a blanket accept would widen.

    \b
    Exit codes: 0 planned/applied/verified, 2 refused or verify failed, 3 error (bad usage,
    not root, a command failed: undone) or verify inconclusive (no other traffic seen).

    \b
    Examples:
      ctguard notrack --port 8983                          show the plan
      sudo ctguard notrack --port 8983 --apply --verify    add, then prove it
      sudo ctguard notrack --port 53 --proto udp --direction both --apply --yes
      sudo ctguard notrack --port 8983 --netns web1 --apply --yes
      sudo ctguard notrack --remove --yes                  delete every ctguard rule
      sudo ctguard notrack --all --apply                   built-in conntrack, no NAT
    """
    from ctguard.output.notrack_text import dumps, plan_json, render_plan
    from ctguard.remediation.notrack import plan_notrack
    from ctguard.remediation.notrack_script import add_commands

    if root is not None and (do_apply or remove or verify):
        raise click.UsageError(
            "--root plans against a snapshot; --apply/--remove/--verify act live"
        )
    if root is not None and netns is not None:
        raise click.UsageError("--root and --netns cannot be combined")
    if do_apply and remove:
        raise click.UsageError("--apply and --remove cannot be combined")
    where = root if root is not None else f"netns {netns}" if netns else "this host"
    if (do_apply or remove) and os.geteuid() != 0:
        raise CtguardError("changing the firewall needs root (sudo ctguard notrack ...)")
    if remove:
        _remove(netns, yes, state_dir, where)
        return ExitCode.OK
    request = _request(ports, proto, direction, backend, every_packet, force)
    inputs = read_inputs(root, netns)
    rs, tools = inputs.ruleset, inputs.tools
    if direction != "server" and not every_packet:
        request = replace(request, local_ports=inputs.local_ports)
    plan = plan_notrack(rs, request, tools)
    commands = add_commands(rs, plan.add) if not plan.refused else ()
    if as_json and not verify:  # with --verify, its own document is the output
        emit(dumps(plan_json(plan, commands)))
    elif not as_json and not (verify and not do_apply):
        emit(render_plan(plan, where, commands))
    if plan.refused:
        raise RefusedError(f"refused: {plan.refusals[0].reason}")
    if do_apply and commands:
        _apply(plan, commands, request, netns, yes, state_dir, tools, as_json)
    if verify:
        return _verify(request, netns, window, as_json)
    return ExitCode.OK


def _apply(plan: NotrackPlan, commands: tuple[RunCommand, ...], request: NotrackRequest,
           netns: str | None, yes: bool, state_dir: str | None, tools: Tools,
           as_json: bool) -> None:  # fmt: skip
    from ctguard.remediation.apply import apply_changes, rollback
    from ctguard.remediation.notrack import plan_notrack

    _confirm(f"Add {len(plan.add)} firewall rule(s)?", yes)
    target = Target(None, netns)
    runner = command_runner(netns)
    journal = target.state_dir(state_dir)
    meta = {"command": "notrack", "netns": netns}
    result = apply_changes((), (), root=Path("/"), runtime=target.runtime(), state_dir=journal,
                           meta=meta, commands=commands, runner=runner)  # fmt: skip
    try:
        again = plan_notrack(read_ruleset(netns), request, tools)
    except CtguardError as exc:
        raise CtguardError(
            f"the rules were added (journal entry {result.entry_id}) but could not be read"
            f" back: {exc}; check them, and undo with: ctguard rollback {result.entry_id}"
        ) from None
    if again.add or again.refused:
        assert result.entry_id is not None
        rollback(result.entry_id, root=Path("/"), runtime=target.runtime(), state_dir=journal,
                 runner=runner, force=True)  # fmt: skip
        missing = [r.shown() for r in again.add] or [r.reason for r in again.refusals]
        raise CtguardError(
            f"the rules did not read back as planned ({missing[0]}); rolled back {result.entry_id}"
        )
    undo = f"ctguard rollback {result.entry_id} (or ctguard notrack --remove)"
    # stdout stays one JSON document with --json: the status goes to stderr then
    click.echo(f"added {len(plan.add)} rule(s); journal entry {result.entry_id}; undo with: {undo}",
               err=as_json)  # fmt: skip


def _remove(netns: str | None, yes: bool, state_dir: str | None, where: str) -> None:
    from ctguard.remediation.apply import apply_changes
    from ctguard.remediation.notrack_script import ours_in, remove_commands

    rs = read_ruleset(netns)
    target = Target(None, netns)
    journal = target.state_dir(state_dir)
    commands, shown = remove_commands(rs, live_tools().iptables_variant == "nft")
    if not commands:
        emit(f"nothing to remove: no rule tagged ctguard in {where}\n")
        return
    emit("Rules to delete (tagged ctguard):\n" + "".join(f"  {line}\n" for line in shown))
    _confirm(f"Delete {len(shown)} ctguard rule(s)?", yes)
    result = apply_changes((), (), root=Path("/"), runtime=target.runtime(), state_dir=journal,
                           meta={"command": "notrack --remove", "netns": netns},
                           commands=commands, runner=command_runner(netns))  # fmt: skip
    left = ours_in(read_ruleset(netns))
    if left:
        raise CtguardError(f"{len(left)} ctguard rule(s) are still there after --remove")
    emit(f"removed; journal entry {result.entry_id} (ctguard rollback {result.entry_id} puts"
         " them back)\n")  # fmt: skip


def _verify(request: NotrackRequest, netns: str | None, window: float, as_json: bool) -> int:
    from ctguard.host.flow_watch import watch_new_flows
    from ctguard.missing import Missing
    from ctguard.output.notrack_text import Verification, dumps, render_verify, verify_json
    from ctguard.remediation.notrack import check_flows, flows_for

    fates, dropped = check_flows(read_ruleset(netns), flows_for(request))
    if netns is not None:
        from ctguard.host.netns import run_in_netns

        seen = run_in_netns(netns, lambda: watch_new_flows(window), timeout=window + 30)
    else:
        seen = watch_new_flows(window)
    if isinstance(seen, Missing):
        raise CtguardError(f"cannot watch new conntrack entries: {seen.reason}")
    on_ports = [f for f in seen if _untracked(f.proto, f.sport, f.dport, request)]
    others = len(seen) - len(on_ports)
    code = (
        ExitCode.CRITICAL
        if dropped or on_ports
        else ExitCode.UNKNOWN
        if others == 0
        else ExitCode.OK
    )
    result = Verification(fates, dropped, window, tuple(on_ports), others, code)
    emit(dumps(verify_json(result)) if as_json else render_verify(result))
    return code


def _untracked(proto: str, sport: int, dport: int, request: NotrackRequest) -> bool:
    """An entry whose original direction goes to one of the ports: a connection to the
    service (server) or from this host to it (client); ``sport`` is ignored, since an
    ephemeral source port may equal the service port by chance."""
    if request.every_packet:
        return True
    return proto in request.protos and request.ports is not None and request.ports.contains(dport)
