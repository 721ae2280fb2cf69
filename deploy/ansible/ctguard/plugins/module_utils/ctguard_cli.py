# Copyright: ctguard contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""What the ctguard modules share: finding the program, the options that mirror its CLI,
running it with an argument list, reading its ``--format json``, and turning its exit codes
and plans into Ansible results.

This runs on the managed host's Python, which may be older than ctguard's own (3.6 and up):
no ``from __future__ import annotations``, ``typing`` generics, no walrus.
"""

import base64
import json
import os
from typing import Any, Dict, List, Optional, Sequence

from ansible.module_utils.basic import AnsibleModule

# where roles/install puts it
DEFAULT_EXECUTABLE = "/opt/ctguard/venv/bin/ctguard"

# docs/exit-codes.md
OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3

EXECUTABLE_SPEC = {"executable": {"type": "path"}}
TARGET_SPEC = {"root": {"type": "path"}, "netns": {"type": "str"}}
# the sizing options `ctguard plan` and `ctguard apply` share
SIZING_SPEC = {
    "target_max": {"type": "int"},
    "memory_budget": {"type": "float"},
    "established_timeout": {"type": "int"},
    "timeouts": {"type": "dict", "default": {}},
    "force": {"type": "bool", "default": False},
    "no_table": {"type": "bool", "default": False},
}

Params = Dict[str, Any]


def argument_spec(*parts: Params) -> Params:
    spec = dict(EXECUTABLE_SPEC)
    for part in parts:
        spec.update(part)
    return spec


def executable(module: AnsibleModule) -> str:
    """The ``executable`` option, else the role's virtual environment, else PATH."""
    given = module.params.get("executable")
    if given:
        found = given if os.path.isabs(given) else module.get_bin_path(given, required=False)
        if not found or not os.access(found, os.X_OK) or os.path.isdir(found):
            module.fail_json(msg=f"ctguard: error: {given} is not a program on this host")
        return str(found)
    if os.access(DEFAULT_EXECUTABLE, os.X_OK):
        return DEFAULT_EXECUTABLE
    found = module.get_bin_path("ctguard", required=False)
    if not found:
        module.fail_json(
            msg=f"ctguard is not installed on this host: not {DEFAULT_EXECUTABLE}, not on PATH"
            " (install it with the ctguard.ctguard.install role, or set executable)"
        )
    return str(found)


def target_args(params: Params) -> List[str]:
    argv = []  # type: List[str]
    if params.get("root"):
        argv += ["--root", str(params["root"])]
    if params.get("netns"):
        argv += ["--netns", str(params["netns"])]
    return argv


def sizing_args(params: Params) -> List[str]:
    argv = []  # type: List[str]
    for name in ("target_max", "memory_budget", "established_timeout"):
        if params.get(name) is not None:
            argv += ["--" + name.replace("_", "-"), str(params[name])]
    for name, seconds in sorted((params.get("timeouts") or {}).items()):
        argv += ["--timeout", f"{name}={seconds}"]
    if params.get("force"):
        argv.append("--force")
    if params.get("no_table"):
        argv.append("--no-table")
    return argv


def error_line(stderr: str, rc: int) -> str:
    """ctguard's own one-line message (docs/exit-codes.md: every error is one line on
    stderr), else what the exit code says."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    said = [line for line in lines if line.startswith("ctguard")]
    if said:
        return said[-1]
    if rc == 126 or rc == 127:
        return f"ctguard could not be started (exit {rc}): {' '.join(lines[-1:])}"
    if rc > 128:
        return f"ctguard was stopped by signal {rc - 128}"
    said_last = " ".join(lines[-1:]) or "no message"
    return f"ctguard exited {rc}: {said_last}"


def run_json(
    module: AnsibleModule, argv: Sequence[str], ok: Sequence[int] = (OK,)
) -> Dict[str, Any]:
    """Run ``ctguard ARGV --format json``; exit codes outside ``ok`` fail the task with
    ctguard's message. Returns the document, with the exit code under ``_rc``."""
    cmd = [executable(module), *argv, "--format", "json"]
    rc, out, err = module.run_command(cmd, check_rc=False, environ_update={"LC_ALL": "C.UTF-8"})
    if rc not in ok:
        module.fail_json(msg=error_line(err, rc), rc=rc, cmd=cmd, stdout=out, stderr=err)
    try:
        document = json.loads(out)
    except ValueError:
        module.fail_json(msg=f"ctguard printed no JSON (exit {rc})", rc=rc, cmd=cmd, stderr=err)
    if not isinstance(document, dict):
        module.fail_json(msg="ctguard printed JSON that is not an object", rc=rc, cmd=cmd)
    document["_rc"] = rc
    return dict(document)


def _text(encoded: Optional[str]) -> str:
    if encoded is None:
        return ""
    return base64.b64decode(encoded).decode("utf-8", "replace")


def plan_has_changes(plan: Dict[str, Any]) -> bool:
    files = any(f["before_sha256"] != f["after_sha256"] for f in plan.get("files", []))
    values = any(s["before"] != s["after"] for s in plan.get("sysctls", []))
    return files or values


def plan_diff(plan: Dict[str, Any]) -> List[Dict[str, str]]:
    """One Ansible diff per file the plan writes and per runtime value it sets, so that
    ``--check --diff`` shows exactly the bytes (schema ctguard.plan/1 carries them)."""
    where = plan.get("host", {}).get("root") or "/"
    suffix = "" if where == "/" else f" in {where}"
    diffs = []  # type: List[Dict[str, str]]
    for item in plan.get("files", []):
        if item["before_sha256"] == item["after_sha256"]:
            continue
        before = item["before_base64"]
        diffs.append(
            {
                "before_header": item["path"] + suffix + (" (absent)" if before is None else ""),
                "after_header": f"{item['path']}{suffix} (mode {item['mode']})",
                "before": _text(before),
                "after": _text(item["after_base64"]),
            }
        )
    for value in plan.get("sysctls", []):
        if value["before"] == value["after"]:
            continue
        where_set = f"{value['name']} ({value['path']})"
        diffs.append(
            {
                "before_header": where_set,
                "after_header": where_set,
                "before": "" if value["before"] is None else f"{value['before']}\n",
                "after": f"{value['after']}\n",
            }
        )
    return diffs


def without_rc(document: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in document.items() if k != "_rc"}
