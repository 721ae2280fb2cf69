"""``ctguard notrack``: untrack named ports (or everything) without blackholing them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ctguard.cli.emit import changed, emit, note
from ctguard.cli.options import FiniteRange, NonEmpty, format_option
from ctguard.cli.prompt import confirmer
from ctguard.exit_codes import ExitCode
from ctguard.remediation.notrack import BACKENDS, DIRECTIONS, PROTOS
from ctguard.remediation.state_dir import DEFAULT_STATE_DIR

if TYPE_CHECKING:
    from ctguard.sources.ruleset import PortSet
    from ctguard.usecases.notrack import NotrackReport


def parse_ports(text: str) -> PortSet:
    """``8983,9200-9300`` as a PortSet; BadParameter for anything else."""
    from ctguard.sources.ruleset import MAX_PORT, PortSet

    items: list[tuple[int, int]] = []
    for part in text.split(","):
        lo, _, hi = (n.strip() for n in part.partition("-"))
        try:
            if not all(n.isascii() and n.isdigit() for n in (lo, hi or lo)):
                raise ValueError  # int() also takes '+80', '1_000' and other scripts' digits
            first, last = int(lo), int(hi or lo)
        except ValueError:
            raise click.BadParameter(f"{part.strip()!r} is not a port or a range like 9200-9300",
                                     param_hint="--port") from None  # fmt: skip
        if not (1 <= first <= last <= MAX_PORT):
            raise click.BadParameter(f"{part.strip()!r}: ports are 1-{MAX_PORT}, low-high",
                                     param_hint="--port")  # fmt: skip
        items.append((first, last))
    return PortSet.of(*items)


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
    type=FiniteRange(0.5, 60),
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
@format_option(schema="ctguard.notrack/1; with --verify ctguard.notrack-verify/2")
@click.option(
    "--state-dir", type=NonEmpty(), metavar="DIR", help=f"Journal (default {DEFAULT_STATE_DIR})."
)
def notrack_command(
    ports: str | None, proto: str, direction: str, backend: str, every_packet: bool,
    do_apply: bool, remove: bool, verify: bool, window: float, netns: str | None,
    root: str | None, force: bool, yes: bool, fmt: str, state_dir: str | None,
) -> int:  # fmt: skip
    """Stop tracking named ports, with the filter changes that keep them reachable.

    A NOTRACK rule alone blackholes a service behind a stateful firewall (untracked packets
    are never ESTABLISHED: CT501) and breaks NAT (untracked packets are never NATed: CT502).
    This adds, tagged 'ctguard': notrack rules at raw priority for the direction asked, and
    an accept for untracked packets of exactly those ports in every filter chain that
    accepted them tracked and would drop them untracked, right before the accept that took
    them (so the rules ahead of it still stop what they stopped; none where the filter drops
    them tracked too: that would open a closed port). It refuses when NAT could match them,
    when a chain admits the port only under conditions (addresses) a blanket accept would
    widen, when the packets were accepted only as replies (ESTABLISHED/RELATED: untracked,
    they cannot be told from new ones), or when the resulting ruleset would accept untracked
    packets where it did not accept them tracked.

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
      ctguard notrack --port 8983 --root snap.tgz --format json
    """
    from ctguard.host.target import Target
    from ctguard.output import notrack_json, notrack_text
    from ctguard.usecases.notrack import (
        NotrackOptions,
        notrack,
        notrack_remove,
        verify_notrack,
    )

    target, confirm = Target(root, netns), confirmer(yes)  # --root /: this host
    target.check_writes("notrack --apply" if do_apply else "notrack --remove" if remove else None)
    if target.root is not None and (do_apply or remove or verify):
        raise click.UsageError(
            "--root plans against a snapshot; --apply/--remove/--verify act live"
        )
    if do_apply and remove:
        raise click.UsageError("--apply and --remove cannot be combined")
    if remove:
        removal = notrack_remove(
            target, state_dir, confirm, lambda r: emit(notrack_text.render_removal(r))
        )
        if removal.entry_id is not None:
            changed(f"removed the ctguard rules (journal entry {removal.entry_id})")
        emit(notrack_text.render_removed(removal))
        return ExitCode.OK
    if every_packet and ports:
        raise click.UsageError("--all and --port cannot be combined")
    if not every_packet and not ports:
        raise click.UsageError("say which ports (--port 8983) or --all")
    portset = parse_ports(ports) if ports else None

    def show(report: NotrackReport) -> None:
        if fmt == "json" and not verify:  # with --verify, its own document is the output
            emit(notrack_json.render_notrack_json(report))
        elif fmt != "json" and not (verify and not do_apply):
            emit(notrack_text.render_notrack_text(report))

    options = NotrackOptions(
        ports=portset, proto=proto, direction=direction, backend=backend,
        every_packet=every_packet, force=force, apply=do_apply, state_dir=state_dir,
    )  # fmt: skip
    report = notrack(target, options, confirm, show)
    if report.entry_id is not None:
        changed(f"notrack rules added (journal entry {report.entry_id})")
    added = notrack_text.render_added(report)
    if added and fmt == "json":  # stdout stays one JSON document: to stderr then
        note(added)
    elif added:
        emit(added)
    if not verify:
        return report.exit_code
    verification = verify_notrack(target, report.request, window)
    if fmt == "json":
        emit(notrack_json.render_verify_json(verification))
    else:
        emit(notrack_text.render_verify(verification))
    return verification.exit_code
