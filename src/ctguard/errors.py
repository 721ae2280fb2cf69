"""Errors that reach the user as one line: ``ctguard: error: <message>``."""


class CtguardError(Exception):
    """An error whose message is fit to show an operator as it is."""


class ParseError(CtguardError):
    """Input text did not have the shape its parser expects."""


class HostAccessError(CtguardError):
    """A root, snapshot or namespace could not be opened."""


class UnsafeArchiveError(HostAccessError):
    """A snapshot archive holds a member that would land outside its directory."""


class RefusedError(CtguardError):
    """A safety refusal (an unsafe size, a plan for another host or an outdated state):
    exit 2, like a CRITICAL, so scripts can tell it from an error."""


class UsageError(CtguardError):
    """Options that cannot go together, found below the CLI: exit 3, like a click usage error."""


class OptionError(UsageError):
    """One option's value cannot be used (a ``--root`` that is this host's ``/``), found
    below the CLI, which shows it as it shows any bad option value."""

    def __init__(self, option: str, reason: str) -> None:
        super().__init__(f"{option}: {reason}")
        self.option = option
        self.reason = reason
