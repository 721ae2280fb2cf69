"""CT501 does not page, nor open FORWARD, when it cannot tell whether a NOTRACK's packets are
forwarded: on the nodelocaldns root without the host's addresses (an older snapshot), a
FORWARD that would drop the untracked DNS packets it accepted tracked is a WARNING that says
why, and the fix suggests no FORWARD accept (it may open a path closed on purpose)."""

from __future__ import annotations

import shutil
from pathlib import Path

from helpers import doctor_finding

ROOT = Path(__file__).parent / "roots" / "doctor" / "ct501-nodelocaldns-local-accept"
# A node that forwards its pods' new connections (a stateful FORWARD, as CNI setups write).
POD_FORWARD = (
    "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
    "-A FORWARD -s 10.244.0.0/16 -m conntrack --ctstate NEW -j ACCEPT\n"
)


def ct501(root: Path) -> dict[str, object]:
    return doctor_finding(root, "CT501")


def copy_of(tmp_path: Path, *, addresses: bool, pod_forward: bool) -> Path:
    copy = tmp_path / "root"
    shutil.copytree(ROOT, copy, symlinks=True)
    if not addresses:
        for name in ("fib_trie", "if_inet6"):
            (copy / "proc" / "net" / name).unlink()
    if pod_forward:
        save = copy / "ctguard_commands" / "iptables-save"
        text = save.read_text()
        head, filter_table, rest = text.partition("*filter\n")
        body, commit, tail = rest.partition("COMMIT\n")
        save.write_text(head + filter_table + body + POD_FORWARD + commit + tail)
    return copy


def test_unknown_addresses_and_a_forward_drop_of_tracked_packets_too_pass(tmp_path: Path) -> None:
    # FORWARD (policy DROP, no rule) dropped these DNS packets tracked as well: local or
    # forwarded, untracking them changes nothing
    assert ct501(copy_of(tmp_path, addresses=False, pod_forward=False))["status"] == "passed"


def test_unknown_addresses_warn_and_suggest_no_forward_accept(tmp_path: Path) -> None:
    got = ct501(copy_of(tmp_path, addresses=False, pod_forward=True))
    assert (got["status"], got["severity"]) == ("found", "warning")
    evidence = got["evidence"]
    assert isinstance(evidence, list)
    assert any("only if forwarded" in line for line in evidence)
    fix = str(got["fix"])
    assert "FORWARD needs the same untracked accept" in fix
    assert "169.254.20.10/32 is not one of this host's addresses" in fix
    assert "-I FORWARD" not in fix and "ACCEPT" not in fix


def test_known_local_addresses_keep_it_passing(tmp_path: Path) -> None:
    assert ct501(ROOT)["status"] == "passed"
    # 169.254.20.10 is this host's: delivered locally, the FORWARD rules never see it
    assert ct501(copy_of(tmp_path, addresses=True, pod_forward=True))["status"] == "passed"
