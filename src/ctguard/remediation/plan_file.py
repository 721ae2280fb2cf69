"""A plan as a JSON document (schema ``ctguard.plan/1``): ``plan --json``, ``plan -o FILE``
and ``apply --plan FILE``.

The document carries every file's old and new bytes, so ``apply --plan`` executes exactly
what was reviewed. A checksum over the document catches an edit; the host identity
(hostname, machine-id, root, namespace) catches a plan carried to another host; each
file's old hash and each runtime value's old value catch a host that changed since (apply
refuses those: StalePlanError).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ctguard import __version__
from ctguard.errors import CtguardError
from ctguard.missing import Missing
from ctguard.model.sizing import Sizing, SizingTarget
from ctguard.remediation.changes import SetSysctl, WriteFile
from ctguard.remediation.plan import Plan
from ctguard.schemas import PLAN as SCHEMA


class PlanFileError(CtguardError):
    """A saved plan that cannot be used: damaged, edited, or made for another host."""


@dataclass(frozen=True)
class HostIdentity:
    hostname: str | None
    machine_id: str | None
    root: str  # "/" or the directory applied to
    netns: str | None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "hostname": self.hostname,
            "machine_id": self.machine_id,
            "root": self.root,
            "netns": self.netns,
        }


def _target(t: SizingTarget) -> dict[str, Any]:
    return {"name": t.name, "current": t.current, "value": t.value, "reason": t.reason,
            "bytes": t.bytes, "pct_of_memtotal": round(t.pct, 3)}  # fmt: skip


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _file(change: WriteFile) -> dict[str, Any]:
    return {
        "path": change.path,
        "kind": change.kind,
        "mode": f"{change.mode:04o}",
        "why": change.why,
        "addresses": list(change.addresses),
        "before_sha256": change.before_sha256,
        "after_sha256": change.after_sha256,
        "before_base64": _b64(change.before),
        "after_base64": _b64(change.after),
    }


def _sysctl(change: SetSysctl) -> dict[str, Any]:
    return {
        "name": change.name, "path": change.path, "scope": change.scope,
        "before": change.before, "after": change.after, "reads_back": change.reads_back,
        "why": change.why, "addresses": list(change.addresses),
    }  # fmt: skip


def _sizing(sizing: Sizing | Missing) -> dict[str, Any] | None:
    if isinstance(sizing, Missing):
        return None
    return {
        "max": _target(sizing.max),
        "buckets": _target(sizing.buckets),
        "table_bytes": sizing.table_bytes,
        "table_pct_of_memtotal": round(sizing.table_pct, 3),
        "budget_bytes": sizing.budget_bytes,
        "notes": list(sizing.notes),
    }


def checksum(body: Mapping[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def plan_document(
    plan: Plan, identity: HostIdentity, options: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``options``: what the plan was made with, so ``apply --plan`` can make it again and
    refuse when the host has moved on (the plan would no longer be the same)."""
    body: dict[str, Any] = {
        "schema": SCHEMA,
        "ctguard": __version__,
        "host": identity.as_dict(),
        "options": dict(options or {}),
        "refusal": plan.refusal,
        "forced": plan.forced,
        "sizing": _sizing(plan.sizing),
        "sizing_skipped": plan.sizing.reason if isinstance(plan.sizing, Missing) else None,
        "timeouts": [_target(t) for t in plan.timeouts],
        "files": [_file(c) for c in plan.files],
        "sysctls": [_sysctl(c) for c in plan.sysctls],
        "notes": [{"text": n.text, "addresses": list(n.addresses)} for n in plan.notes],
        "conflicts": list(plan.conflicts),
        "addresses": list(plan.addresses),
        "treats": [{"id": t.id, "why": t.why} for t in plan.treats],
    }
    return {**body, "checksum": checksum(body)}


def dump_plan(document: Mapping[str, Any]) -> str:
    """The document as ``plan --format json`` prints it and ``plan -o FILE`` saves it."""
    return json.dumps(document, indent=2) + "\n"


@dataclass(frozen=True)
class LoadedPlan:
    files: tuple[WriteFile, ...]
    sysctls: tuple[SetSysctl, ...]
    checksum: str
    refusal: str | None
    forced: bool
    options: Mapping[str, Any]

    def signature(self) -> tuple[tuple[str, str], ...]:
        return signature(self.files, self.sysctls)


def signature(
    files: tuple[WriteFile, ...], sysctls: tuple[SetSysctl, ...]
) -> tuple[tuple[str, str], ...]:
    """What a plan changes, for comparing two plans: paths and new contents or values."""
    return tuple((c.path, c.after_sha256) for c in files) + tuple(
        (c.path, str(c.after)) for c in sysctls
    )


def _bytes(value: object, what: str) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PlanFileError(f"{what}: expected base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise PlanFileError(f"{what}: not valid base64") from None


def _int(value: object, what: str, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise PlanFileError(f"{what}: expected an integer")
    return value


def load_plan(text: str, identity: HostIdentity, source: str) -> LoadedPlan:
    """Parse and check a saved plan; PlanFileError (one line) when it cannot be used."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise PlanFileError(f"{source}: not a ctguard plan (invalid JSON: {exc})") from None
    except RecursionError:
        raise PlanFileError(f"{source}: not a ctguard plan (JSON nested too deeply)") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise PlanFileError(f"{source}: not a ctguard plan (schema is not {SCHEMA})")
    body = {k: v for k, v in doc.items() if k != "checksum"}
    if doc.get("checksum") != checksum(body):
        raise PlanFileError(f"{source}: checksum mismatch: the plan was edited or damaged")
    host = doc.get("host")
    now = identity.as_dict()
    if not isinstance(host, dict):
        raise PlanFileError(f"{source}: no host identity")
    for key in ("hostname", "machine_id", "root", "netns"):
        if host.get(key) != now[key]:
            raise PlanFileError(
                f"{source}: made for another host ({key} {host.get(key)!r}, here {now[key]!r});"
                " make a new plan here"
            )
    try:
        files = tuple(_load_file(item, source) for item in doc["files"])
        sysctls = tuple(_load_sysctl(item, source) for item in doc["sysctls"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanFileError(f"{source}: damaged plan ({type(exc).__name__}: {exc})") from None
    options = doc.get("options")
    if not isinstance(options, dict):
        raise PlanFileError(f"{source}: damaged plan (no options)")
    return LoadedPlan(files, sysctls, str(doc["checksum"]), doc.get("refusal"),
                      bool(doc.get("forced")), options)  # fmt: skip


def _load_file(item: Mapping[str, Any], source: str) -> WriteFile:
    path = str(item["path"])
    after = _bytes(item["after_base64"], f"{source}: {path}")
    if after is None or hashlib.sha256(after).hexdigest() != item["after_sha256"]:
        raise PlanFileError(f"{source}: {path}: new content does not match its hash")
    before = _bytes(item["before_base64"], f"{source}: {path}")
    return WriteFile(path, before, after, int(str(item["mode"]), 8), str(item["why"]),
                     str(item["kind"]), tuple(item["addresses"]))  # fmt: skip


def _load_sysctl(item: Mapping[str, Any], source: str) -> SetSysctl:
    what = f"{source}: {item['name']}"
    after = _int(item["after"], what)
    reads_back = _int(item["reads_back"], what)
    assert after is not None and reads_back is not None
    expect = None if reads_back == after else reads_back
    before = _int(item["before"], what, True)
    return SetSysctl(str(item["name"]), str(item["path"]), before, after, str(item["scope"]),
                     str(item["why"]), expect, tuple(item["addresses"]))  # fmt: skip
