"""Whether a file an operator named is a FIFO made with mkfifo.

Opening one for reading waits, without a word, until some process opens it for writing:
with no writer, forever. An anonymous pipe (``<(conntrack -L)``, which names
``/dev/fd/63``) has its writer from the start, so it is not one: it lives on the kernel's
pipe file system, the device every ``os.pipe()`` gets too.
"""

from __future__ import annotations

import functools
import os
import stat


@functools.cache
def _pipefs_device() -> int:
    read_fd, write_fd = os.pipe()
    try:
        return os.fstat(read_fd).st_dev
    finally:
        os.close(read_fd)
        os.close(write_fd)


def names_a_named_pipe(info: os.stat_result) -> bool:
    """``info`` (a stat or an fstat) is of a FIFO on a file system, not an anonymous pipe."""
    return stat.S_ISFIFO(info.st_mode) and info.st_dev != _pipefs_device()
