# Copyright: ctguard contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: ``ctguard plan`` on the managed host, the plan as an Ansible diff."""

DOCUMENTATION = r"""
---
module: ctguard_plan
short_description: Size the conntrack table and show the changes that make it stick
description:
  - Runs C(ctguard plan --format json) on the managed host (or for a snapshot or tree
    there, or a network namespace) and returns the plan.
  - Never writes on the host, except the plan file O(output) names (not in check mode).
    The result is C(changed) when the plan has changes, that is when C(ctguard_apply)
    would change the host; with C(--diff), each file's bytes and each runtime value,
    before and after.
  - A plan ctguard refuses (a full table the memory cannot hold, exit 2) or an error
    (exit 3) fails the task with ctguard's one-line message.
version_added: "0.1.0"
author: ctguard contributors
extends_documentation_fragment:
  - ctguard.ctguard.ctguard_options
  - ctguard.ctguard.ctguard_options.sizing
options:
  root:
    description: Plan for this snapshot (directory or archive) or directory tree on the host.
    type: path
  netns:
    description: Plan the values of this named network namespace (timeouts; runtime only).
    type: str
  output:
    description: Also save the plan on the host, for C(ctguard_apply plan=FILE).
    type: path
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: What would change on each host
  ctguard.ctguard.ctguard_plan:
    memory_budget: 5
  register: plan

- name: A plan for a network namespace's timeouts, saved for review
  ctguard.ctguard.ctguard_plan:
    netns: web1
    established_timeout: 3600
    output: /var/tmp/ctguard-plan.json
"""

RETURN = r"""
has_changes:
  description: Whether the plan changes anything (the same as C(changed)).
  returned: success
  type: bool
plan:
  description: The plan (schema C(ctguard.plan/1)) with every file's bytes before and after.
  returned: success
  type: dict
files:
  description: The host paths the plan writes.
  returned: success
  type: list
  elements: str
  sample: [/etc/sysctl.d/90-ctguard-conntrack.conf]
values:
  description: The runtime values the plan sets, name to value.
  returned: success
  type: dict
  sample: {nf_conntrack_max: 262144}
addresses:
  description: The findings the plan fixes.
  returned: success
  type: list
  elements: str
"""

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


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(TARGET_SPEC, SIZING_SPEC, {"output": {"type": "path"}}),
        supports_check_mode=True,
    )
    argv = ["plan", *target_args(module.params), *sizing_args(module.params)]
    if module.params["output"] and not module.check_mode:  # check mode writes nothing
        argv += ["--output", module.params["output"]]
    plan = without_rc(run_json(module, argv))
    changes = plan_has_changes(plan)
    module.exit_json(
        changed=changes,
        has_changes=changes,
        diff=plan_diff(plan),
        plan=plan,
        files=[f["path"] for f in plan["files"] if f["before_sha256"] != f["after_sha256"]],
        values={s["name"]: s["after"] for s in plan["sysctls"] if s["before"] != s["after"]},
        addresses=plan["addresses"],
    )


if __name__ == "__main__":
    main()
