"""The Ansible collection, built and installed once for the Ansible tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ansible_helpers import Installed, build_and_install, open_dir


@pytest.fixture(scope="session")
def ansible_collection() -> Iterator[Installed]:
    with open_dir("ctguard-ansible-") as top:
        yield build_and_install(top)
