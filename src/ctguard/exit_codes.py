"""Exit codes, defined once for every command (the monitoring-plugin convention).

0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. A safety refusal (an unsafe size, a plan for
another host, a notrack that would break reachability) exits 2 like a CRITICAL, so a
script can tell it from an error (3: bad usage, unreadable input, not root, a failed
write that was undone). docs/exit-codes.md has the table per command.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


REFUSED = ExitCode.CRITICAL  # a safety refusal
ERROR = ExitCode.UNKNOWN  # bad usage, unreadable input, a failed (and undone) write
