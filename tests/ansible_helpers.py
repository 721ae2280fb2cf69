"""Running the real Ansible against this machine (issue 20 item 2): the collection built
with ``ansible-galaxy collection build`` and installed into a temporary collections dir, and
``ansible-playbook`` with a local connection, its recap read per host.

The directories Ansible runs from are made with ``tempfile`` and opened to every user (0755),
not under pytest's 0700 ``tmp_path``: one test runs the playbook as uid 65534.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
COLLECTION_SRC = REPO / "deploy" / "ansible" / "ctguard"
BIN = Path(sys.executable).parent
ANSIBLE_TIMEOUT = 240.0
RECAP = re.compile(
    r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M
)


def tool(name: str) -> str:
    """A program of the test extras, beside this Python (``pip install -e '.[test]'``)."""
    path = BIN / name
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
        return found
    return str(path)


@contextmanager
def open_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory every user can read and enter, removed afterwards."""
    top = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        top.chmod(0o755)
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


def ansible_env(collections: Path, home: Path) -> dict[str, str]:
    """Ansible's environment: only what it needs, nothing of the caller's CTGUARD_*."""
    return {
        "PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(home),
        "LC_ALL": "C.UTF-8",
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "ANSIBLE_LOCAL_TEMP": str(home / "local-tmp"),
        "ANSIBLE_REMOTE_TEMP": str(home / "remote-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        # modules go to the local Python through a pipe, not a temporary file: faster
        "ANSIBLE_PIPELINING": "1",
        # cryptography's DSA deprecation warning, printed by every ansible command
        "PYTHONWARNINGS": "ignore",
    }


@dataclass(frozen=True)
class Installed:
    """The collection, built and installed: where, and the environment that finds it."""

    collections: Path
    playbooks: Path
    artifact: Path
    env: Mapping[str, str]


def build_and_install(top: Path) -> Installed:
    home = top / "home"
    home.mkdir()
    env = ansible_env(top / "collections", home)
    build = subprocess.run(
        [tool("ansible-galaxy"), "collection", "build", str(COLLECTION_SRC),
         "--output-path", str(top / "dist")],
        capture_output=True, text=True, timeout=ANSIBLE_TIMEOUT, env=env, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    (artifact,) = (top / "dist").glob("ctguard-ctguard-*.tar.gz")
    install = subprocess.run(
        [tool("ansible-galaxy"), "collection", "install", str(artifact),
         "-p", str(top / "collections")],
        capture_output=True, text=True, timeout=ANSIBLE_TIMEOUT, env=env, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    installed = top / "collections" / "ansible_collections" / "ctguard" / "ctguard"
    for path in [top, *top.rglob("*")]:  # readable by uid 65534 too
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    return Installed(top / "collections", installed / "playbooks", artifact, env)


@dataclass(frozen=True)
class Run:
    returncode: int
    output: str
    recap: dict[str, dict[str, int]]


def playbook(
    installed: Installed,
    name: str,
    inventory: Path,
    *args: str,
    user: list[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Run:
    """``ansible-playbook -i INVENTORY PLAYBOOK ARGS`` of the installed collection."""
    done = subprocess.run(
        [*(user or []), tool("ansible-playbook"), "-i", str(inventory),
         str(installed.playbooks / name), *args],
        capture_output=True, text=True, timeout=ANSIBLE_TIMEOUT,
        env=dict(env or installed.env), check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    recap = {
        m[1]: {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
        for m in RECAP.finditer(done.stdout)
    }
    return Run(done.returncode, output, recap)


def write_inventory(path: Path, groups: dict[str, dict[str, Any]]) -> Path:
    """A YAML inventory: group -> host -> host variables, in this order (the order of
    serial batches); every host runs locally."""
    inventory = {
        group: {"hosts": {host: {"ansible_connection": "local", **hvars}
                          for host, hvars in hosts.items()}}
        for group, hosts in groups.items()
    }  # fmt: skip
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    path.chmod(0o644)
    return path
