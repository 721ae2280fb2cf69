"""Replace IP addresses with stable keyed tokens (``--redact``).

The same address maps to the same token within one snapshot (HMAC-SHA256 under a
random per-snapshot key, which is never stored), so the table can still be grouped by
address. Tokens are addresses themselves (IPv4 from 240.0.0.0/4, IPv6 from
2001:db8::/32), so redacted dumps still parse. Loopback and unspecified addresses say
nothing about the host and are kept.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets

_IPV4 = re.compile(rb"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(
    rb"(?<![0-9A-Fa-f:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Fa-f:.])"
)


class Redactor:
    def __init__(self, key: bytes | None = None) -> None:
        self.key = key if key is not None else secrets.token_bytes(32)
        self._tokens: dict[bytes, bytes] = {}
        self._used: set[bytes] = set()

    def _digest(self, text: bytes, attempt: int) -> bytes:
        return hmac.new(self.key, text + bytes([attempt]), hashlib.sha256).digest()

    def _token(self, raw: bytes) -> bytes:
        known = self._tokens.get(raw)
        if known is not None:
            return known
        try:
            addr = ipaddress.ip_address(raw.decode("ascii"))
        except ValueError:
            return raw  # not an address (a MAC, a time stamp): leave it
        if addr.is_loopback or addr.is_unspecified:
            return raw
        # one token per address, however it is spelled (procfs prints IPv6 uncompressed)
        canon = addr.compressed.encode()
        known = self._tokens.get(canon)
        if known is not None:
            self._tokens[raw] = known
            return known
        attempt = 0
        while True:
            digest = self._digest(canon, attempt)
            if addr.version == 4:
                value = 0xF0000000 | (int.from_bytes(digest[:4], "big") & 0x0FFFFFFF)
                token = str(ipaddress.IPv4Address(value)).encode()
            else:
                low = int.from_bytes(digest[:12], "big")
                token = str(ipaddress.IPv6Address((0x20010DB8 << 96) | low)).encode()
            if token not in self._used:  # different addresses never share a token
                break
            attempt += 1
        self._used.add(token)
        self._tokens[raw] = self._tokens[canon] = token
        return token

    def redact(self, data: bytes) -> bytes:
        data = _IPV6.sub(lambda m: self._token(m.group(0)), data)
        return _IPV4.sub(lambda m: self._token(m.group(0)), data)
