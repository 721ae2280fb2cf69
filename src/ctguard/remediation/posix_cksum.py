"""POSIX ``cksum``: the checksum every Unix has, for hosts without ``sha256sum``.

The CRC is POSIX's (XCU ``cksum``): polynomial 0x04C11DB7, most significant bit first,
over the data and then its length in as few bytes as it takes (low byte first), inverted.
``cksum < FILE`` prints it and the length::

    $ printf 'a\\n' | cksum
    2418082923 2
"""

from __future__ import annotations

_POLY = 0x04C11DB7


def _table() -> tuple[int, ...]:
    rows = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ _POLY) if crc & 0x80000000 else crc << 1
        rows.append(crc & 0xFFFFFFFF)
    return tuple(rows)


_TABLE = _table()


def posix_cksum(data: bytes) -> str:
    """What ``cksum < FILE`` prints for ``data``, as ``"CRC LENGTH"``.

    >>> posix_cksum(b"a\\n")
    '2418082923 2'
    >>> posix_cksum(b"")
    '4294967295 0'
    """
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _TABLE[(crc >> 24) ^ byte]
    length = len(data)
    while length:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _TABLE[(crc >> 24) ^ (length & 0xFF)]
        length >>= 8
    return f"{~crc & 0xFFFFFFFF} {len(data)}"
