"""The question a command that writes asks on the terminal first (``--yes`` answers it)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

from ctguard.cli.emit import lost
from ctguard.errors import CtguardError


def confirmer(yes: bool) -> Callable[[str], bool]:
    """The ``confirm`` a use case calls before writing: yes with ``--yes``, else the
    operator's answer on the terminal; without a terminal, an error that says --yes."""

    def confirm(question: str) -> bool:
        if yes:
            return True
        failure = lost()
        if failure is not None:  # the plan went nowhere: do not ask to confirm it unseen
            raise CtguardError(
                f"{question.rstrip('?')}: the plan could not be shown"
                f" ({failure.strerror or failure}); nothing was changed"
            )
        if not sys.stdin.isatty():
            raise CtguardError(f"{question.rstrip('?')}: no terminal to confirm on; add --yes")
        try:
            return click.confirm(question, default=False, err=True)
        except OSError as exc:  # stderr gone: the question was never seen
            raise CtguardError(
                f"{question.rstrip('?')}: could not ask ({exc.strerror or exc});"
                " nothing was changed"
            ) from None

    return confirm
