"""Writing results to stdout, and what to say when stdout fails.

A closed pipe (``| head``) or a full disk (``> /dev/full``) does not make a command that
did its work an "internal error". The first failed write points stdout at /dev/null (so
nothing more is tried, and the exit flush stays quiet) and is remembered; ``finish`` then
decides the exit code and the one stderr line (docs/exit-codes.md, "When stdout fails"):

- a command that changed something (``changed`` was called: apply, rollback, notrack
  --apply/--remove, disable --apply; snapshot and plan -o, which wrote their file) keeps
  its code, and says on stderr what it did and that the report was lost: the journal says
  applied, so does the exit code;
- otherwise a closed pipe keeps the command's code and says nothing (the reader had
  enough: doctor's code still reflects its findings);
- any other failure (no space, I/O error) is an error (3): the output was the job.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from dataclasses import dataclass

from ctguard.exit_codes import ERROR


@dataclass
class _Stdout:
    lost: OSError | None = None  # the first write to stdout that failed
    changed: str | None = None  # what a command that writes did, e.g. "applied (journal ...)"


_state = _Stdout()


def start() -> None:
    """A command begins (main() may run several in one process, as tests do)."""
    global _state
    _state = _Stdout()


def emit(text: str) -> None:
    if _state.lost is not None:
        return
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as exc:
        _state.lost = exc
        _quiet_stdout()


def note(text: str) -> None:
    """Words for stderr beside the report (a plan shown before its question while stdout
    holds JSON, the rules a change added). Their failure is not the command's: it goes on
    (a question that follows fails on the same stderr and changes nothing)."""
    with contextlib.suppress(OSError):
        sys.stderr.write(text)
        sys.stderr.flush()


def failed_in_click(exc: OSError) -> bool:
    """An OSError from click printing --help or --version to stdout (its ``echo``, writing
    to a closed pipe or a full disk): recorded as a failed emit would be. One that click
    met writing to stderr is not stdout's."""
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "echo" and frame.f_code.co_filename.endswith("click/utils.py"):
            break
        tb = tb.tb_next
    else:
        return False
    target = frame.f_locals.get("file")
    if frame.f_locals.get("err") or target is sys.stderr or target is sys.__stderr__:
        return False
    _state.lost = _state.lost or exc
    _quiet_stdout()
    return True


def closed_pipe_in_click() -> bool:
    """click met a closed pipe outside emit (printing --help) and, as is its way, wrapped
    stdout and stderr to keep the interpreter's exit quiet, then exits 1. Undo the wraps
    and record the pipe, so that the exit follows ``finish`` like any closed pipe."""
    if type(sys.stdout).__name__ != "_PacifyFlushWrapper":
        return False
    sys.stdout = getattr(sys.stdout, "wrapped", sys.__stdout__)
    if type(sys.stderr).__name__ == "_PacifyFlushWrapper":
        sys.stderr = getattr(sys.stderr, "wrapped", sys.__stderr__)
    _state.lost = _state.lost or BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))
    _quiet_stdout()
    return True


def lost() -> OSError | None:
    """The failure that lost stdout, if any (a live view stops on it)."""
    return _state.lost


def changed(what: str) -> None:
    """Record that the command changed something, in words for stderr should the report
    not reach stdout: 'applied (journal entry ID)'."""
    _state.changed = what


def finish(code: int) -> int:
    """The exit code, once the command returned ``code``; the stderr line if stdout failed."""
    failure = _state.lost
    if failure is None:
        return code
    reason = failure.strerror or str(failure)
    if _state.changed is not None:
        _say(f"ctguard: {_state.changed}; could not write the report: {reason}")
        return code
    if failure.errno == errno.EPIPE:
        return code
    _say(f"ctguard: error: could not write the output: {reason}")
    return ERROR


def _say(line: str) -> None:
    with contextlib.suppress(OSError):  # stderr gone too: the exit code is all that is left
        print(line, file=sys.stderr, flush=True)


def _quiet_stdout() -> None:
    with contextlib.suppress(OSError, ValueError):  # no descriptor (a StringIO): nothing to do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
