"""Kernel release (``/proc/sys/kernel/osrelease``): conntrack defaults changed in 5.15."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ctguard.errors import ParseError
from ctguard.host.commands import Commands
from ctguard.host.root import HostRoot
from ctguard.missing import Missing

OSRELEASE = "/proc/sys/kernel/osrelease"
_RELEASE = re.compile(r"^(\d{1,6})\.(\d{1,6})(?:\.(\d{1,6}))?")


@dataclass(frozen=True)
class KernelVersion:
    release: str
    major: int
    minor: int
    patch: int

    def at_least(self, major: int, minor: int) -> bool:
        return (self.major, self.minor) >= (major, minor)


def parse_kernel_release(text: str) -> KernelVersion:
    """Major, minor and patch of a release string.

    >>> parse_kernel_release("2.6.32-754.35.1.el6.x86_64").at_least(5, 15)
    False
    """
    release = text.strip()
    m = _RELEASE.match(release)
    if not m:
        raise ParseError(f"kernel release {release[:40]!r} is not of the form X.Y[.Z]")
    return KernelVersion(release, int(m[1]), int(m[2]), int(m[3] or 0))


def read_kernel(host: HostRoot, commands: Commands) -> KernelVersion | Missing:
    text = host.try_read_text(OSRELEASE)
    if isinstance(text, Missing):
        text = commands.output("uname-r")
    return text if isinstance(text, Missing) else parse_kernel_release(text)
