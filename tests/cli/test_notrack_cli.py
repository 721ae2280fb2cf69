"""`ctguard notrack` as an operator runs it: the console script in a subprocess, planning
against the doctor's snapshot roots with --root (read their ctguard_commands/ captures and
tests/roots/doctor/README.md). Nothing here changes this machine's firewall: the only runs
without --root are refused before anything is read, as uid 65534.

Golden files: CTGUARD_UPDATE_GOLDEN=1 rewrites tests/cli/golden/notrack-*.txt; review the
diff before committing it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import ROOTS, assert_one_line_error, check_golden, ctguard_bin, one_error_line

REPO = Path(__file__).parents[2]
DOCTOR = ROOTS / "doctor"
NFT_ROOT = "tests/roots/doctor/ct501-notrack-nft"  # relative to REPO: shown in the plan text
IPT_ROOT = "tests/roots/doctor/ct501-notrack-iptables"
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
JSON_KEYS = {
    "schema", "backend", "backend_why", "untracked", "refused", "refusals", "add", "present",
    "transactions", "check", "notes",
}  # fmt: skip
NFT_ACCEPT = (
    "nft insert rule inet filter input position 11 tcp dport 8983 ct state untracked accept"
    ' comment "ctguard"'
)
CHECK = (
    "Check of the resulting ruleset (untracked packets):\n"
    "  tcp dport 8983 coming in: accepted on input\n"
    "  tcp sport 8983 going out: accepted on output\n"
)
DNAT = (
    "iptables -t nat -A PREROUTING -p tcp -m tcp --dport 8983 -j DNAT"
    " --to-destination 10.0.0.5:8983"
)
NAT_REFUSED = (
    "refused: a NAT rule can match these packets; untracked packets are never NATed, so it"
    " would silently stop working"
)


def _script() -> str:
    """The venv's console script (the one next to this interpreter), else the one on PATH."""
    here = Path(sys.executable).parent / "ctguard"
    return str(here) if here.is_file() else ctguard_bin()


