"""The changes the steps of ``host_changes`` add up to, in the order they are decided."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from ctguard.remediation.changes import Note, SetSysctl, WriteFile


@dataclass
class ChangeSet:
    """Files, runtime values, notes and conflicts so far, and the finding IDs they fix."""

    files: list[WriteFile] = field(default_factory=list)
    sysctls: list[SetSysctl] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    addressed: set[str] = field(default_factory=set)

    def write(
        self,
        path: str,
        before: bytes | None,
        after: bytes,
        mode: int,
        why: str,
        kind: str,
        ids: Collection[str],
    ) -> None:
        """Give ``path`` the content ``after``; a file that has it already fixes ``ids`` too."""
        self.addressed |= set(ids)
        if before == after:
            return
        self.files = [c for c in self.files if c.path != path]
        self.files.append(WriteFile(path, before, after, mode, why, kind, tuple(sorted(ids))))
