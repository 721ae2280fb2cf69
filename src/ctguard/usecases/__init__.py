"""One function per command: ``(Target, options) -> Report``, no click and no printing.

The CLI parses options, calls the use case, picks a renderer and exits with the report's
code; tests call these functions directly.
"""