def run(*args: object, user: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    # stdin is never a terminal: a confirmation prompt must not hang the test
    done = subprocess.run(
        [*(user or []), _script(), "notrack", *map(str, args)],
        capture_output=True, text=True, timeout=60, check=False, cwd=REPO,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


# -- the plan as text ----------------------------------------------------------------------
def test_nft_root_plan_shows_rules_transaction_and_check():
    done = run("--port", "8983", "--root", NFT_ROOT)
    assert (done.returncode, done.stderr) == (0, "")
    out = done.stdout
    assert out.startswith(f"ctguard notrack for {NFT_ROOT}\n")
    assert "backend: nft (the ruleset is nft (5 native nft base chain(s)))\n" in out
    assert f"\n  {NFT_ACCEPT}\n" in out
    assert "  nft --echo --handle -f - <<'EOF'\n    add table inet ctguard\n" in out
    assert CHECK in out
    assert out.endswith(
        "\nApply: add --apply (journalled; 'ctguard rollback' or --remove undoes)\n"
    )
    check_golden("notrack-ct501-nft.txt", out)


def test_iptables_root_plan_shows_both_families():
    done = run("--port", "8983", "--root", IPT_ROOT)
    assert (done.returncode, done.stderr) == (0, "")
    out = done.stdout
    assert "backend: iptables (the ruleset is iptables (12 rules, iptables-nft))\n" in out
    for tool in ("iptables", "ip6tables"):
        assert (
            # right before the root's 2nd INPUT rule, --dport 8983 --state NEW -j ACCEPT
            f"  {tool} -t filter -I INPUT 2 -p tcp -m tcp --dport 8983 -m conntrack --ctstate"
            " UNTRACKED -m comment --comment ctguard -j ACCEPT\n"
        ) in out
        # one transaction per table: iptables-restore commits table by table
        assert f"  {tool}-restore --noflush <<'EOF'\n    *raw\n" in out
        assert f"  {tool}-restore --noflush <<'EOF'\n    *filter\n" in out
    assert "  # add 1 iptables filter rule(s)\n" in out
    assert out.count("    COMMIT\n  EOF\n") == out.count("-restore --noflush <<'EOF'\n") == 4
    assert CHECK in out
    check_golden("notrack-ct501-iptables.txt", out)


def test_a_root_with_the_fix_in_place_and_nat_elsewhere_is_planned():
    # DNAT on port 80 only, and an (untagged) UNTRACKED accept for 8983 in ip filter INPUT
    done = run("--port", "8983", "--root", DOCTOR / "ct502-near-dnat-other-port")
    assert (done.returncode, done.stderr) == (0, "")
    assert "REFUSED" not in done.stdout
    assert "iptables -t filter -I INPUT" not in done.stdout.replace("ip6tables", "")
    # its IPv6 filter never accepted 8983 (tracked or not): no accept opens it
    assert "ip6tables -t filter -I INPUT" not in done.stdout
    assert (
        "tcp dport 8983 coming in: ip6 filter INPUT drops these packets whether tracked or not;"
        " no accept added (it would open what the filter closes)"
    ) in done.stdout


# -- JSON ----------------------------------------------------------------------------------
def test_json_schema_and_values():
    done = run("--port", "8983", "--json", "--root", NFT_ROOT)
    assert (done.returncode, done.stderr) == (0, "")
    doc = json.loads(done.stdout)
    assert set(doc) == JSON_KEYS
    assert (doc["schema"], doc["backend"], doc["refused"], doc["refusals"]) == (
        "ctguard.notrack/1", "nft", False, [],
    )  # fmt: skip
    assert doc["untracked"] == ["tcp dport 8983 coming in", "tcp sport 8983 going out"]
    assert doc["add"][-1] == NFT_ACCEPT
    assert doc["present"] == []
    (transaction,) = doc["transactions"]
    assert transaction["argv"] == ["nft", "--echo", "--handle", "-f", "-"]
    assert transaction["script"].endswith(f"{NFT_ACCEPT[4:]}\n")
    assert doc["check"] == [
        "tcp dport 8983 coming in: accepted on input",
        "tcp sport 8983 going out: accepted on output",
    ]
    assert doc["notes"] == [
        "not read: not captured: iptables-save is not installed; not captured: ip6tables-save"
        " is not installed"
    ]


def test_json_backend_iptables_keeps_the_nft_accept_in_nft():
    doc = json.loads(run("--port", "8983", "--backend", "iptables", "--json", "--root",
                         NFT_ROOT).stdout)  # fmt: skip
    assert doc["backend"] == "iptables"
    assert doc["add"][-1] == NFT_ACCEPT
    assert [t["argv"][0] for t in doc["transactions"]] == [
        "nft", "iptables-restore", "ip6tables-restore",
    ]  # fmt: skip


# -- refusals: exit 2 ----------------------------------------------------------------------
def test_nat_root_is_refused_with_the_rule_shown():
    done = run("--port", "8983", "--root", DOCTOR / "ct502-notrack-dnat")
    one_error_line(done, 2, NAT_REFUSED)
    assert f"\nREFUSED: {NAT_REFUSED[9:]}\n    {DNAT}\n" in done.stdout
    # a refused plan shows neither rules to add nor a check of a ruleset that will not be
    assert "Rules to add" not in done.stdout
    assert "Check of the resulting ruleset" not in done.stdout
    assert "Transactions" not in done.stdout
    assert "Apply:" not in done.stdout


def test_nat_root_refusal_as_json():
    done = run("--port", "8983", "--json", "--root", DOCTOR / "ct502-notrack-dnat")
    one_error_line(done, 2, NAT_REFUSED)
    doc = json.loads(done.stdout)
    assert doc["refused"] is True
    assert doc["refusals"][0]["rules"] == [DNAT]
    assert doc["transactions"] == []


def test_all_is_refused_where_a_rule_needs_the_state_of_all_traffic():
    done = run("--all", "--root", NFT_ROOT)
    one_error_line(done, 2, "refused: these rules look at the conntrack state of all traffic")
    assert "    ct state established,related accept (table inet filter, chain input)\n" in (
        done.stdout
    )


def test_both_directions_on_a_typical_stateful_host_are_planned():
    done = run("--port", "8983", "--direction", "both", "--root", NFT_ROOT)
    assert (done.returncode, done.stderr) == (0, "")


# -- usage errors: exit 3, one line --------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--port", "abc"], "'abc' is not a port or a range like 9200-9300"),
        (["--port", "0"], "'0': ports are 1-65535"),
        (["--port", "70000"], "'70000': ports are 1-65535"),
        (["--port", "9300-9200"], "'9300-9200': ports are 1-65535, low-high"),
        (["--port", "80,"], "'' is not a port"),
        (["--port", "80", "--all"], "--all and --port cannot be combined"),
        ([], "say which ports (--port 8983) or --all"),
        (["--port", "80", "--apply"], "--root plans against a snapshot"),
        (["--port", "80", "--verify"], "--root plans against a snapshot"),
        (["--remove"], "--root plans against a snapshot"),
        (["--port", "80", "--netns", "web1"], "--root and --netns cannot be combined"),
        (["--port", "80", "--proto", "icmp"], "'icmp' is not one of 'tcp', 'udp'"),
    ],
    ids=[
        "port-abc", "port-0", "port-70000", "port-reversed", "port-empty", "port-and-all",
        "neither", "root-apply", "root-verify", "root-remove", "root-netns", "proto",
    ],
)  # fmt: skip
def test_usage_errors_are_one_line(args, needle):
    done = run(*args, "--root", NFT_ROOT)
    assert_one_line_error(done, needle)
    assert done.stdout == ""


