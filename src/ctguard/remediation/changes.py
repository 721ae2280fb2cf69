"""The changes a plan is made of: frozen values, so a plan can be shown, saved and replayed.

Only ``remediation/apply.py`` turns them into writes. Paths are host paths (``/etc/...``),
resolved inside the target root when applied, exactly as ``HostRoot`` resolves them for
reading.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ctguard.sources.modules import HASHSIZE_PARAM
from ctguard.sources.sysctl_runtime import NETFILTER_DIR

OURS = "ours"  # a file ctguard creates and owns (a drop-in)
EDIT = "edit"  # someone else's file, edited in place with a backup

GLOBAL = "global"  # only writable from the initial namespace (max, buckets)
PER_NETNS = "netns"  # each namespace has its own (timeouts)

# One kernel variable, nf_conntrack_htable_size, behind both files: a tree keeps both, and
# a change of one is made to the other too.
HASH_SIZE_FILES = (f"{NETFILTER_DIR}/nf_conntrack_buckets", HASHSIZE_PARAM)


def sha256(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class WriteFile:
    """Give ``path`` the content ``after`` (``before`` is None when it does not exist yet)."""

    path: str
    before: bytes | None
    after: bytes
    mode: int  # for a new file; an existing one keeps its mode and owner
    why: str
    kind: str = OURS  # OURS or EDIT
    addresses: tuple[str, ...] = ()  # the finding IDs this change fixes

    @property
    def before_sha256(self) -> str | None:
        return sha256(self.before)

    @property
    def after_sha256(self) -> str:
        return hashlib.sha256(self.after).hexdigest()


@dataclass(frozen=True)
class SetSysctl:
    """Write ``after`` to a runtime file (``/proc/sys/...`` or a module parameter)."""

    name: str  # nf_conntrack_max, or "hashsize" for the module parameter
    path: str  # /proc/sys/net/netfilter/nf_conntrack_max
    before: int | None
    after: int
    scope: str  # GLOBAL or PER_NETNS
    why: str
    expect: int | None = None  # what reads back when the kernel rounds (buckets); None = after
    addresses: tuple[str, ...] = ()

    @property
    def reads_back(self) -> int:
        return self.after if self.expect is None else self.expect


@dataclass(frozen=True)
class Note:
    """A step ctguard does not take itself: say exactly what the operator should do."""

    text: str
    addresses: tuple[str, ...] = ()


NFT_ECHO = "nft-echo"  # the undo is made from what `nft --echo --handle` printed


@dataclass(frozen=True)
class RunCommand:
    """Run ``argv`` with ``stdin``; ``undo_argv`` with ``undo_stdin`` puts the host back.

    Firewall transactions (``nft -f -``, ``iptables-restore --noflush``) and module unloads.
    When ``undo_from`` is ``NFT_ECHO`` the undo script is only known once the command has
    run: it deletes, by handle, what ``nft --echo --handle`` says was added.
    """

    what: str
    argv: tuple[str, ...]
    stdin: str
    undo_argv: tuple[str, ...]
    undo_stdin: str = ""
    undo_from: str | None = None  # None: undo_stdin as given; NFT_ECHO: derived from output
    # "nft" | "iptables" | "ip6tables": fit the undo to the live ruleset before it runs
    # (remediation/undo_check.py); None: run it as recorded (modprobe)
    undo_check: str | None = None
    addresses: tuple[str, ...] = ()
