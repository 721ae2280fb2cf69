"""How a write that failed is reported: one line saying what, why, and what was put back."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

from ctguard.errors import CtguardError


class ApplyError(CtguardError):
    """A write failed: what, why, and what was undone (one line)."""


class StalePlanError(CtguardError):
    """The host no longer matches what the plan was made from."""


class Failed(Exception):
    """A step failed; the message already says which and why."""


def reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        why = exc.strerror or str(exc) or type(exc).__name__
        return f"{exc.filename}: {why}" if exc.filename and exc.errno in _NAMED else why
    if isinstance(exc, CtguardError | Failed):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# errnos whose file name says more than the step's own: a link or a non-directory met
# on the way to a file (the tree changed under ctguard)
_NAMED = {errno.ELOOP, errno.ENOTDIR}


def describe(exc: OSError) -> str:
    """An OSError as "path: why" (or "why" when it names no file)."""
    why = exc.strerror or str(exc) or type(exc).__name__
    return f"{exc.filename}: {why}" if exc.filename else why


def one_line(text: str) -> str:
    return " ".join(text.split())


@contextmanager
def failing_as(what: str) -> Iterator[None]:
    """Turn any failure inside into ``Failed("<what>: <why>")``."""
    try:
        yield
    except Failed:
        raise
    except Exception as exc:
        raise Failed(f"{what}: {reason(exc)}") from exc


@contextmanager
def or_apply_error(what: str, consequence: str) -> Iterator[None]:
    """For reads made before anything changed: an OSError becomes one ApplyError line."""
    try:
        yield
    except OSError as exc:
        raise ApplyError(one_line(f"{what}: {reason(exc)}; {consequence}")) from None
