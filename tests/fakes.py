"""A fake Commands: program outputs by logical name, recording what was asked."""

from __future__ import annotations

from typing import BinaryIO

from ctguard.host.caps import Cap, Excerpt, cap_of, excerpt
from ctguard.missing import Missing


class FakeCommands:
    """Program outputs by logical name; a name not given is Missing."""

    def __init__(self, outputs: dict[str, str] | None = None) -> None:
        self.outputs = outputs or {}
        self.asked: list[str] = []

    def output(self, name: str) -> str | Missing:
        self.asked.append(name)
        if name in self.outputs:
            return self.outputs[name]
        return Missing(f"{name} not captured")

    def excerpt(self, name: str, cap: Cap | None = None) -> Excerpt | Missing:
        """The output cut to ``cap`` (the program's own by default), as a host's would be."""
        out = self.output(name)
        if isinstance(out, Missing):
            return out
        data = out.encode()
        return excerpt(data, len(data), cap or cap_of(name), f"{name} output")

    def output_to(self, name: str, dest: BinaryIO) -> Missing | None:
        out = self.output(name)
        if isinstance(out, Missing):
            return out
        dest.write(out.encode())
        return None
