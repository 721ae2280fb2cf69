"""The collection's shared module code (plugins/module_utils/ctguard_cli.py), on its own:
how ctguard's exit codes and messages become task failures, how its plan becomes Ansible's
diff, and how the options become the CLI's."""

from __future__ import annotations

import base64
import importlib.util
import json
from types import ModuleType

from ansible_helpers import COLLECTION_SRC
from helpers import run_ctguard

REPO_RHEL6 = COLLECTION_SRC.parents[2] / "examples" / "rhel6-table-full"


def _load() -> ModuleType:
    path = COLLECTION_SRC / "plugins" / "module_utils" / "ctguard_cli.py"
    spec = importlib.util.spec_from_file_location("ctguard_cli_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cli = _load()


def test_error_line_is_ctguards_own_last_line() -> None:
    stderr = "warning: something\nctguard: error: apply writes /etc and /proc/sys: run it as root\n"
    assert cli.error_line(stderr, 3) == (
        "ctguard: error: apply writes /etc and /proc/sys: run it as root"
    )


def test_error_line_without_ctguards_words_says_what_the_code_means() -> None:
    assert cli.error_line("sh: 1: ctguard: Permission denied\n", 126).startswith(
        "ctguard could not be started (exit 126)"
    )
    assert cli.error_line("", 143) == "ctguard was stopped by signal 15"
    assert cli.error_line("", 5) == "ctguard exited 5: no message"


def test_sizing_args_mirror_the_cli() -> None:
    params = {"target_max": 262144, "memory_budget": 5.0, "established_timeout": None,
              "timeouts": {"udp_timeout": 10, "tcp_timeout_time_wait": 30},
              "force": True, "no_table": False}  # fmt: skip
    assert cli.sizing_args(params) == [
        "--target-max", "262144", "--memory-budget", "5.0",
        "--timeout", "tcp_timeout_time_wait=30", "--timeout", "udp_timeout=10", "--force",
    ]  # fmt: skip
    assert cli.target_args({"root": "/srv/image", "netns": None}) == ["--root", "/srv/image"]


def test_plan_diff_shows_each_files_bytes_and_each_value() -> None:
    done = run_ctguard("plan", "--root", str(REPO_RHEL6), "--format", "json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    diffs = cli.plan_diff(plan)
    assert cli.plan_has_changes(plan)
    assert len(diffs) == len(plan["files"]) + len(plan["sysctls"])
    for diff, item in zip(diffs, plan["files"], strict=False):
        assert diff["after"] == base64.b64decode(item["after_base64"]).decode()
        assert diff["after_header"].startswith(f"{item['path']} in {REPO_RHEL6}")
        if item["before_base64"] is None:
            assert diff["before"] == "" and diff["before_header"].endswith("(absent)")
        else:
            assert diff["before"] == base64.b64decode(item["before_base64"]).decode()
    values = diffs[len(plan["files"]) :]
    assert [v["after"] for v in values] == [f"{s['after']}\n" for s in plan["sysctls"]]


def test_a_plan_with_nothing_to_change_has_no_diff() -> None:
    plan = {"host": {"root": "/"}, "files": [], "sysctls": [
        {"name": "nf_conntrack_max", "path": "/proc/sys/net/netfilter/nf_conntrack_max",
         "before": 262144, "after": 262144}]}  # fmt: skip
    assert not cli.plan_has_changes(plan)
    assert cli.plan_diff(plan) == []
