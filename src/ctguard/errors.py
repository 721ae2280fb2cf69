"""Errors that reach the user as one line: ``ctguard: error: <message>``."""


class CtguardError(Exception):
    """An error whose message is fit to show an operator as it is."""


class ParseError(CtguardError):
    """Input text did not have the shape its parser expects."""


class HostAccessError(CtguardError):
    """A root, snapshot or namespace could not be opened."""


class UnsafeArchiveError(HostAccessError):
    """A snapshot archive holds a member that would land outside its directory."""
