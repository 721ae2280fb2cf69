"""The journal of host changes: what ``apply`` did, so ``rollback`` can undo it.

Each ``apply`` that changes anything gets a directory ``<state_dir>/journal/<id>/`` holding
``journal.json`` (schema ``ctguard.journal/1``) and the backups of the files it replaced,
``files/<n>``. This module is pure apart from reading: it defines the records, turns them
into JSON and back, and lists the entries of a state directory. Only
``remediation/apply.py`` writes a journal.

A journal.json looks like this (abridged)::

    {"schema": "ctguard.journal/1", "id": "20261125T143357Z-3f2a",
     "created": "2026-11-25T14:33:57.102934+00:00", "ctguard_version": "0.1.0",
     "state": "applied", "meta": {"command": "apply", "netns": null},
     "files": [{"path": "/etc/sysctl.d/90-ctguard-conntrack.conf",
                "real_path": "/etc/sysctl.d/90-ctguard-conntrack.conf", "existed": false,
                "mode": 420, "uid": null, "gid": null, "before_sha256": null,
                "after_sha256": "9f86...", "backup": null, "kind": "ours",
                "done": true, "undone": false}],
     "sysctls": [{"name": "nf_conntrack_max", "path": "/proc/sys/net/netfilter/nf_conntrack_max",
                  "before": 65536, "after": 262144, "reads_back": 262144, "scope": "global",
                  "done": true, "undone": false}],
     "created_dirs": [], "error": null, "rolled_back": null, "undo_failed": []}
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ctguard.errors import CtguardError
from ctguard.remediation.state_dir import StateDir
from ctguard.schemas import JOURNAL as SCHEMA

APPLYING = "applying"  # written before the first change; a crash leaves it so
APPLIED = "applied"
UNDONE = "undone"  # apply failed and put everything back
UNDO_FAILED = "undo-failed"  # apply failed and could not put everything back
ROLLED_BACK = "rolled-back"
DAMAGED = "damaged"  # only in listings: journal.json is absent or unreadable

STATES = (APPLYING, APPLIED, UNDONE, UNDO_FAILED, ROLLED_BACK)

# 20261125T143357Z-3f2a: the UTC second the apply started, and 4 random hex digits.
ENTRY_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{4}")
# Journal files are ours and small; a huge one is damaged, not something to load.
MAX_JOURNAL_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class FileRecord:
    """One file apply writes; ``backup`` names its copy under ``<id>/files/``."""

    path: str  # the host path the plan named
    real_path: str  # the host path written, once links were followed inside the root
    existed: bool
    mode: int  # permission bits kept (existing file) or given (new file)
    uid: int | None  # owner kept; None for a new file
    gid: int | None
    before_sha256: str | None  # None: the file did not exist
    after_sha256: str
    backup: str | None  # None for a new file
    kind: str
    done: bool = False  # written on the host
    undone: bool = False  # put back by the undo of a failed apply, or by rollback


@dataclass(frozen=True)
class SysctlRecord:
    """One runtime value apply sets; ``before`` is what it read just before."""

    name: str
    path: str
    before: int
    after: int
    reads_back: int
    scope: str
    done: bool = False
    undone: bool = False


@dataclass(frozen=True)
class CommandRecord:
    """One command apply runs (a firewall transaction, a module unload) and its undo.

    ``undo_stdin`` is filled in once the command has run when the undo depends on its
    output (nft handles); ``output`` keeps the first lines of what the command printed.
    """

    what: str
    argv: tuple[str, ...]
    stdin: str
    undo_argv: tuple[str, ...]
    undo_stdin: str
    output: str = ""
    undo_check: str | None = None  # see RunCommand.undo_check
    done: bool = False
    undone: bool = False
    undo_from: str | None = None  # see RunCommand.undo_from
    # nft handles ("family table chain handle") of the rules tagged ctguard just before the
    # command ran: if ctguard dies before recording what nft echoed, the rules it added are
    # the tagged ones not in this list (undo.recovery_script)
    tagged_before: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Baseline:
    """The conntrack counters (sums over CPUs) read just before an apply, and what
    identifies the table they count since (the boot, the module load, the namespace;
    None when unknown): a new table starts them again."""

    counters: Mapping[str, int] = field(default_factory=dict)
    table_id: str | None = None


@dataclass(frozen=True)
class JournalEntry:
    """One apply, as recorded in ``<state_dir>/journal/<id>/journal.json``."""

    id: str
    created: str  # ISO 8601, UTC
    ctguard_version: str
    state: str  # one of STATES, or DAMAGED in a listing
    meta: Mapping[str, str | None] = field(default_factory=dict)
    files: tuple[FileRecord, ...] = ()
    sysctls: tuple[SysctlRecord, ...] = ()
    created_dirs: tuple[str, ...] = ()  # host paths of directories apply created, in order
    commands: tuple[CommandRecord, ...] = ()  # run before the files are written
    error: str | None = None  # why apply failed, or why the entry is damaged
    rolled_back: str | None = None  # ISO 8601 UTC time of the rollback
    undo_failed: tuple[str, ...] = ()  # "what (why)" for each step that could not be undone
    # the conntrack counters (sums over CPUs) just before apply changed anything, and the
    # table they count since: doctor tells a count from before the apply from a live one
    counters: Mapping[str, int] = field(default_factory=dict)
    table_id: str | None = None


# -- JSON ------------------------------------------------------------------------------
def entry_to_json(entry: JournalEntry) -> str:
    data: dict[str, Any] = {"schema": SCHEMA, **asdict(entry)}
    data["meta"] = dict(entry.meta)
    data["counters"] = dict(entry.counters)
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def entry_from_json(text: str) -> JournalEntry:
    """The entry in ``text``; CtguardError saying what is wrong when it is not one."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CtguardError(f"not JSON ({exc})") from None
    except RecursionError:
        raise CtguardError("nested too deeply to be a journal") from None
    if not isinstance(data, dict):
        raise CtguardError("not a JSON object")
    if data.get("schema") != SCHEMA:
        raise CtguardError(f"schema is {data.get('schema')!r}, expected {SCHEMA!r}")
    state = _str(data, "state")
    if state not in STATES:
        raise CtguardError(f"unknown state {state!r}")
    return JournalEntry(
        id=_str(data, "id"),
        created=_str(data, "created"),
        ctguard_version=_str(data, "ctguard_version"),
        state=state,
        meta=_meta(data.get("meta")),
        files=tuple(_file_record(item) for item in _list(data, "files")),
        sysctls=tuple(_sysctl_record(item) for item in _list(data, "sysctls")),
        created_dirs=tuple(_str_item(item, "created_dirs") for item in _list(data, "created_dirs")),
        commands=tuple(_command_record(item) for item in _optional_list(data, "commands")),
        error=_opt_str(data, "error"),
        rolled_back=_opt_str(data, "rolled_back"),
        undo_failed=tuple(_str_item(item, "undo_failed") for item in _list(data, "undo_failed")),
        counters=_counters(data.get("counters", {})),  # absent from older journals
        table_id=_opt_str(data, "table_id"),
    )


