"""The options several ctguard modules share, documented once: Ansible doc fragments,
``extends_documentation_fragment: [ctguard.ctguard.ctguard_options]`` (and ``.sizing``).
Their argument specs are shared the same way, in module_utils/ctguard_cli.py."""


class ModuleDocFragment:
    # every module: the program it runs
    DOCUMENTATION = r"""
options:
  executable:
    description:
      - The ctguard program on the host. Default C(/opt/ctguard/venv/bin/ctguard), where the
        C(ctguard.ctguard.install) role puts it, else C(ctguard) on PATH.
    type: path
"""

    # ctguard_plan and ctguard_apply: how the table is sized (the options of ctguard plan)
    SIZING = r"""
options:
  target_max:
    description: Use this nf_conntrack_max instead of 2 x the observed peak.
    type: int
  memory_budget:
    description: Most of MemTotal (%) a full table may take (ctguard's default is 5).
    type: float
  established_timeout:
    description: Set nf_conntrack_tcp_timeout_established (seconds).
    type: int
  timeouts:
    description: Other timeouts, by short sysctl name, for example C(tcp_timeout_time_wait=30).
    type: dict
    default: {}
  force:
    description: Keep a plan over 25 % of MemTotal, MemAvailable or the budget.
    type: bool
    default: false
  no_table:
    description: Do not read the conntrack table (timeouts are then not sized).
    type: bool
    default: false
"""
