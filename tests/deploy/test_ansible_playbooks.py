"""The collection's own playbooks (fleet.yml, rollback.yml) run by the real
``ansible-playbook`` against this machine with a local connection (issue 20 item 2):

- hosts that run ctguard, on copies of the RHEL fixture trees (``--root``) and on a network
  namespace the test makes: ``--check --diff`` changes no byte and shows every file's diff,
  a real run applies and names its journal entry, a second run is not changed, and
  rollback.yml restores every byte (and every namespace value);
- a host that cannot run ctguard (no Python on it: its interpreter is a path that does not
  exist), audited with the collector's shell script (CTGUARD_ROOT=copy of the RHEL 6
  example, CTGUARD_TREE_COMMANDS not set), its archive brought back, the plan's shell script
  run on it, and its undo.sh;
- uid 65534: the apply fails on that host with ctguard's one-line message.

The runs are few (each does several steps) and shared by the tests of this module.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ansible_helpers import Installed, Run, open_dir, playbook, write_inventory
from helpers import ROOTS, run_ctguard
from netns_helpers import Netns, tracking_netns, why_no_kernel
from remediation.plan_sh_helpers import Picture, picture

REPO = Path(__file__).resolve().parents[2]
TREES = {
    "rhel6": REPO / "examples" / "rhel6-table-full",
    "rhel7": ROOTS / "doctor" / "ct304-rhel76-greps-sysctl-d-no-link",
}
OLD = "old6"  # the RHEL 6 example again, as a host that cannot run ctguard
NETNS = "netns"
NETFILTER = Path("/proc/sys/net/netfilter")
ESTABLISHED = "nf_conntrack_tcp_timeout_established"
TIME_WAIT = "nf_conntrack_tcp_timeout_time_wait"
SKIP = ["--skip-tags", "install"]  # ctguard is installed already


def namespace_values(ns: Netns) -> dict[str, int]:
    return {
        name: int(ns.run("sysctl", "-n", f"net.netfilter.{name}").stdout)
        for name in (ESTABLISHED, TIME_WAIT)
    }


def initial_values() -> dict[str, int]:
    """The initial namespace's values (read, never written)."""
    return {name: int((NETFILTER / name).read_text()) for name in (ESTABLISHED, TIME_WAIT)}


@dataclass
class Fleet:
    top: Path
    reports: Path
    scripts: Path
    state: Path
    netns: Netns | None
    originals: dict[str, Picture] = field(default_factory=dict)
    pictures: dict[str, list[Picture]] = field(default_factory=dict)
    values: list[dict[str, int]] = field(default_factory=list)
    initial: list[dict[str, int]] = field(default_factory=list)
    runs: dict[str, Run] = field(default_factory=dict)

    def tree(self, host: str) -> Path:
        return self.top / "trees" / host

    def applied(self, host: str) -> Path:
        return self.top / "applied" / host

    def snap(self) -> None:
        for host in self.originals:
            self.pictures.setdefault(host, []).append(picture(self.tree(host)))
        if self.netns is not None:
            self.values.append(namespace_values(self.netns))
            self.initial.append(initial_values())


def inventory(fleet: Fleet) -> Path:
    ctguard_bin = shutil.which("ctguard")
    assert ctguard_bin is not None
    python = str(Path(ctguard_bin).parent / "python")
    modern = {
        host: {
            "ansible_python_interpreter": python,
            "ctguard_executable": ctguard_bin,
            "ctguard_root": str(fleet.tree(host)),
            "ctguard_state_dir": str(fleet.state / host),
        }
        for host in TREES
    }
    if fleet.netns is not None:
        modern[NETNS] = {
            "ansible_python_interpreter": python,
            "ctguard_executable": ctguard_bin,
            "ctguard_netns": fleet.netns.name,
            "ctguard_state_dir": str(fleet.state / NETNS),
            "ctguard_established_timeout": 3600,
            "ctguard_timeouts": {"tcp_timeout_time_wait": 30},
        }
    old = {
        OLD: {
            # no Python on this host: any task that needs one fails
            "ansible_python_interpreter": "/nonexistent/python3",
            "ctguard_sh_environment": {
                "CTGUARD_ROOT": str(fleet.tree(OLD)),
                "CTGUARD_BACKUP_DIR": str(fleet.top / "old6-backups"),
            },
        }
    }
    return write_inventory(fleet.top / "inventory.yml", {"ctguard": modern, "ctguard_old": old})


