"""The unpacked bytes of a (gzip, bzip2, xz or plain) tar archive, read forward within limits.

tarfile reads a pax header or a GNU long name whole, in one read of the size its header
claims, so a 1.5 MB archive can make it allocate gigabytes before it says "damaged". Given
this stream instead of the file, tarfile asks for every byte through ``read`` and ``seek``,
and each limit is checked before the bytes are unpacked:

- one read may not ask for more than ``max_read`` bytes (tarfile reads member data in
  16 KiB pieces and headers in 512-byte blocks; only a pax header or a long name is read
  in one piece, as large as it claims);
- ``read_budget`` bounds all the bytes read (not skipped) in a pass: while members are
  listed, what tarfile reads is header data, whatever it claims to be;
- the unpacked bytes may not pass ``max_unpacked`` (a compression ratio limit, counted
  as the stream goes, so a bomb is refused after a bounded amount of work).

Seeking goes forward only (data is skipped by unpacking and dropping it in bounded pieces):
tarfile lists and extracts members in order, so a backward seek means a damaged archive.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import lzma
from typing import BinaryIO, cast

from ctguard.errors import UnsafeArchiveError

_SKIP_CHUNK = 1 << 20


def unpacking(raw: BinaryIO) -> tuple[BinaryIO, bool]:
    """``raw`` (a regular file at offset 0) unpacked as it is read, and whether it was
    compressed (tarfile's "r:*" tries the same three)."""
    head = raw.read(6)
    raw.seek(0)
    if head.startswith(b"\x1f\x8b"):
        return cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb")), True
    if head.startswith(b"BZh"):
        return cast(BinaryIO, bz2.BZ2File(raw, "rb")), True
    if head.startswith(b"\xfd7zXZ\x00"):
        return cast(BinaryIO, lzma.LZMAFile(raw, "rb")), True
    return raw, False


class Unpacked:
    """A forward-only file object over ``source`` for tarfile, refusing at the first limit.

    ``refusal`` builds the error (naming the archive) raised when a limit is reached."""

    def __init__(
        self,
        source: BinaryIO,
        name: str,
        *,
        max_read: int,
        max_unpacked: int,
        read_budget: int | None = None,
    ) -> None:
        self._source = source
        self.name = name
        self._max_read = max_read
        self._max_unpacked = max_unpacked
        self._budget = read_budget
        self._position = 0
        self._read = 0

    def _refuse(self, why: str) -> UnsafeArchiveError:
        return UnsafeArchiveError(f"snapshot {self.name}: refusing the whole archive: {why}")

    def _advance(self, count: int) -> None:
        self._position += count
        if self._position > self._max_unpacked:
            raise self._refuse(
                f"it unpacks to more than {self._max_unpacked} bytes "
                "(more than a snapshot compresses to)"
            )

    def tell(self) -> int:
        return self._position

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self._max_read:
            claim = "an unbounded size" if size < 0 else f"{size} bytes"
            raise self._refuse(
                f"an extended tar header (pax header or GNU long name) at byte "
                f"{self._position} claims {claim}; at most {self._max_read} are read"
            )
        if self._budget is not None and self._read + size > self._budget:
            raise self._refuse(f"its tar headers take more than {self._budget} bytes")
        data = self._source.read(size)
        self._read += len(data)
        self._advance(len(data))
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0 or offset < self._position:
            raise OSError(errno.ESPIPE, "a tar header points backwards")
        while self._position < offset:
            chunk = self._source.read(min(_SKIP_CHUNK, offset - self._position))
            if not chunk:
                break  # past the end: tarfile's next read finds nothing and says so
            self._advance(len(chunk))
        return self._position
