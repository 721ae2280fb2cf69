"""Which machine: hostname and machine id, through the host root (a snapshot tree here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctguard.host.root import HostRoot
from ctguard.sources.identity import HOSTNAME_FILE, MACHINE_ID_FILES, Identity, read_identity

SYSTEMD_ID = "4b6fd9c1e63a4a58a2de5d3bc9e0a4f1"
DBUS_ID = "9a8b7c6d5e4f40312a1b2c3d4e5f6071"


def tree(tmp_path: Path, files: dict[str, str]) -> HostRoot:
    for path, text in files.items():
        (tmp_path / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path.lstrip("/")).write_text(text)
    return HostRoot(tmp_path)


@pytest.mark.parametrize(
    ("etc", "dbus", "want"),
    [
        (SYSTEMD_ID, DBUS_ID, SYSTEMD_ID),  # systemd's first
        (None, DBUS_ID, DBUS_ID),  # CentOS 6: only D-Bus's
        ("uninitialized\n", DBUS_ID, DBUS_ID),  # an image before its first boot
        ("", None, None),
        (None, None, None),
        (SYSTEMD_ID.upper(), None, SYSTEMD_ID),
    ],
)
def test_machine_id(tmp_path: Path, etc: str | None, dbus: str | None, want: str | None) -> None:
    files = {HOSTNAME_FILE: "web1\n"}
    for path, text in zip(MACHINE_ID_FILES, (etc, dbus), strict=True):
        if text is not None:
            files[path] = text + "\n"
    assert read_identity(tree(tmp_path, files)) == Identity("web1", want)


def test_no_hostname_file(tmp_path: Path) -> None:
    host = tree(tmp_path, {MACHINE_ID_FILES[0]: SYSTEMD_ID})
    assert read_identity(host) == Identity(None, SYSTEMD_ID)