@pytest.fixture(scope="module")
def netns_or_none() -> Iterator[Netns | None]:
    if why_no_kernel() is not None:
        yield None
        return
    with tracking_netns("ctans") as ns:
        yield ns


@pytest.fixture(scope="module")
def fleet(ansible_collection: Installed, netns_or_none: Netns | None) -> Iterator[Fleet]:
    """check, apply, apply again, rollback in check mode, rollback: a picture of every
    tree (and the namespace's values) before and after each."""
    with open_dir("ctguard-fleet-") as top:
        os.chmod(top, 0o700)  # the journal's state dir must be root's alone
        fleet = Fleet(top, top / "reports", top / "scripts", top / "state", netns_or_none)
        fleet.state.mkdir()  # the playbook makes the reports and scripts directories
        for host, source in [*TREES.items(), (OLD, TREES["rhel6"])]:
            shutil.copytree(source, fleet.tree(host), symlinks=True)
            fleet.originals[host] = picture(fleet.tree(host))
        inv = inventory(fleet)
        ctguard_bin = shutil.which("ctguard") or "ctguard"
        extra = ["-e", f"ctguard_reports_dir={fleet.reports}",
                 "-e", f"ctguard_scripts_dir={fleet.scripts}",
                 "-e", f"ctguard_controller={ctguard_bin}"]  # fmt: skip
        fleet.snap()
        for name, args in [
            ("check", ["--check", "--diff"]),
            ("apply", []),
            ("again", []),
        ]:
            fleet.runs[name] = playbook(ansible_collection, "fleet.yml", inv, *SKIP, *extra, *args)
            fleet.snap()
            if name == "apply":  # kept, for doctor to judge after the rollback
                for host in fleet.originals:
                    shutil.copytree(fleet.tree(host), fleet.applied(host), symlinks=True)
        fleet.runs["rollback-check"] = playbook(ansible_collection, "rollback.yml", inv, "--check")
        fleet.snap()
        fleet.runs["rollback"] = playbook(ansible_collection, "rollback.yml", inv)
        fleet.snap()
        yield fleet


HOSTS = [*TREES, OLD]


def test_every_run_succeeds(fleet: Fleet) -> None:
    for name, run in fleet.runs.items():
        assert run.returncode == 0, (name, run.output[-4000:])
        assert "Traceback" not in run.output, name
        hosts = {*HOSTS, *([NETNS] if fleet.netns else [])}
        if not name.startswith("rollback"):  # fleet.yml reports on the controller
            hosts.add("localhost")
            assert run.recap["localhost"]["changed"] == 0, run.recap  # no host changed
        assert set(run.recap) == hosts, (name, run.recap)


@pytest.mark.parametrize("host", HOSTS)
def test_check_mode_changes_no_byte_and_shows_each_file(fleet: Fleet, host: str) -> None:
    before, after_check = fleet.pictures[host][0], fleet.pictures[host][1]
    assert after_check == before
    check = fleet.runs["check"]
    assert check.recap[host]["changed"] >= 1  # the plan has changes
    where = "reports" if host == OLD else str(fleet.tree(host))
    # each file of the plan as a diff: the headers name the path in its tree
    plan = json.loads(
        run_ctguard("plan", "--root", str(fleet.tree(host) if host != OLD else TREES["rhel6"]),
                    "--format", "json").stdout
    )  # fmt: skip
    for item in plan["files"]:
        header = re.compile(rf"^\+\+\+ after: {re.escape(item['path'])} in \S*{re.escape(where)}")
        assert any(header.match(line) for line in check.output.splitlines()), item["path"]


@pytest.mark.parametrize("host", HOSTS)
def test_apply_changes_the_tree_and_a_second_run_does_not(fleet: Fleet, host: str) -> None:
    original, applied, again = (fleet.pictures[host][i] for i in (0, 2, 3))
    assert applied != original
    assert fleet.runs["apply"].recap[host]["changed"] >= 1
    assert again == applied
    assert fleet.runs["again"].recap[host]["changed"] == 0, fleet.runs["again"].output[-3000:]
    # what the plan fixes is no longer found
    plan = json.loads(run_ctguard("plan", "--root", str(TREES.get(host, TREES["rhel6"])),
                                  "--format", "json").stdout)  # fmt: skip
    assert "CT304" in plan["addresses"]
    found = json.loads(
        run_ctguard("doctor", "--root", str(fleet.applied(host)), "--format", "json").stdout
    )  # fmt: skip
    assert not {f["id"] for f in found["findings"] if f["status"] == "found"} & set(
        plan["addresses"]
    )


