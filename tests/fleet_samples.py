"""A fleet for ``ctguard report`` tests: real doctor documents of the repository's fixture
snapshots, copied under other host identities and times, laid out as Ansible's ``fetch``
lays them (DEST/<inventory_hostname>/<path>).

Every expectation a test derives comes from these documents (which IDs each one found,
at which severity), never from a report's own output.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ctguard.cli import main
from helpers import signals_kept

REPO = Path(__file__).parent.parent
RHEL6 = REPO / "examples" / "rhel6-table-full"
DOCTOR_ROOTS = REPO / "tests" / "roots" / "doctor"
# a spread of severities and fleet questions: drops, RAM, persistence, and a clean host
BASES = (
    RHEL6,  # CT102 critical, CT201 critical, CT302/CT304 warning
    DOCTOR_ROOTS / "ct201-max-10m",
    DOCTOR_ROOTS / "ct304-load-list-misses-netfilter",
    DOCTOR_ROOTS / "ct301-later-file-wins",
    DOCTOR_ROOTS / "ct102-old-log-only",  # CT102 warning: not "dropping now"
    DOCTOR_ROOTS / "ct103-early-drop",
    REPO / "tests" / "roots" / "not-loaded",
)
RANK = {"info": 1, "warning": 2, "critical": 3}


def run(args: list[str]) -> tuple[int, str, str]:
    """``ctguard ARGS`` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with signals_kept(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


@cache
def _doctor_text(root: Path) -> str:
    code, out, err = run(["doctor", "--root", str(root), "--format", "json"])
    assert code in (0, 1, 2), err
    return out


def doctor_document(root: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(_doctor_text(root))
    return document


def machine_id(n: int) -> str:
    return hashlib.md5(f"host {n}".encode(), usedforsecurity=False).hexdigest()


def found(document: dict[str, Any]) -> dict[str, str]:
    """ID -> severity of what a document found."""
    return {f["id"]: f["severity"] for f in document["findings"] if f["status"] == "found"}


@dataclass
class Member:
    path: Path
    document: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        host = self.document["host"]
        return host["hostname"], host["machine_id"]

    @property
    def found(self) -> dict[str, str]:
        return found(self.document)


def as_host(
    base: dict[str, Any], hostname: str | None, mid: str | None, created: str | None
) -> dict[str, Any]:
    document = copy.deepcopy(base)
    document["host"] = {"hostname": hostname, "machine_id": mid}
    document["created_utc"] = created
    return document


def write_fleet(dest: Path, count: int, day: int = 1) -> list[Member]:
    """``count`` hosts under ``dest``, host i a copy of BASES[i % len(BASES)]."""
    members = []
    for i in range(count):
        base = doctor_document(BASES[i % len(BASES)])
        name = f"node{i:03d}.example.net"
        created = f"2026-11-{day:02d}T{i % 24:02d}:00:00Z"
        document = as_host(base, name, machine_id(i), created)
        path = dest / name / "var" / "tmp" / "ctguard-doctor.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2))
        members.append(Member(path, document))
    return members
