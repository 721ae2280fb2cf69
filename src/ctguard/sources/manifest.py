"""``/ctguard_manifest.json``: what a snapshot captured, when, and from which namespace."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from ctguard.errors import ParseError
from ctguard.host.commands import MANIFEST
from ctguard.host.root import HostRoot

__all__ = [
    "INIT_NETNS_DIR",
    "MANIFEST",
    "UTC_TIME",
    "ManifestInfo",
    "parse_manifest",
    "read_manifest",
    "utc_text",
]

# A snapshot taken inside a namespace also keeps the initial namespace's conntrack
# sysctls here (CT307 compares them; a new namespace starts from compiled-in timeouts).
INIT_NETNS_DIR = "/ctguard_init_netns"

# The one form ctguard's documents write a time in (a manifest's created_utc, doctor's): UTC
# to the second, which sorts as the time does (report keeps a host's newest reading by it)
UTC_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def utc_text(when: datetime) -> str:
    """``when`` in that form.

    >>> utc_text(datetime(2024, 3, 5, 9, 30, 3, tzinfo=UTC))
    '2024-03-05T09:30:03Z'
    """
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ManifestInfo:
    created_utc: str | None
    ctguard_version: str | None
    hostname: str | None
    netns: str | None
    netns_inode: int | None = None  # the namespace's inode: kernel log lines name it
    netns_born: float | None = None  # when it was made, seconds since boot (dmesg's clock)


def parse_manifest(text: str) -> ManifestInfo:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ParseError(f"{MANIFEST}: not JSON ({exc})") from None
    except RecursionError:
        raise ParseError(f"{MANIFEST}: nested too deeply to be a manifest") from None
    if not isinstance(data, dict):
        raise ParseError(f"{MANIFEST}: not a JSON object")

    def text_field(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) else None

    created = text_field("created_utc")
    return ManifestInfo(
        created if created is not None and UTC_TIME.fullmatch(created) else None,
        text_field("ctguard_version"),
        text_field("hostname"),
        text_field("netns"),
        inode if isinstance(inode := data.get("netns_inode"), int) else None,
        float(born) if isinstance(born := data.get("netns_born"), int | float) else None,
    )


def read_manifest(host: HostRoot) -> ManifestInfo | None:
    """The manifest of a snapshot root; None for a live host or a bare directory."""
    if host.is_live or not host.is_file(MANIFEST):
        return None
    return parse_manifest(host.read_text(MANIFEST))
