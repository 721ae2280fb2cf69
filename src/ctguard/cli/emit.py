"""Writing results to stdout, where a closed pipe (``| head``) is not an error."""

from __future__ import annotations

import os
import sys


def emit(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader has gone; point stdout at /dev/null so the exit flush stays quiet
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
