# Copyright: ctguard contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: ``ctguard doctor`` on the managed host, its findings as facts."""

DOCUMENTATION = r"""
---
module: ctguard_doctor
short_description: Check a host for every conntrack pitfall with ctguard doctor
description:
  - Runs C(ctguard doctor --format json) on the managed host (or on a snapshot or
    directory tree there, or inside a network namespace) and returns its findings.
  - Findings are results, not failures. Exit codes 0, 1 and 2 (OK, WARNING, CRITICAL)
    succeed; 3 (UNKNOWN, nothing could be read, bad usage) fails the task with ctguard's
    one-line message.
  - Never changes anything, so it is never C(changed) and runs in check mode too.
version_added: "0.1.0"
author: ctguard contributors
extends_documentation_fragment:
  - ctguard.ctguard.ctguard_options
options:
  root:
    description: Audit this snapshot (directory or archive) or directory tree on the host.
    type: path
  netns:
    description: Read inside this named network namespace (needs root).
    type: str
  only:
    description: Run only these IDs (shell patterns such as C(CT3*)).
    type: list
    elements: str
    default: []
  fail_on:
    description: Least severity that makes the exit status non-zero.
    type: str
    choices: [warning, critical]
    default: warning
  thresholds:
    description: Defaults to change (C(--threshold NAME=VALUE)), for example C(usage_warning=80).
    type: dict
    default: {}
  no_table:
    description: Do not read the conntrack table.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - Needs ctguard on the host, which needs Python 3.11. Hosts without it are audited with
    C(ctguard collector)'s shell script instead (see the collection's C(playbooks/fleet.yml)).
"""

EXAMPLES = r"""
- name: Audit the host
  ctguard.ctguard.ctguard_doctor:
  register: doctor

- name: Persistence checks of an image tree, for a network namespace too
  ctguard.ctguard.ctguard_doctor:
    root: /srv/image
    only: ["CT3*"]

- name: Keep the report on the controller
  ansible.builtin.copy:
    content: "{{ doctor.report | to_nice_json }}"
    dest: "reports/{{ inventory_hostname }}.json"
    mode: "0644"
  delegate_to: localhost
"""

RETURN = r"""
status:
  description: OK, WARNING, CRITICAL (or UNKNOWN, which fails the task).
  returned: success
  type: str
  sample: CRITICAL
exit_status:
  description: The exit code of C(ctguard doctor) (0 OK, 1 WARNING, 2 CRITICAL).
  returned: success
  type: int
  sample: 2
found:
  description: The IDs found, in ID order.
  returned: success
  type: list
  elements: str
  sample: [CT102, CT201, CT304]
findings:
  description: The findings found (status C(found)), as in the report.
  returned: success
  type: list
  elements: dict
report:
  description: The whole report (schema C(ctguard.doctor/1)), passed and skipped rules too.
  returned: success
  type: dict
ansible_facts:
  description: C(ctguard_doctor) with C(status), C(exit_status), C(found) and C(summary).
  returned: success
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.ctguard.ctguard.plugins.module_utils.ctguard_cli import (
    CRITICAL,
    OK,
    TARGET_SPEC,
    WARNING,
    argument_spec,
    run_json,
    target_args,
    without_rc,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(
            TARGET_SPEC,
            {
                "only": {"type": "list", "elements": "str", "default": []},
                "fail_on": {
                    "type": "str",
                    "choices": ["warning", "critical"],
                    "default": "warning",
                },
                "thresholds": {"type": "dict", "default": {}},
                "no_table": {"type": "bool", "default": False},
            },
        ),
        supports_check_mode=True,
    )
    params = module.params
    argv = ["doctor", "--fail-on", params["fail_on"]]
    argv += target_args(params)
    if params["only"]:
        argv += ["--only", ",".join(params["only"])]
    for name, value in sorted(params["thresholds"].items()):
        argv += ["--threshold", f"{name}={value}"]
    if params["no_table"]:
        argv.append("--no-table")
    document = run_json(module, argv, ok=(OK, WARNING, CRITICAL))
    report = without_rc(document)
    findings = [f for f in report["findings"] if f["status"] == "found"]
    found = [f["id"] for f in findings]
    module.exit_json(
        changed=False,
        status=report["status"],
        exit_status=document["_rc"],
        found=found,
        findings=findings,
        report=report,
        ansible_facts={
            "ctguard_doctor": {
                "status": report["status"],
                "exit_status": document["_rc"],
                "found": found,
                "summary": report["summary"],
            }
        },
    )


if __name__ == "__main__":
    main()
