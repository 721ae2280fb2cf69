"""Undoing a command that apply ran (a firewall transaction, a module unload).

A journal is data read back from disk, so the undo it records is never run as free argv:
``check_shape`` accepts only the undo commands ctguard itself writes (``nft -f -`` and
``iptables-restore --noflush`` scripts that touch only rules tagged ``ctguard`` and its own
table, ``modprobe`` of a netfilter module), and ``undo_check.reconcile`` then fits the
script to the live ruleset, so only rules that are still there, and still ctguard's, are
deleted.

When ctguard died after an ``nft`` transaction committed but before it recorded what nft
echoed, ``recovery_script`` finds the rules that transaction added: the rules tagged
``ctguard``, in the chains it added to, that were not there before it ran
(``CommandRecord.tagged_before``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ctguard.errors import CtguardError, ParseError
from ctguard.model.notrack_rules import OWN_FAMILY, OWN_TABLE, TAG, is_ours
from ctguard.remediation.changes import NFT_ECHO
from ctguard.remediation.journal import CommandRecord
from ctguard.remediation.notrack_script import NFT_RUN, RESTORE
from ctguard.remediation.undo_check import LISTING, cleanup, committed, reconcile
from ctguard.sources.ruleset import parse_nft_json

Runner = Callable[[Sequence[str], str], str]
StepHook = Callable[[str], None]

_OWN = f"{OWN_FAMILY} {OWN_TABLE}"
_NAME = r"[A-Za-z0-9_.-]+"
_RULE = r"[^;\n]*"  # one rule: no second command after a ;
# The undo of an add (notrack --apply): deletions, fitted to the live ruleset first.
_NFT_DELETES = (
    re.compile(rf"delete rule {_NAME} {_NAME} {_NAME} handle \d+"),
    re.compile(rf"delete chain {_OWN} {_NAME}"),
    re.compile(rf"delete table {_OWN}"),
)
# The undo of a removal (notrack --remove): the rules tagged ctguard, added back.
_NFT_ADDS = (
    re.compile(rf"add table {_OWN}"),
    re.compile(rf"add chain {_OWN} (\w+) \{{ type filter hook \1 priority raw; policy accept; \}}"),
    re.compile(rf"(?:add|insert) rule {_NAME} {_NAME} {_NAME} {_RULE} comment \"{TAG}\""),
)
_TAGGED = rf"{_RULE}-m comment --comment \"?{TAG}\"?(?: {_RULE})?"
_IPTABLES_DELETES = (re.compile(rf"-D {_NAME} {_TAGGED}"),)
_IPTABLES_ADDS = (re.compile(rf"-I {_NAME} \d+ {_TAGGED}"),)
_IPTABLES_FRAME = (re.compile(r"\*(raw|filter|mangle|nat|security)"), re.compile(r"COMMIT"))
# The modules 'disable' unloads, and its undo loads again: netfilter's own.
_MODULE = re.compile(
    r"(nf_conntrack|nfnetlink|(nf|nft|xt|ipt|ip6t|iptable|ip6table|ebt|arpt)_[a-z0-9_]+)"
)


def check_shape(entry_id: str, record: CommandRecord) -> None:
    """CtguardError unless ``record``'s undo is one that ctguard writes: deletions (which
    are always fitted to the live ruleset before they run, so they only ever delete a rule
    tagged ctguard that is still there), or the re-adding of rules tagged ctguard."""
    argv, script = record.undo_argv, record.undo_stdin
    if not argv:
        return
    deletes = _deletes(record)
    tool = _tool_of(argv)
    patterns: Sequence[re.Pattern[str]]
    if tool == "nft":
        patterns = _NFT_DELETES if deletes else _NFT_ADDS
    elif tool is not None:
        patterns = (*_IPTABLES_FRAME, *(_IPTABLES_DELETES if deletes else _IPTABLES_ADDS))
    elif len(argv) == 2 and argv[0] == "modprobe" and _MODULE.fullmatch(argv[1]) and not script:
        return
    else:
        raise CtguardError(
            f"entry {entry_id}: the undo of {record.what!r} ({' '.join(argv)[:80]}) is not a"
            " command ctguard writes; nothing was rolled back"
        )
    for line in script.splitlines():
        if line.strip() and not any(p.fullmatch(line) for p in patterns):
            raise CtguardError(
                f"entry {entry_id}: the undo of {record.what!r} has a line ctguard never"
                f" writes ({line[:80]!r}); nothing was rolled back"
            )


def _deletes(record: CommandRecord) -> bool:
    """The undo deletes (an add's undo) rather than adds back (a removal's undo)."""
    return record.undo_check is not None or any(
        line.startswith(("delete ", "-D ")) for line in record.undo_stdin.splitlines()
    )


def _tool_of(argv: Sequence[str]) -> str | None:
    """The firewall tool a script-reading command drives, as LISTING names it: "nft",
    "iptables" or "ip6tables"; None for any other command."""
    if tuple(argv) == NFT_RUN:
        return "nft"
    return next((t for t, r in RESTORE.items() if tuple(argv) == (r, "--noflush")), None)


def _check_of(record: CommandRecord) -> str | None:
    """Which live listing a deleting undo is fitted to: recorded, or (journals older than
    undo_check) read from its program, so no deletion ever runs unchecked."""
    if record.undo_check is not None or not _deletes(record):
        return record.undo_check
    return _tool_of(record.undo_argv)


def may_have_run(record: CommandRecord) -> bool:
    """A command not marked done whose undo rollback still runs, since ctguard may have
    died after the command ran and before it recorded so: an undo fitted to the live
    ruleset, a module load (nothing when the module is loaded), or the undo of a deleting
    transaction, run only once the ruleset shows the deletion took effect."""
    return (
        record.undo_check is not None
        or (len(record.undo_argv) == 2 and record.undo_argv[0] == "modprobe")
        or _deleting(record) is not None
    )


def _deleting(record: CommandRecord) -> str | None:
    """The listing that tells whether this deleting transaction (``notrack --remove``)
    committed: "nft", "iptables" or "ip6tables"; None for any other command."""
    if record.undo_check is not None or not record.undo_argv:
        return None
    return _tool_of(record.argv)


def tagged_handles(listing: str) -> tuple[str, ...]:
    """ "family table chain handle" of every nft rule tagged ctguard in an ``nft -j`` listing."""
    try:
        rs = parse_nft_json(listing)
    except ParseError:
        return ()
    return tuple(f"{r.family} {r.table} {r.chain} {r.line}" for r in rs.rules() if is_ours(r))


_ADDS_TO = re.compile(rf"(?:add|insert) rule ({_NAME}) ({_NAME}) ({_NAME}) ")


def recovery_script(forward: str, before: Sequence[str], listing: str) -> str:
    """The undo of an nft transaction whose echo was lost: delete the tagged rules now in
    the chains ``forward`` adds to that were not there before (``before``), then
    ctguard's table if the transaction added it (reconcile keeps that only once empty)."""
    chains = {m.groups() for m in map(_ADDS_TO.match, forward.splitlines()) if m}
    known = set(before)
    lines = [
        f"delete rule {handle.rsplit(' ', 1)[0]} handle {handle.rsplit(' ', 1)[1]}"
        for handle in reversed(tagged_handles(listing))
        if handle not in known and tuple(handle.split()[:3]) in chains
    ]
    if f"add table {_OWN}" in forward.splitlines():
        lines.append(f"delete table {_OWN}")
    return "".join(f"{line}\n" for line in lines)


