"""Fixture trees for the ``read_*`` functions: a HostRoot over ``tmp_path``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ctguard.host.root import HostRoot
from fakes import FakeCommands


@pytest.fixture
def host(tmp_path: Path) -> HostRoot:
    return HostRoot(tmp_path)


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write ``text`` at host path ``path`` inside the fixture root."""

    def _write(path: str, text: str) -> Path:
        target = tmp_path / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return target

    return _write


@pytest.fixture
def fake_commands() -> type[FakeCommands]:
    return FakeCommands
