# Copyright: ctguard contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: ``ctguard apply`` on the managed host; in check mode, the plan only."""

DOCUMENTATION = r"""
---
module: ctguard_apply
short_description: Apply ctguard's plan, journalled, so that ctguard_rollback can undo it
description:
  - Runs C(ctguard apply --yes --format json) on the managed host (or into a directory tree
    there, or a network namespace). It backs up, writes each file atomically, sets the runtime
    values, verifies, and journals it all under O(state_dir).
  - C(changed) only when it changed something; a second run of the same plan is not
    changed. Returns the journal entry's id, which M(ctguard.ctguard.ctguard_rollback) takes.
  - In check mode it only plans (C(ctguard plan), or reads the O(plan) file and checks it
    with C(ctguard apply --dry-run)), changes nothing, and is C(changed) when the plan has
    changes. With C(--diff) each file's bytes and each runtime value, before and after.
  - A refusal (exit 2, a size the memory cannot hold, a plan for another host, a host that
    changed since the plan) and an error (exit 3, not root, a write that failed and was
    undone) fail the task with ctguard's one-line message.
version_added: "0.1.0"
author: ctguard contributors
extends_documentation_fragment:
  - ctguard.ctguard.ctguard_options
  - ctguard.ctguard.ctguard_options.sizing
options:
  root:
    description: Apply into this directory tree on the host instead of the host itself.
    type: path
  netns:
    description: Apply the values of this named network namespace (timeouts; runtime only).
    type: str
  plan:
    description:
      - Apply exactly this saved plan, a file on the host (from C(ctguard plan -o FILE) or
        M(ctguard.ctguard.ctguard_plan)'s O(ctguard.ctguard.ctguard_plan#module:output)).
      - The sizing options are then not used.
    type: path
  state_dir:
    description: Journal and backups (ctguard's default is C(/var/lib/ctguard)).
    type: path
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
# in a play with serial: [1, "25%"] and max_fail_percentage: 0 (a canary first, stop at
# the first failure), as the collection's playbooks/fleet.yml does
- name: Apply ctguard's plan
  ctguard.ctguard.ctguard_apply:
  register: applied

- name: Timeouts of a network namespace
  ctguard.ctguard.ctguard_apply:
    netns: web1
    established_timeout: 3600
"""

RETURN = r"""
status:
  description: >-
    applied; in-place (every change was already made); nothing-planned; check (check mode).
  returned: success
  type: str
  sample: applied
entry_id:
  description: The journal entry, for M(ctguard.ctguard.ctguard_rollback); null unless applied.
  returned: success
  type: str
  sample: 20261207T092122Z-9fbe
undo:
  description: The command that puts it back; null unless applied.
  returned: success
  type: str
paths:
  description: The host and runtime paths written (in check mode, those the plan writes).
  returned: success
  type: list
  elements: str
result:
  description: What C(ctguard apply --format json) printed (schema C(ctguard.apply/1)).
  returned: success, not in check mode
  type: dict
plan:
  description: The plan (schema C(ctguard.plan/1)).
  returned: in check mode, and with --diff
  type: dict
"""

import json
from typing import Any, Dict, List

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.ctguard.ctguard.plugins.module_utils.ctguard_cli import (
    SIZING_SPEC,
    TARGET_SPEC,
    argument_spec,
    plan_diff,
    plan_has_changes,
    run_json,
    sizing_args,
    target_args,
    without_rc,
)


def _saved_plan(module: AnsibleModule) -> Dict[str, Any]:
    try:
        with open(module.params["plan"], "rb") as handle:
            plan = json.loads(handle.read().decode("utf-8"))
    except (OSError, ValueError) as exc:
        module.fail_json(msg=f"cannot read the plan {module.params['plan']}: {exc}")
    return dict(plan)


def _plan(module: AnsibleModule, how: List[str]) -> Dict[str, Any]:
    """What the apply would do: the saved plan (checked with --dry-run), else a new one."""
    if module.params["plan"]:
        run_json(module, ["apply", "--dry-run", *how])
        return _saved_plan(module)
    return dict(without_rc(run_json(module, ["plan", *how])))


def _paths(plan: Dict[str, Any]) -> List[str]:
    files = [f["path"] for f in plan["files"] if f["before_sha256"] != f["after_sha256"]]
    return files + [s["path"] for s in plan["sysctls"] if s["before"] != s["after"]]


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(
            TARGET_SPEC, SIZING_SPEC, {"plan": {"type": "path"}, "state_dir": {"type": "path"}}
        ),
        supports_check_mode=True,
    )
    params = module.params
    how = target_args(params)
    how += ["--plan", params["plan"]] if params["plan"] else sizing_args(params)
    if module.check_mode:
        plan = _plan(module, how)
        module.exit_json(
            changed=plan_has_changes(plan),
            diff=plan_diff(plan),
            status="check",
            entry_id=None,
            undo=None,
            paths=_paths(plan),
            plan=plan,
        )
    shown = {}  # type: Dict[str, Any]
    if module._diff:
        plan = _plan(module, how)
        shown = {"diff": plan_diff(plan), "plan": plan}
    state = ["--state-dir", params["state_dir"]] if params["state_dir"] else []
    result = without_rc(run_json(module, ["apply", "--yes", *how, *state]))
    applied = result["status"] == "applied"
    if not applied:
        shown.pop("diff", None)
    module.exit_json(
        changed=applied,
        status=result["status"],
        entry_id=result["entry_id"],
        undo=result["undo"],
        paths=result["changed"],
        result=result,
        **shown,
    )


if __name__ == "__main__":
    main()
