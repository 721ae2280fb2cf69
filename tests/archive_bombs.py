"""Archive bombs, built small and fast: the headers claim, the data is not there.

Shared by tests/host/test_archive_bombs.py and bench/archive_bombs.py (which builds them at
the sizes of issue 17: a 1.5 MB archive claiming 1.5 GB, 2 M empty members in 12 MB).
"""

from __future__ import annotations

import gzip
import random
import tarfile
import zlib
from pathlib import Path

BLOCK = 512


def header(name: str, kind: bytes, size: int) -> bytes:
    """One raw ustar header block claiming ``size`` bytes of ``kind``."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def claiming_header(path: Path, kind: bytes, claim: int, filler: int) -> Path:
    """A gzip archive whose first header (a pax 'x'/'g' header or a GNU 'L'/'K' long
    name) claims ``claim`` bytes, followed by only ``filler`` random bytes."""
    name = "././@LongLink" if kind in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK) else (
        "././@PaxHeader"
    )  # fmt: skip
    data = random.Random(0).randbytes(filler)  # incompressible: the archive is this large
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(header(name, kind, claim))
        out.write(data)
    return path


def many_members(path: Path, count: int) -> Path:
    """A gzip archive of ``count`` empty regular files (all named alike: what counts is how
    many headers there are), written block by block so the builder stays fast."""
    one = header("proc/empty", tarfile.REGTYPE, 0)
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)  # 31: a gzip wrapper
    batch = one * 4096
    with path.open("wb") as out:
        left = count
        while left > 0:
            out.write(packer.compress(batch if left >= 4096 else one * left))
            left -= 4096
        out.write(packer.compress(bytes(2 * BLOCK)))
        out.write(packer.flush())
    return path


def zeros_member(path: Path, name: str, size: int) -> Path:
    """A gzip archive of one member of ``size`` zero bytes (gzip packs zeros ~1000:1)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    with path.open("wb") as out:
        out.write(packer.compress(header(name, tarfile.REGTYPE, size)))
        left = size
        while left > 0:
            out.write(packer.compress(zeros[: min(left, len(zeros))]))
            left -= len(zeros)
        out.write(packer.compress(bytes(-size % BLOCK + 2 * BLOCK)))
        out.write(packer.flush())
    return path


def deep_name(path: Path, depth: int, count: int = 1) -> Path:
    """A gzip archive of ``count`` empty files each named ``"a/" * depth`` plus a
    distinct last part: a GNU long name, tiny packed (issue 17 review: the member check
    grew with the square of the name's length)."""
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT, compresslevel=9) as tar:
        for i in range(count):
            tar.addfile(tarfile.TarInfo("a/" * depth + f"f{i}"))
    return path