def test_missing_root_is_one_line():
    assert_one_line_error(run("--port", "80", "--root", "/nonexistent/root"), "/nonexistent/root")


def test_help_teaches_with_examples():
    done = run("--help")
    assert (done.returncode, done.stderr) == (0, "")
    assert "Examples:\n" in done.stdout
    assert "ctguard notrack --port 8983 " in done.stdout
    assert "sudo ctguard notrack --remove --yes" in done.stdout
    assert "Exit codes: 0 planned/applied/verified" in done.stdout


# -- not root: refused before anything is read or written ----------------------------------
@pytest.fixture
def as_nobody() -> list[str]:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    if os.geteuid() != 0:
        pytest.skip("switching to uid 65534 needs root")
    probe = subprocess.run([*NOBODY, _script(), "--version"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"uid 65534 cannot run {_script()}: {probe.stderr[:200]!r}")
    return NOBODY


@pytest.fixture
def nobody_state_dir() -> Iterator[Path]:
    """A state dir uid 65534 could create: a journal it attempted would show here."""
    with tempfile.TemporaryDirectory(prefix="ctguard-test-state-") as top:
        os.chown(top, 65534, 65534)
        yield Path(top) / "state"


@pytest.mark.parametrize(
    "args", [["--port", "8983", "--apply", "--yes"], ["--remove", "--yes"]], ids=["apply", "remove"]
)
def test_changing_the_firewall_as_a_user_says_run_as_root(as_nobody, nobody_state_dir, args):
    done = run(*args, "--state-dir", nobody_state_dir, user=as_nobody)
    line = one_error_line(done, 3)
    assert line == "ctguard: error: changing the firewall needs root (sudo ctguard notrack ...)"
    assert done.stdout == ""
    assert not nobody_state_dir.exists()


def test_apply_with_remove_is_a_usage_error(as_nobody, nobody_state_dir):
    # without --root (that error would come first); as uid 65534, so nothing could change
    done = run("--port", "8983", "--apply", "--remove", "--state-dir", nobody_state_dir,
               user=as_nobody)  # fmt: skip
    assert_one_line_error(done, "--apply and --remove cannot be combined")
    assert not nobody_state_dir.exists()