@pytest.mark.parametrize("host", TREES)
def test_apply_names_its_journal_entry(fleet: Fleet, host: str) -> None:
    said = re.findall(
        rf"ok: \[{host}\] => \{{\s*\"msg\": \"applied as journal entry (\S+);",
        fleet.runs["apply"].output,
    )
    listed = json.loads(
        run_ctguard("rollback", "--list", "--state-dir", str(fleet.state / host),
                    "--format", "json").stdout
    )  # fmt: skip
    (entry,) = listed["entries"]  # the second run made none
    assert said == [entry["id"]]
    assert entry["state"] == "rolled-back"


@pytest.mark.parametrize("host", HOSTS)
def test_rollback_in_check_mode_changes_nothing(fleet: Fleet, host: str) -> None:
    assert fleet.pictures[host][4] == fleet.pictures[host][3]
    # a host that runs ctguard says its entry would be rolled back; an old host's undo.sh
    # is a raw command, which check mode skips
    expected = 0 if host == OLD else 1
    assert fleet.runs["rollback-check"].recap[host]["changed"] == expected


@pytest.mark.parametrize("host", HOSTS)
def test_rollback_restores_every_byte(fleet: Fleet, host: str) -> None:
    assert fleet.pictures[host][-1] == fleet.originals[host]
    assert fleet.runs["rollback"].recap[host]["changed"] == 1


def test_namespace_values_applied_and_rolled_back(fleet: Fleet) -> None:
    if fleet.netns is None:
        pytest.skip(why_no_kernel() or "no namespace")
    before, checked, applied, again, rollback_checked, rolled = fleet.values
    assert before[ESTABLISHED] != 3600 and before[TIME_WAIT] != 30, before  # can fail
    assert checked == before
    assert applied == again == rollback_checked == {ESTABLISHED: 3600, TIME_WAIT: 30}
    assert rolled == before
    assert fleet.runs["again"].recap[NETNS]["changed"] == 0
    assert len(set(map(str, fleet.initial))) == 1  # the initial namespace never moved


def test_old_host_archive_and_scripts_on_the_controller(fleet: Fleet) -> None:
    # one archive per host, by inventory name, replaced by each audit (three runs here)
    assert sorted(p.name for p in fleet.reports.glob("*.tar.gz")) == [f"{OLD}.tar.gz"]
    latest = fleet.reports / f"{OLD}.tar.gz"
    with tarfile.open(latest) as archive:
        assert "ctguard_manifest.json" in {Path(n).name for n in archive.getnames()}
    fix = (fleet.scripts / f"fix-{OLD}.sh").read_text()
    assert fix.startswith("#!/bin/sh\n")
    (fixes,) = [line.split(": ", 1)[1].split() for line in fix.splitlines()
                if line.startswith("# fixes: ")]  # fmt: skip
    assert {"CT201", "CT304"} <= set(fixes)  # the audit before the apply found them
    # the last audit ran after the apply: what the script fixed is no longer found
    last = json.loads(run_ctguard("doctor", "--root", str(latest), "--format", "json").stdout)
    assert not set(fixes) & {f["id"] for f in last["findings"] if f["status"] == "found"}
    assert (fleet.scripts / "ctguard-collect.sh").is_file()
    # the modern hosts' doctor JSON is there too
    for host in TREES:
        report = json.loads((fleet.reports / f"{host}.json").read_text())
        assert report["schema"] == "ctguard.doctor/1"


# -- not root ---------------------------------------------------------------------------
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
# The venv's interpreter may live under a directory only root can enter (/root/.pyenv):
# uid 65534 then gets CAP_DAC_READ_SEARCH to reach it (reading and searching only; ctguard's
# own check is on the effective uid, and writing /etc needs DAC_OVERRIDE, which it lacks).
READ_SEARCH = ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]


