# Copyright: ctguard contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: ``ctguard rollback`` on the managed host."""

DOCUMENTATION = r"""
---
module: ctguard_rollback
short_description: Put back what ctguard_apply changed, byte for byte
description:
  - Runs C(ctguard rollback --yes --format json) on the managed host. Files get their old
    bytes back (files the apply created are removed), runtime values their old values.
  - C(changed) when it restored something; rolling back twice is harmless and not changed.
  - In check mode it reads the journal (C(ctguard rollback --list)) and is C(changed) when
    the entry is still applied; it changes nothing.
  - An error (exit 3, not root, unknown id, a file edited since the apply without
    O(force)) fails the task with ctguard's one-line message.
version_added: "0.1.0"
author: ctguard contributors
extends_documentation_fragment:
  - ctguard.ctguard.ctguard_options
options:
  id:
    description: The journal entry (M(ctguard.ctguard.ctguard_apply)'s C(entry_id)), or C(latest).
    type: str
    default: latest
  root:
    description: The directory tree C(ctguard_apply root=DIR) wrote to.
    type: path
  state_dir:
    description: The journal (ctguard's default is C(/var/lib/ctguard)).
    type: path
  force:
    description: Restore even files or values changed since the apply.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Undo the latest apply
  ctguard.ctguard.ctguard_rollback:

- name: Undo one apply by its id
  ctguard.ctguard.ctguard_rollback:
    id: "{{ applied.entry_id }}"
"""

RETURN = r"""
status:
  description: >-
    rolled-back, already-rolled-back, nothing-to-roll-back, no-journal; check in check mode.
  returned: success
  type: str
entry_id:
  description: The journal entry rolled back (or that would be, in check mode).
  returned: success
  type: str
restored:
  description: Paths given their old content or value back, and files removed.
  returned: success, not in check mode
  type: list
  elements: str
result:
  description: What C(ctguard rollback --format json) printed (schema C(ctguard.rollback/1)).
  returned: success, not in check mode
  type: dict
"""

from typing import Any, Dict, List

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.ctguard.ctguard.plugins.module_utils.ctguard_cli import (
    argument_spec,
    run_json,
    without_rc,
)

# journal states a rollback acts on (ctguard.journal-list/1); "applying": an apply killed
# mid-way, which the rollback finishes
UNDOABLE = ("applied", "applying")


def _would_roll_back(module: AnsibleModule, where: List[str]) -> Dict[str, Any]:
    listed = run_json(module, ["rollback", "--list", *where])
    entries = listed["entries"]
    wanted = module.params["id"]
    if wanted == "latest":
        pending = [e for e in entries if e["state"] in UNDOABLE]
        entry = pending[0] if pending else None
    else:
        named = [e for e in entries if e["id"] == wanted]
        if not named:
            module.fail_json(msg=f"ctguard: error: no journal entry {wanted}")
        entry = named[0]
    changed = entry is not None and entry["state"] in UNDOABLE
    return {"changed": changed, "entry_id": entry["id"] if entry else None}


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(
            {
                "id": {"type": "str", "default": "latest"},
                "root": {"type": "path"},
                "state_dir": {"type": "path"},
                "force": {"type": "bool", "default": False},
            }
        ),
        supports_check_mode=True,
    )
    params = module.params
    where = []  # type: List[str]
    if params["root"]:
        where += ["--root", params["root"]]
    if params["state_dir"]:
        where += ["--state-dir", params["state_dir"]]
    if module.check_mode:
        module.exit_json(status="check", **_would_roll_back(module, where))
    argv = ["rollback", "--yes", *where]
    if params["id"] != "latest":
        argv.insert(1, params["id"])
    if params["force"]:
        argv.append("--force")
    result = without_rc(run_json(module, argv))
    restored = result["files"] + result["removed"] + result["sysctls"] + result["commands"]
    module.exit_json(
        changed=bool(restored),
        status=result["status"],
        entry_id=result["entry_id"],
        restored=restored,
        result=result,
    )


if __name__ == "__main__":
    main()
