"""The changes the steps of ``host_changes`` add up to, in the order they are decided."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace

from ctguard.remediation.changes import Note, SetSysctl, WriteFile


@dataclass
class ChangeSet:
    """Files, runtime values, notes and conflicts so far, and the finding IDs they fix."""

    files: list[WriteFile] = field(default_factory=list)
    sysctls: list[SetSysctl] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    addressed: set[str] = field(default_factory=set)
    # IDs a later step found the plan cannot fix after all: never claimed, whatever wrote
    withdrawn: set[str] = field(default_factory=set)

    def withdraw(self, rule_id: str) -> None:
        """The plan does not fix ``rule_id`` (a note says what remains): claim it nowhere."""
        self.withdrawn.add(rule_id)
        self.addressed.discard(rule_id)
        self.files = [
            replace(c, addresses=tuple(i for i in c.addresses if i != rule_id)) for c in self.files
        ]

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
        ids = set(ids) - self.withdrawn
        self.addressed |= ids
        if before == after:
            return
        self.files = [c for c in self.files if c.path != path]
        self.files.append(WriteFile(path, before, after, mode, why, kind, tuple(sorted(ids))))