def _as_nobody() -> list[str]:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    if os.geteuid() != 0:
        pytest.skip("switching to uid 65534 needs root")
    probe = subprocess.run(
        [*NOBODY, "/bin/sh", "-c", 'exec "$0" -c ""', str(Path(shutil.which("python3") or ""))],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    return NOBODY if probe.returncode == 0 else [*NOBODY, *READ_SEARCH]


def _chown_tree(top: Path, uid: int) -> None:
    for path in [top, *top.rglob("*")]:
        os.lchown(path, uid, uid)


def test_not_root_fails_with_ctguards_one_line_and_the_rollout_stops(
    ansible_collection: Installed,
) -> None:
    """uid 65534, batches of 1 then 2 (-e ctguard_serial): the canary (an image tree uid
    65534 can write) is applied; in the next batch this host (live) fails with ctguard's one
    line while its batch mate is applied; the last batch never runs (max_fail_percentage 0;
    without it, a batch that only partly failed would not stop the rollout)."""
    user = _as_nobody()
    ctguard_bin = shutil.which("ctguard")
    assert ctguard_bin is not None
    images = ("canary", "mate", "last")
    with open_dir("ctguard-nobody-") as top:
        home = top / "home"
        home.mkdir()
        _chown_tree(home, 65534)
        for name in images:
            shutil.copytree(TREES["rhel7"], top / name, symlinks=True)
            _chown_tree(top / name, 65534)
        original = picture(top / "last")
        common = {
            "ansible_python_interpreter": str(Path(ctguard_bin).parent / "python"),
            "ctguard_executable": ctguard_bin,
        }
        tree = {name: {**common, "ctguard_root": str(top / name),
                       "ctguard_state_dir": str(home / f"{name}-state")}
                for name in images}  # fmt: skip
        hosts = {"canary": tree["canary"],
                 "live": {**common, "ctguard_state_dir": str(home / "live-state")},
                 "mate": tree["mate"], "last": tree["last"]}  # fmt: skip
        inv = write_inventory(top / "inventory.yml", {"ctguard": hosts})
        tmp = str(home / "tmp")
        env = {**ansible_collection.env, "HOME": str(home),
               "ANSIBLE_LOCAL_TEMP": tmp, "ANSIBLE_REMOTE_TEMP": tmp}  # fmt: skip
        args = ["--tags", "apply", "-e", '{"ctguard_serial": [1, 2]}']
        # check mode only plans, which needs no root: it succeeds and writes nothing
        check = playbook(ansible_collection, "fleet.yml", inv, *args, "--check",
                         user=user, env=env)  # fmt: skip
        assert check.returncode == 0, check.output[-3000:]
        assert check.recap["live"]["failed"] == 0
        assert all(check.recap[name]["changed"] == 1 for name in images)  # they would change
        assert picture(top / "last") == original
        assert not list(home.glob("*-state"))

        run = playbook(ansible_collection, "fleet.yml", inv, *args, user=user, env=env)
        assert run.returncode == 2, run.output[-3000:]
        assert run.recap["live"]["failed"] == 1
        assert run.recap["canary"]["changed"] == run.recap["mate"]["changed"] == 1
        assert run.recap.get("last", {"changed": 0})["changed"] == 0, run.recap
        assert "Traceback" not in run.output
        (msg,) = re.findall(r'"msg": "(ctguard: error: [^"]*)"', run.output)
        assert "run it as root" in msg, msg
        assert picture(top / "last") == original  # the batch after the failure never ran
        assert not (home / "live-state").exists() and not (home / "last-state").exists()


def test_the_report_on_the_controller_counts_each_host_once(fleet: Fleet) -> None:
    """The report step: ``ctguard report`` over what the audits brought back, as text in
    the run's output and as one HTML page beside the reports directory. The RHEL 6 tree and
    the old host are copies of one snapshot (one hostname, no machine id): one host, and
    the older readings are duplicates."""
    names = {
        host: (fleet.tree(host) / "proc/sys/kernel/hostname").read_text().strip() for host in HOSTS
    }
    assert names["rhel6"] == names[OLD]
    report = json.loads(run_ctguard("report", str(fleet.reports), "--format", "json").stdout)
    assert report["unreadable"] == []
    hostnames = [h["hostname"] for h in report["hosts"] if h["netns"] is None]
    assert sorted(hostnames) == sorted(set(names.values()))
    assert report["duplicates"]  # the old host's and the RHEL 6 tree's readings
    for run in ("check", "apply", "again"):
        output = fleet.runs[run].output
        assert "dropping packets now" in output, run
    page = fleet.reports.parent / f"{fleet.reports.name}.html"
    html = page.read_text()
    assert html.lstrip().lower().startswith("<!doctype html")
    for name in set(names.values()):
        assert name in html
