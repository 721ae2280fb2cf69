"""``/ctguard_manifest.json``: what a snapshot captured, when, and from which namespace."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ctguard.errors import ParseError
from ctguard.host.commands import MANIFEST
from ctguard.host.root import HostRoot

__all__ = ["INIT_NETNS_DIR", "MANIFEST", "ManifestInfo", "parse_manifest", "read_manifest"]

# A snapshot taken inside a namespace also keeps the initial namespace's conntrack
# sysctls here (CT307 compares them; a new namespace starts from compiled-in timeouts).
INIT_NETNS_DIR = "/ctguard_init_netns"


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

    return ManifestInfo(
        text_field("created_utc"),
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