def _file_record(item: object) -> FileRecord:
    data = _object(item, "files")
    return FileRecord(
        path=_str(data, "path"),
        real_path=_str(data, "real_path"),
        existed=_bool(data, "existed"),
        mode=_int(data, "mode"),
        uid=_opt_int(data, "uid"),
        gid=_opt_int(data, "gid"),
        before_sha256=_opt_str(data, "before_sha256"),
        after_sha256=_str(data, "after_sha256"),
        backup=_opt_str(data, "backup"),
        kind=_str(data, "kind"),
        done=_bool(data, "done"),
        undone=_bool(data, "undone"),
    )


def _sysctl_record(item: object) -> SysctlRecord:
    data = _object(item, "sysctls")
    return SysctlRecord(
        name=_str(data, "name"),
        path=_str(data, "path"),
        before=_int(data, "before"),
        after=_int(data, "after"),
        reads_back=_int(data, "reads_back"),
        scope=_str(data, "scope"),
        done=_bool(data, "done"),
        undone=_bool(data, "undone"),
    )


def _command_record(item: object) -> CommandRecord:
    data = _object(item, "commands")
    return CommandRecord(
        what=_str(data, "what"),
        argv=tuple(_str_item(arg, "argv") for arg in _list(data, "argv")),
        stdin=_str(data, "stdin"),
        undo_argv=tuple(_str_item(arg, "undo_argv") for arg in _list(data, "undo_argv")),
        undo_stdin=_str(data, "undo_stdin"),
        output=_str(data, "output"),
        undo_check=_opt_str(data, "undo_check"),
        done=_bool(data, "done"),
        undone=_bool(data, "undone"),
        undo_from=_opt_str(data, "undo_from"),
        tagged_before=(
            None
            if data.get("tagged_before") is None
            else tuple(_str_item(h, "tagged_before") for h in _list(data, "tagged_before"))
        ),
    )