@dataclass
class CommandUndo:
    """The undo of one command: run as recorded, or first fitted to the live ruleset."""

    runner: Runner
    argv: Sequence[str]
    stdin: str
    check: str | None
    scripted: bool  # the command reads a script (nft -f -, iptables-restore)
    step: StepHook
    what: str
    forward: str = ""  # the command's own script (for recovery_script)
    tagged_before: Sequence[str] | None = None  # set for an nft echo not yet recorded
    unsure: str | None = None  # a deletion not known to have run: the listing that tells

    @classmethod
    def of(cls, record: CommandRecord, runner: Runner, step: StepHook) -> CommandUndo:
        lost_echo = record.undo_from == NFT_ECHO and not record.undo_stdin.strip()
        return cls(
            runner, record.undo_argv, record.undo_stdin, _check_of(record), bool(record.stdin),
            step, record.what, record.stdin, record.tagged_before if lost_echo else None,
            None if record.done else _deleting(record),
        )  # fmt: skip

    def run(self) -> bool:
        """False when there is nothing to undo (no command, or nothing left to delete)."""
        if self.unsure is not None and not committed(
            self.unsure, self.forward, self.runner(LISTING[self.unsure], "")
        ):
            return False  # the deletion never took effect: nothing to put back
        script = self.stdin
        if self.check is not None and (script.strip() or self.tagged_before is not None):
            listing = self.runner(LISTING[self.check], "")
            if self.tagged_before is not None and not script.strip():
                script = recovery_script(self.forward, self.tagged_before, listing)
            script = reconcile(self.check, script, listing)
        if not self.argv or (self.scripted and not script.strip()):
            return False
        self.step(f"undo {self.what}")
        self.runner(self.argv, script)
        if self.check in ("iptables", "ip6tables"):  # the only ones with a cleanup
            follow = cleanup(self.check, self.runner(LISTING[self.check], ""))
            if follow is not None:
                self.runner(*follow)
        return True
