"""One function per command: ``(Target, options) -> Report``, no click and no printing.

The CLI parses options, calls the use case, picks a renderer and exits with the report's
code; tests call these functions directly. A command that writes also takes ``confirm``
(asked before the first write) and ``show`` (given the plan before anything is written, so
that the operator reads it before answering); ``site`` is the write side of a target.
"""
