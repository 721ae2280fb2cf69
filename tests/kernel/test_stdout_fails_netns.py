"""`notrack --apply` and `--remove` into a closed pipe, in a namespace of their own: the
rules are added (or removed) and journalled, so the exit code is 0 and stderr says so with
the journal entry; never "internal error" (issue 17, "exit status")."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from helpers import ctguard_bin, run_ctguard
from netns_helpers import Netns

pytestmark = pytest.mark.kernel
TAG = 'comment "ctguard"'

FILTER = """table inet filter {
    chain input {
        type filter hook input priority 0; policy drop;
        ct state established,related accept
        tcp dport 8983 ct state new accept
    }
}
"""


def into_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([ctguard_bin(), *args], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=120, check=False)  # fmt: skip
    finally:
        os.close(write_end)


def newest_entry(state: Path) -> dict[str, object]:
    done = run_ctguard("rollback", "--list", "--state-dir", str(state), "--format", "json")
    assert done.returncode == 0, done.stderr
    entry: dict[str, object] = json.loads(done.stdout)["entries"][0]
    return entry


def test_notrack_apply_and_remove_into_a_closed_pipe(netns: Netns, tmp_path: Path) -> None:
    netns.run("nft", "-f", "-", input=FILTER)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    common = ("--netns", netns.name, "--yes", "--state-dir", str(state))
    added = into_closed_pipe("notrack", "--port", "8983", "--apply", *common)
    assert added.returncode == 0, added.stderr
    assert TAG in netns.run("nft", "list", "ruleset").stdout  # the rules are there
    entry = newest_entry(state)
    assert entry["state"] == "applied"
    assert added.stderr == (
        f"ctguard: notrack rules added (journal entry {entry['id']}); could not write the"
        " report: Broken pipe\n"
    )
    removed = into_closed_pipe("notrack", "--remove", *common)
    assert removed.returncode == 0, removed.stderr
    assert TAG not in netns.run("nft", "list", "ruleset").stdout
    entry = newest_entry(state)
    assert removed.stderr == (
        f"ctguard: removed the ctguard rules (journal entry {entry['id']}); could not write"
        " the report: Broken pipe\n"
    )
