"""``ctguard exporter --textfile DIR``: the metrics written for node_exporter's textfile
collector, which reads every ``*.prom`` file in DIR on each of its scrapes."""

from __future__ import annotations

import os
import tempfile

from ctguard.errors import CtguardError

TEXTFILE_NAME = "ctguard.prom"


def write_textfile(directory: str, text: bytes) -> str:
    """Write ``DIR/ctguard.prom`` atomically: a temporary file in DIR (not ``*.prom``, so
    the collector skips it), synced, then renamed over the old one, so a reader sees the
    old metrics or the new, never half of them. Returns the path written."""
    final = os.path.join(directory, TEXTFILE_NAME)
    try:
        fd, temp = tempfile.mkstemp(dir=directory, prefix=".ctguard.", suffix=".tmp")
    except OSError as exc:
        raise CtguardError(f"--textfile {directory}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o644)  # mkstemp's 0600: node_exporter may run as another user
        os.replace(temp, final)
    except OSError as exc:
        os.unlink(temp)
        raise CtguardError(f"--textfile {directory}: {exc.strerror or exc}") from None
    return final
