"""The Ansible collection (issue 20 item 2) as Ansible sees it: it builds with
``ansible-galaxy collection build``, carries ctguard's version, documents every module in a
form ``ansible-doc`` reads, and ``ansible-lint --profile production`` passes on it."""

from __future__ import annotations

import ast
import json
import subprocess
import tarfile

import pytest
import yaml

import ctguard
from ansible_helpers import ANSIBLE_TIMEOUT, COLLECTION_SRC, Installed, tool

MODULES = ("ctguard_doctor", "ctguard_plan", "ctguard_apply", "ctguard_rollback")


def test_the_collection_is_ctguards_version() -> None:
    galaxy = yaml.safe_load((COLLECTION_SRC / "galaxy.yml").read_text())
    assert (galaxy["namespace"], galaxy["name"]) == ("ctguard", "ctguard")
    assert galaxy["version"] == ctguard.__version__


def test_the_built_collection_holds_the_modules_role_and_playbooks(
    ansible_collection: Installed,
) -> None:
    with tarfile.open(ansible_collection.artifact) as archive:
        names = set(archive.getnames())
        manifest = json.load(archive.extractfile("MANIFEST.json"))  # type: ignore[arg-type]
    assert manifest["collection_info"]["version"] == ctguard.__version__
    for module in MODULES:
        assert f"plugins/modules/{module}.py" in names
    assert {
        "plugins/module_utils/ctguard_cli.py",
        "meta/runtime.yml",
        "roles/install/tasks/main.yml",
        "playbooks/fleet.yml",
        "playbooks/rollback.yml",
        "playbooks/inventory/example.yml",
    } <= names
    # the repository's lint settings and caches stay out of it
    assert not {n for n in names if n.split("/")[0] in {"ruff.toml", ".ruff_cache", ".ansible"}}


def test_ansible_doc_reads_every_module(ansible_collection: Installed) -> None:
    done = subprocess.run(
        [tool("ansible-doc"), "--json", *(f"ctguard.ctguard.{m}" for m in MODULES)],
        capture_output=True, text=True, timeout=ANSIBLE_TIMEOUT,
        env=dict(ansible_collection.env), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    docs = json.loads(done.stdout)
    for module in MODULES:
        doc = docs[f"ctguard.ctguard.{module}"]
        assert doc["doc"]["options"]["executable"]["type"] == "path"
        assert doc["examples"].strip() and doc["return"], module
    # the options mirror the CLI's: plan and apply take the same sizing options
    plan = set(docs["ctguard.ctguard.ctguard_plan"]["doc"]["options"])
    apply = set(docs["ctguard.ctguard.ctguard_apply"]["doc"]["options"])
    assert {"root", "netns", "target_max", "memory_budget", "established_timeout",
            "timeouts", "force", "no_table"} <= plan & apply  # fmt: skip
    assert {"plan", "state_dir"} <= apply


def test_ansible_lint_production_profile_passes(ansible_collection: Installed) -> None:
    done = subprocess.run(
        [tool("ansible-lint"), "--offline", "--profile", "production", "--nocolor", "."],
        cwd=COLLECTION_SRC, capture_output=True, text=True, timeout=ANSIBLE_TIMEOUT,
        env=dict(ansible_collection.env), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Profile 'production' was required, and it passed" in done.stdout + done.stderr


def test_module_code_parses_as_python_3_6() -> None:
    """The modules run on the managed host's Python, which may be 3.6: no newer syntax."""
    sources = sorted((COLLECTION_SRC / "plugins").rglob("*.py"))
    assert len(sources) == len(MODULES) + 2  # and module_utils, doc_fragments
    for path in sources:
        ast.parse(path.read_text(), str(path), feature_version=(3, 6))
    # and ast.parse does catch what 3.6 lacks
    with pytest.raises(SyntaxError):
        ast.parse("if (n := 1): pass\n", feature_version=(3, 6))