def _meta(value: object) -> dict[str, str | None]:
    meta = _object(value, "meta")
    for key, item in meta.items():
        if item is not None and not isinstance(item, str):
            raise CtguardError(f"meta.{key} is not a string")
    return dict(meta)


def _counters(value: object) -> dict[str, int]:
    counters = _object(value, "counters")
    for key in counters:
        if _int(counters, key) < 0:
            raise CtguardError(f"counters.{key} is negative")
    return dict(counters)


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CtguardError(f"{what}: expected an object")
    return value


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise CtguardError(f"{key}: expected a list")
    return value


def _optional_list(data: dict[str, Any], key: str) -> list[Any]:
    """A list added in a later version: absent from older journals."""
    return _list(data, key) if key in data else []


def _str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise CtguardError(f"{key}: expected a string")
    return value


def _str_item(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise CtguardError(f"{key}: expected strings")
    return value


def _opt_str(data: dict[str, Any], key: str) -> str | None:
    return None if data.get(key) is None else _str(data, key)


def _int(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    # bool is an int in Python; a journal saying "mode": true is damaged, not mode 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise CtguardError(f"{key}: expected an integer")
    return value


def _opt_int(data: dict[str, Any], key: str) -> int | None:
    return None if data.get(key) is None else _int(data, key)


def _bool(data: dict[str, Any], key: str) -> bool:
    value = data.get(key)
    if not isinstance(value, bool):
        raise CtguardError(f"{key}: expected true or false")
    return value


# -- reading a state directory ---------------------------------------------------------
def list_entries(state: StateDir | str | os.PathLike[str]) -> list[JournalEntry]:
    """Every entry, newest first; one that cannot be read is listed with state "damaged"."""
    state = StateDir.of(state)
    try:
        names = state.tree.listdir(state.journal_dir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise CtguardError(
            f"cannot list {state.shown(state.journal_dir())}: {exc.strerror or exc}"
        ) from None
    entries = [_load_or_damaged(state, name) for name in names if ENTRY_ID.fullmatch(name)]
    # The id holds only the second; "created" orders two applies made within one.
    entries.sort(key=lambda e: (e.id[:16], e.created, e.id), reverse=True)
    return entries


def read_entry(state: StateDir | str | os.PathLike[str], entry_id: str) -> JournalEntry:
    """The entry ``entry_id``; CtguardError when there is no such entry or it is damaged."""
    state = StateDir.of(state)
    st = state.tree.lstat(state.entry_dir(entry_id)) if ENTRY_ID.fullmatch(entry_id) else None
    if st is None or not stat.S_ISDIR(st.st_mode):
        raise CtguardError(
            f"no journal entry {entry_id!r} in {state.shown(state.journal_dir())} "
            "('ctguard rollback --list' shows the ids)"
        )
    entry = _load_or_damaged(state, entry_id)
    if entry.state == DAMAGED:
        raise CtguardError(f"journal entry {entry_id} is damaged: {entry.error}")
    return entry


def _load_or_damaged(state: StateDir, entry_id: str) -> JournalEntry:
    path = state.journal_file(entry_id)
    shown = state.shown(path)
    try:
        state.check_own(state.entry_dir(entry_id))
        raw = state.read(path, MAX_JOURNAL_BYTES)
        entry = entry_from_json(raw.decode("utf-8"))
        if entry.id != entry_id:
            raise CtguardError(f"it names itself {entry.id!r}")
        return entry
    except OSError as exc:
        reason = f"{shown}: {exc.strerror or exc}"
    except UnicodeDecodeError:
        reason = f"{shown}: not UTF-8"
    except CtguardError as exc:
        reason = f"{shown}: {exc}"
    return JournalEntry(id=entry_id, created="", ctguard_version="", state=DAMAGED, error=reason)
