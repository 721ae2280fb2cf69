"""The collection's modules one by one (tests/deploy/ansible/modules.yml) with the real
``ansible-playbook``, on a copy of a RHEL 7 fixture tree: a plan saved to a file and applied
in check mode (its diff, no byte changed) and for real (its journal id), rolled back by id
(every byte back) and again (not changed); and ctguard's errors as one-line task failures."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ansible_helpers import ANSIBLE_TIMEOUT, Installed, open_dir, tool
from helpers import ROOTS
from remediation.plan_sh_helpers import picture

PLAYBOOK = Path(__file__).parent / "ansible" / "modules.yml"
RHEL7 = ROOTS / "doctor" / "ct304-rhel76-greps-sysctl-d-no-link"


def test_each_module_on_a_tree(ansible_collection: Installed) -> None:
    ctguard_bin = shutil.which("ctguard")
    assert ctguard_bin is not None
    with open_dir("ctguard-modules-") as top:
        tree, out = top / "tree", top / "out"
        shutil.copytree(RHEL7, tree, symlinks=True)
        out.mkdir()
        original = picture(tree)
        done = subprocess.run(
            [tool("ansible-playbook"), "-i", "localhost,", "-c", "local", str(PLAYBOOK),
             "-e", f"ansible_python_interpreter={Path(ctguard_bin).parent / 'python'}",
             "-e", f"ctguard={ctguard_bin}", "-e", f"tree={tree}", "-e", f"out={out}",
             "-e", f"state={top / 'state'}"],
            capture_output=True, text=True, timeout=ANSIBLE_TIMEOUT,
            env=dict(ansible_collection.env), check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
        result: dict[str, Any] = {
            path.name.removesuffix(".result.json"): json.loads(path.read_text())
            for path in out.glob("*.result.json")
        }
        saved = json.loads((out / "plan.json").read_text())
        assert not (out / "check-plan.json").exists()  # check mode wrote nothing
        assert picture(tree) == original  # rolled back, every byte

    plan, check, real = result["plan"], result["apply_check"], result["apply_real"]
    assert plan["changed"] and plan["has_changes"]
    assert plan["plan"]["checksum"] == saved["checksum"]
    # check mode: the saved plan's files as diffs, nothing applied
    assert check["changed"] and check["status"] == "check" and check["entry_id"] is None
    afters = {d["after_header"].split(" in ")[0]: d["after"] for d in check["diff"]}
    for item in saved["files"]:
        assert afters[item["path"]] == base64.b64decode(item["after_base64"]).decode()
    # the real run: applied, journalled, and rolled back by its id, once
    assert real["changed"] and real["status"] == "applied"
    assert real["entry_id"] and real["undo"].startswith(f"ctguard rollback {real['entry_id']}")
    assert set(real["paths"]) >= {item["path"] for item in saved["files"]}
    # a second run of the same saved plan: nothing to do, not changed
    assert not result["apply_again"]["changed"], result["apply_again"]
    assert result["apply_again"]["entry_id"] is None
    assert result["plan_check"]["has_changes"]
    rolled, again = result["rollback_real"], result["rollback_again"]
    assert rolled["changed"] and rolled["entry_id"] == real["entry_id"]
    assert set(rolled["restored"]) >= {item["path"] for item in saved["files"]}
    assert not again["changed"] and again["status"] == "already-rolled-back"
    # ctguard's own one line, not a traceback
    for name, needle in [
        ("doctor_missing", "does not exist"),
        ("rollback_unknown", "no journal entry"),
        ("no_program", "no-such-ctguard is not a program on this host"),
    ]:
        failed = result[name]
        assert failed["failed"] and not failed["changed"], failed
        assert failed["msg"].startswith("ctguard: error: ") and needle in failed["msg"], failed
        assert "\n" not in failed["msg"] and "Traceback" not in json.dumps(failed)
