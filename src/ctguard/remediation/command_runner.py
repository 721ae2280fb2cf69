"""Running the commands of a plan (firewall transactions, module unloads) for ``apply``.

A ``CommandRunner`` is handed to ``apply_changes`` by the CLI, like ``RuntimeFiles``: the
live one runs programs on this machine, the namespace one inside ``ip netns`` NAME. Both take
argument lists (never a shell string), feed ``stdin``, stop a program after ``timeout``
seconds, and turn a failure into one ``CtguardError`` line with the program's first error line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from typing import Protocol

from ctguard.errors import CtguardError

COMMAND_TIMEOUT = 30.0


class CommandRunner(Protocol):
    def run(self, argv: Sequence[str], stdin: str) -> str:
        """The command's standard output; CtguardError (one line) when it fails."""
        ...


def run_command(argv: Sequence[str], stdin: str, timeout: float = COMMAND_TIMEOUT) -> str:
    """Run ``argv`` here; its stdout, or CtguardError saying why it failed."""
    if not argv:
        raise CtguardError("empty command")
    prog = shutil.which(argv[0])
    shown = " ".join(argv)
    if prog is None:
        raise CtguardError(f"{argv[0]} is not installed (needed for: {shown})")
    try:
        done = subprocess.run(
            [prog, *argv[1:]],
            input=stdin.encode(),
            capture_output=True,
            timeout=timeout,
            env={**os.environ, "LC_ALL": "C"},
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CtguardError(f"{shown} did not finish within {timeout:g} s") from None
    except OSError as exc:
        raise CtguardError(f"{shown} could not run: {exc.strerror or exc}") from None
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        why = lines[0].strip() if lines else "no message"
        raise CtguardError(f"{shown} exited {done.returncode}: {why}")
    return done.stdout.decode("utf-8", "replace")


class LiveRunner:
    """Runs commands on this machine (the initial network namespace)."""

    def __init__(self, timeout: float = COMMAND_TIMEOUT) -> None:
        self.timeout = timeout

    def run(self, argv: Sequence[str], stdin: str) -> str:
        return run_command(argv, stdin, self.timeout)


class NetnsRunner:
    """Runs commands inside the named network namespace (as ``ip netns exec`` would)."""

    def __init__(self, netns: str, timeout: float = COMMAND_TIMEOUT) -> None:
        self.netns = netns
        self.timeout = timeout

    def run(self, argv: Sequence[str], stdin: str) -> str:
        from ctguard.host.netns import run_in_netns

        args, data, timeout = tuple(argv), stdin, self.timeout
        return run_in_netns(self.netns, lambda: run_command(args, data, timeout), timeout + 5)
