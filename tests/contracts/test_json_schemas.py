"""Every JSON document ctguard prints or writes validates against its schema in
src/ctguard/schemas, for every fixture root the command applies to.

The commands run in this process through ``ctguard.cli.main`` (stdout captured), which keeps
its 450-odd runs within a few seconds; the ones that enter network namespaces run the console
script in a subprocess, inside a namespace this file creates (kernel tests). ARGV below is
the only place that spells a command line: a renamed flag is a one-line change there.

Roots: every snapshot root under tests/roots and examples/ (their ctguard_manifest.json are
validated too: ctguard's capture code wrote them), and a snapshot of this host taken here
with --no-table. A root a command does not apply to is listed in NOT_APPLICABLE with the
reason, and the test checks that it still fails the way the reason says.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from ctguard import schemas
from ctguard.cli import main
from ctguard.output.notrack_json import verify_json
from ctguard.remediation.journal import CommandRecord, JournalEntry, entry_to_json
from ctguard.table.summary import BREAKDOWNS
from ctguard.usecases.notrack import Verification, verify_verdict
from helpers import signals_kept
from netns_helpers import Netns

REPO = Path(__file__).parents[2]
ROOTS = REPO / "tests" / "roots"
PROXY_TABLE = REPO / "examples" / "proxy-table.txt.gz"
RHEL6 = REPO / "examples" / "rhel6-table-full"
CT201 = ROOTS / "doctor" / "ct201-max-10m"  # 8 GiB, max 10,485,760: refused without --force
SCHEMA_DIR = REPO / "src" / "ctguard" / "schemas"

# One line per command line; {placeholders} are filled in when a case runs (argv()).
WHAT_IF = "tcp_timeout_established=600,tcp_timeout_time_wait=30,udp_timeout=10"
ARGV: dict[str, str] = {
    "doctor": "doctor --format json --root {root}",
    "status": "status --json --interval 0 --root {root}",
    "analyze": "analyze --format json --by all --top 0 --root {root}",
    "analyze-what-if": "analyze --format json --root {root} --what-if {what_if}",
    "analyze-file": "analyze {file} --format json --by all --top 0",
    "analyze-file-what-if": "analyze {file} --format json --root {root} --what-if {what_if}",
    "analyze-netns-all": "analyze --netns all --format json --by all",
    "plan": "plan --format json --root {root}",
    "plan-refused": "plan --format json --root {root} --target-max 10485760",
    "plan-forced": "plan --format json --root {root} --target-max 10485760 --force"
    " --established-timeout 7440 --timeout tcp_timeout_time_wait=30",
    "notrack": "notrack --port 8983 --format json --root {root}",
    "notrack-udp-client": "notrack --port 53 --proto udp --direction both --format json"
    " --root {root}",
    "notrack-apply": "notrack --port 8983 --apply --yes --netns {netns} --state-dir {state}",
    "notrack-verify": "notrack --port 8983 --verify --window 0.5 --format json --netns {netns}",
    "disable": "disable --format json --root {root}",
    "snapshot": "snapshot --no-table --json -o {out}",
    "status-live": "status --json --interval 0",
    "status-live-rate": "status --json --interval 0.2",
    "doctor-live": "doctor --format json --no-table",
    "apply": "apply --root {root} --yes --format json",
    "apply-dry-run": "apply --root {root} --dry-run --format json",
    "rollback": "rollback --root {root} --yes --format json",
    "rollback-list": "rollback --list --format json --root {root}",
    "rollback-list-state": "rollback --list --format json --state-dir {state}",
    "explain": "explain {id} --format json",
    "explain-index": "explain --format json",
    "top-once": "top --once --interval 0.3 --format json --netns {netns}",
    "report": "report --format json {root}",
    "report-fleet": "report --format json {root} {file}",
}

# (command, root relative to the repository) -> why the command does not apply there, and
# the exit code that says so (with nothing on stdout).
NOT_APPLICABLE: dict[tuple[str, str], tuple[int, str]] = {
    ("status", "tests/roots/garbage-stat"): (3, "its stat file is garbage: exit 3 by design"),
    ("notrack", "tests/roots/doctor/ct102-drops-with-chaintoolong"): (3, "no ruleset captured"),
    ("notrack", "tests/roots/analyze/proxy-host"): (3, "no ruleset captured: addresses only"),
}
# which document each command prints
PRINTS: dict[str, str] = {
    "doctor": schemas.DOCTOR,
    "status": schemas.STATUS,
    "analyze": schemas.ANALYZE,
    "plan": schemas.PLAN,
    "notrack": schemas.NOTRACK,
    "disable": schemas.DISABLE,
    "report": schemas.REPORT,
}


# -- running and validating -----------------------------------------------------------------
def argv(case: str, **values: str | Path) -> list[str]:
    """ARGV[case] as a list, placeholders filled (after the split: a path may hold spaces)."""
    filled = {"what_if": WHAT_IF, **{k: str(v) for k, v in values.items()}}
    return [arg.format_map(filled) for arg in ARGV[case].split()]


def run(args: list[str]) -> tuple[int, str, str]:
    """``ctguard ARGS`` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with signals_kept(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def run_script(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    here = Path(sys.executable).parent / "ctguard"
    script = str(here) if here.is_file() else shutil.which("ctguard") or "ctguard"
    return subprocess.run([script, *args], capture_output=True, text=True, timeout=timeout,
                          check=False, stdin=subprocess.DEVNULL)  # fmt: skip


@cache
def validator(schema_id: str) -> Draft202012Validator:
    schema = schemas.load(schemas.NAMES[schema_id])
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def doc_id(doc: dict[str, Any]) -> str:
    return str(doc["format"] if "format" in doc else doc["schema"])


def errors(doc: Any, schema_id: str) -> list[str]:
    found = validator(schema_id).iter_errors(doc)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message[:300]}" for e in found]


def assert_valid(doc: Any, schema_id: str) -> None:
    assert isinstance(doc, dict), doc
    assert doc_id(doc) == schema_id
    problems = errors(doc, schema_id)
    assert not problems, "\n".join(problems[:20])


def run_valid(args: list[str], schema_id: str, codes: tuple[int, ...] = (0, 1, 2)) -> Any:
    code, out, err = run(args)
    assert code in codes, (args, code, err)
    doc = json.loads(out)
    assert_valid(doc, schema_id)
    return doc


# -- roots ------------------------------------------------------------------------------------
def _roots() -> list[Path]:
    manifests = [*ROOTS.rglob("ctguard_manifest.json"), RHEL6 / "ctguard_manifest.json"]
    return sorted(m.parent for m in manifests)


FIXTURE_ROOTS = _roots()
TABLE_FILES = ("proc/net/nf_conntrack", "ctguard_commands/conntrack-L")


def _with_table(root: Path) -> bool:
    """The command analyze reads in a snapshot: the procfs table, else conntrack -L."""
    return any((root / path).is_file() for path in TABLE_FILES)


def _rel(root: Path) -> str:
    return root.relative_to(REPO).as_posix()


@pytest.fixture(scope="module")
def live_snapshot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """This host, captured with --no-table (read-only; the manifest is printed too)."""
    out = tmp_path_factory.mktemp("live") / "snap"
    code, text, err = run(argv("snapshot", out=f"{out}/"))
    assert code == 0, err
    return out, json.loads(text)


# -- the schemas themselves -----------------------------------------------------------------
def test_every_schema_is_valid_draft_2020_12_and_names_its_id() -> None:
    for schema_id, name in schemas.NAMES.items():
        schema = schemas.load(name)
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["title"] == schema_id
        key = "format" if schema_id == schemas.SNAPSHOT else "schema"
        assert schema["properties"][key] == {"const": schema_id}, name
        assert key in schema["required"]


def test_every_schema_file_is_one_known_id() -> None:
    """test_each_schema_accepts_a_real_document_and_rejects_it_broken runs over the files."""
    on_disk = sorted(p.name for p in SCHEMA_DIR.glob("*.json"))
    assert on_disk == sorted(f"{name}.schema.json" for name in schemas.NAMES.values())
    assert len(set(schemas.NAMES.values())) == len(schemas.NAMES)


def test_the_docs_table_lists_every_id_with_its_schema_file() -> None:
    doc = (REPO / "docs" / "json-schemas.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", doc)
    assert all(not link.startswith(("http:", "https:", "/")) for link in links), links
    assert all((REPO / "docs" / link).resolve().is_file() for link in links), links
    for schema_id, name in schemas.NAMES.items():
        row = f"| `{schema_id}` |"
        assert row in doc, schema_id
        line = next(line for line in doc.splitlines() if line.startswith(row))
        assert f"](../src/ctguard/schemas/{name}.schema.json) |" in line


def test_the_state_words_are_the_scanners() -> None:
    from ctguard.table.keys import STATES

    states = schemas.load("analyze")["$defs"]["state"]["enum"]
    assert states == [*STATES, "OTHER"]


# -- fixture roots: doctor, status, plan, notrack, disable ----------------------------------------
@pytest.mark.parametrize("command", sorted(PRINTS.keys() - {"analyze"}))
@pytest.mark.parametrize("root", FIXTURE_ROOTS, ids=_rel)
def test_root_output_is_valid(command: str, root: Path) -> None:
    args = argv(command, root=root)
    skip = NOT_APPLICABLE.get((command, _rel(root)))
    if skip is not None:
        code, out, _ = run(args)
        assert (code, out) == (skip[0], ""), f"{command} now applies to {_rel(root)}?"
        return
    run_valid(args, PRINTS[command])


@pytest.mark.parametrize("root", FIXTURE_ROOTS, ids=_rel)
def test_root_manifest_is_valid(root: Path) -> None:
    assert_valid(json.loads((root / "ctguard_manifest.json").read_text()), schemas.SNAPSHOT)


TABLE_ROOTS = [root for root in FIXTURE_ROOTS if _with_table(root)]


@pytest.mark.parametrize("case", ["analyze", "analyze-what-if"])
@pytest.mark.parametrize("root", TABLE_ROOTS, ids=_rel)
def test_root_analysis_is_valid(case: str, root: Path) -> None:
    doc = run_valid(argv(case, root=root), schemas.ANALYZE, codes=(0,))
    assert ("what_if" in doc) == (case == "analyze-what-if")


def test_there_are_roots_with_a_table() -> None:
    assert len(TABLE_ROOTS) >= 4, TABLE_ROOTS


def test_a_dump_file_analysis_is_valid() -> None:
    doc = run_valid(argv("analyze-file", file=PROXY_TABLE), schemas.ANALYZE, codes=(0,))
    assert doc["entries"] == 20000
    assert set(doc["by"]) == {"family", *BREAKDOWNS}
    doc = run_valid(argv("analyze-file-what-if", file=PROXY_TABLE, root=RHEL6), schemas.ANALYZE)
    asked = [pair.split("=")[0] for pair in WHAT_IF.split(",")]
    assert [row["timeout"] for row in doc["what_if"]] == asked


def test_a_file_with_bad_lines_is_valid(tmp_path: Path) -> None:
    dump = tmp_path / "table.txt"
    dump.write_text(
        "ipv4     2 tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40000"
        " dport=443 src=10.0.0.2 dst=10.0.0.1 sport=443 dport=40000 [ASSURED] mark=0 zone=0"
        " use=1\nnot a conntrack line\n"
    )
    doc = run_valid(argv("analyze-file", file=dump), schemas.ANALYZE, codes=(0,))
    assert (doc["bad_lines"]["count"], doc["bad_lines"]["first_line"]) == (1, 2)


def test_a_fleet_report_is_valid(tmp_path: Path) -> None:
    """Every snapshot under tests/roots at once, beside a doctor document that has no host
    and a file that is not ctguard's: every part of the document is filled."""
    _code, out, _err = run(argv("doctor", root=RHEL6))
    document = json.loads(out)
    del document["host"], document["created_utc"]  # as doctor wrote it before it named hosts
    (tmp_path / "old-doctor.json").write_text(json.dumps(document))
    (tmp_path / "package.json").write_text('{"name": "left-pad"}')
    doc = run_valid(argv("report-fleet", root=ROOTS, file=tmp_path), schemas.REPORT)
    assert all(doc[key] for key in ("fleet", "findings", "hosts", "duplicates", "unreadable"))
    assert all(q["hosts"] for q in doc["fleet"]), "a question no root answers yes to"
    assert None in {h["hostname"] for h in doc["hosts"]}


@pytest.mark.parametrize("case", ["plan-refused", "plan-forced"])
def test_refused_and_forced_plans_are_valid(case: str) -> None:
    doc = run_valid(argv(case, root=CT201), schemas.PLAN)
    assert doc["refusal"] is not None
    assert doc["forced"] is (case == "plan-forced")
    if case == "plan-forced":
        assert doc["options"]["timeouts"] == {"tcp_timeout_time_wait": 30}


@pytest.mark.parametrize(
    "root", [ROOTS / "doctor" / "ct505-hot-port", ROOTS / "not-loaded"], ids=_rel
)
def test_a_udp_client_notrack_plan_is_valid(root: Path) -> None:
    run_valid(argv("notrack-udp-client", root=root), schemas.NOTRACK)


@pytest.mark.parametrize("command", ["plan", "notrack", "disable", "apply-dry-run"])
def test_output_for_a_snapshot_archive_is_valid(command: str, rhel6_archive: Path) -> None:
    """The commands that only read take a snapshot archive as they take its directory."""
    schema_id = schemas.APPLY if command == "apply-dry-run" else PRINTS[command]
    run_valid(argv(command, root=rhel6_archive), schema_id)


@pytest.fixture(scope="module")
def rhel6_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    archive = tmp_path_factory.mktemp("archive") / "rhel6.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for child in sorted(RHEL6.iterdir()):
            tar.add(child, arcname=child.name)
    return archive


# -- this host --------------------------------------------------------------------------------
def test_snapshot_manifest_of_this_host_is_valid(
    live_snapshot: tuple[Path, dict[str, Any]],
) -> None:
    path, printed = live_snapshot
    assert_valid(printed, schemas.SNAPSHOT)
    assert json.loads((path / "ctguard_manifest.json").read_text()) == printed


@pytest.mark.parametrize("command", ["doctor", "status"])
def test_output_for_the_snapshot_of_this_host_is_valid(
    command: str, live_snapshot: tuple[Path, dict[str, Any]]
) -> None:
    run_valid(argv(command, root=live_snapshot[0]), PRINTS[command], codes=(0, 1, 2, 3))


@pytest.mark.parametrize(
    ("case", "schema_id"),
    [
        ("status-live", schemas.STATUS),
        ("status-live-rate", schemas.STATUS),
        ("doctor-live", schemas.DOCTOR),
    ],
)
def test_live_output_is_valid(case: str, schema_id: str) -> None:
    run_valid(argv(case), schema_id, codes=(0, 1, 2, 3))


# -- apply, rollback, the journal ---------------------------------------------------------------
def _journals(tree: Path) -> list[dict[str, Any]]:
    files = sorted((tree / "var/lib/ctguard/journal").glob("*/journal.json"))
    return [json.loads(f.read_text()) for f in files]


@pytest.mark.parametrize("source", [RHEL6, CT201, ROOTS / "apply" / "rhel6-service"], ids=_rel)
def test_apply_journal_and_rollback_list_are_valid(tmp_path: Path, source: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(source, tree, symlinks=True)
    would = run_valid(argv("apply-dry-run", root=tree), schemas.APPLY, codes=(0,))
    assert would["status"] == "dry-run" and would["changed"]
    applied = run_valid(argv("apply", root=tree), schemas.APPLY, codes=(0,))
    (journal,) = _journals(tree)
    assert_valid(journal, schemas.JOURNAL)
    assert journal["state"] == "applied"
    assert (applied["status"], applied["entry_id"]) == ("applied", journal["id"])
    again = run_valid(argv("apply", root=tree), schemas.APPLY, codes=(0,))
    assert again["status"] in ("in-place", "nothing-planned")
    listed = run_valid(argv("rollback-list", root=tree), schemas.JOURNAL_LIST, codes=(0,))
    assert [e["state"] for e in listed["entries"]] == ["applied"]

    rolled = run_valid(argv("rollback", root=tree), schemas.ROLLBACK, codes=(0,))
    assert (rolled["status"], rolled["entry_id"]) == ("rolled-back", journal["id"])
    twice = run_valid(argv("rollback", root=tree), schemas.ROLLBACK, codes=(0,))
    assert twice["status"] == "nothing-to-roll-back" and twice["reason"]
    (journal,) = _journals(tree)
    assert_valid(journal, schemas.JOURNAL)
    assert journal["state"] == "rolled-back" and journal["rolled_back"]
    # an entry whose journal.json is gone is listed as damaged
    (tree / "var/lib/ctguard/journal/20990101T000000Z-0000").mkdir(mode=0o700)
    listed = run_valid(argv("rollback-list", root=tree), schemas.JOURNAL_LIST, codes=(0,))
    assert [e["state"] for e in listed["entries"]] == ["damaged", "rolled-back"]


def test_an_empty_journal_list_is_valid(tmp_path: Path) -> None:
    listed = run_valid(argv("rollback-list-state", state=tmp_path / "none"), schemas.JOURNAL_LIST)
    assert listed["entries"] == []


def test_a_journal_with_commands_is_valid() -> None:
    """The records of notrack/disable --apply (live only: see the kernel test below too)."""
    command = CommandRecord(
        what="add 2 nft rule(s)", argv=("nft", "--echo", "--handle", "-f", "-"),
        stdin="add table inet ctguard\n", undo_argv=("nft", "-f", "-"), undo_stdin="",
        output="", undo_check="nft", done=True, undo_from="nft-echo",
        tagged_before=("inet filter input 7",),
    )  # fmt: skip
    entry = JournalEntry(
        id="20261125T143357Z-3f2a", created="2026-11-25T14:33:57.102934+00:00",
        ctguard_version="0.1.0", state="applied", meta={"command": "notrack", "netns": "web1"},
        commands=(command,),
    )  # fmt: skip
    assert_valid(json.loads(entry_to_json(entry)), schemas.JOURNAL)


# -- notrack --verify and analyze --netns all -----------------------------------------------------
@pytest.mark.parametrize(
    ("drops", "on_ports", "others"),
    [((), 0, 5), ((), 0, 0), (("tcp dport 8983 coming in",), 2, 5), ((), 1, 0)],
)
def test_verify_documents_are_valid(drops: tuple[str, ...], on_ports: int, others: int) -> None:
    """The renderer alone, for each verdict (the live run is a kernel test below)."""
    from ctguard.host.flow_watch import NewFlow

    flows = tuple(NewFlow("tcp", 40000 + n, 8983) for n in range(on_ports))
    fates = ("tcp dport 8983 coming in: accepted on input",)
    doc = verify_json(Verification(fates, drops, 3.0, flows, others))
    assert doc["exit_code"] == verify_verdict(drops, on_ports, others)
    assert_valid(doc, schemas.NOTRACK_VERIFY)


def test_netns_all_without_entries_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    """The other shape of --netns all (no namespace holds an entry), made on any host by
    giving the command an empty namespace list; the one with an analysis is a kernel test."""
    import ctguard.host.namespaces as namespaces

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(namespaces, "list_namespaces", lambda *a, **k: [])
    monkeypatch.setattr(namespaces, "namespace_usage", lambda *a, **k: [])
    doc = run_valid(argv("analyze-netns-all"), schemas.ANALYZE, codes=(0,))
    assert (doc["namespaces"], doc["note"]) == ([], "no namespace holds any entry")


@pytest.mark.kernel
def test_top_frame_is_valid(netns: Netns) -> None:
    netns.udp_flows(50)
    done = run_script(argv("top-once", netns=netns.name))
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()  # one frame, one line
    frame = json.loads(line)
    assert_valid(frame, schemas.TOP)
    assert frame["netns"] == netns.name and frame["rates"] is not None
    assert frame["table"]["entries"] >= 50


@pytest.mark.kernel
def test_live_netns_documents_are_valid(netns: Netns, tmp_path: Path) -> None:
    """In a namespace of its own: notrack --apply (a journal with commands), the journal
    list, notrack --verify, and analyze --netns all with this namespace the busiest."""
    state = tmp_path / "state"
    done = run_script(argv("notrack-apply", netns=netns.name, state=state))
    assert done.returncode == 0, done.stderr
    (journal,) = [json.loads(p.read_text()) for p in state.glob("journal/*/journal.json")]
    assert_valid(journal, schemas.JOURNAL)
    assert journal["commands"]
    code, out, err = run(argv("rollback-list-state", state=state))
    assert code == 0, err
    assert_valid(json.loads(out), schemas.JOURNAL_LIST)

    done = run_script(argv("notrack-verify", netns=netns.name))
    assert done.returncode in (0, 2, 3), done.stderr
    verified = json.loads(done.stdout)
    assert_valid(verified, schemas.NOTRACK_VERIFY)
    assert verified["exit_code"] == done.returncode

    netns.udp_flows(300)
    done = run_script(argv("analyze-netns-all"), timeout=120)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert_valid(doc, schemas.ANALYZE)
    assert "note" not in doc and doc["namespaces"], doc.get("note")


# -- validation can fail --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the RHEL 6 example after 'apply --root' (its journal is a real one)."""
    tree = tmp_path_factory.mktemp("applied") / "tree"
    shutil.copytree(RHEL6, tree, symlinks=True)
    code, out, err = run(argv("apply", root=tree))
    assert code == 0, err
    (tree.parent / "apply.json").write_text(out)
    return tree


def _a_document(schema_id: str, applied: Path) -> dict[str, Any]:
    """A real document of each kind: what a command printed or wrote (notrack --verify: its
    renderer, as the live run needs a kernel)."""
    if schema_id == schemas.NOTRACK_VERIFY:
        return verify_json(Verification(("x: accepted on input",), (), 1.0, (), 3))
    if schema_id == schemas.APPLY:
        return dict(json.loads((applied.parent / "apply.json").read_text()))
    if schema_id == schemas.ROLLBACK:
        tree = applied.parent / "rolled-back"
        if not tree.exists():
            shutil.copytree(applied, tree, symlinks=True)
        return dict(json.loads(run(argv("rollback", root=tree))[1]))
    if schema_id == schemas.JOURNAL:
        return _journals(applied)[0]
    if schema_id == schemas.SNAPSHOT:
        return dict(json.loads((RHEL6 / "ctguard_manifest.json").read_text()))
    if schema_id == schemas.JOURNAL_LIST:
        args = argv("rollback-list", root=applied)
    elif schema_id == schemas.EXPLAIN:
        args = argv("explain", id="CT304")
    elif schema_id == schemas.TOP:  # live only: a frame as the top tests build it
        from ctguard.output.top_json import top_document
        from test_top import frame

        return top_document(frame())
    elif schema_id == schemas.ANALYZE:
        args = argv("analyze-file-what-if", file=PROXY_TABLE, root=RHEL6)
    else:
        command = next(c for c, printed in PRINTS.items() if printed == schema_id)
        args = argv(command, root=RHEL6)
    return dict(json.loads(run(args)[1]))


@pytest.mark.parametrize("name", sorted(p.name.split(".")[0] for p in SCHEMA_DIR.glob("*.json")))
def test_each_schema_accepts_a_real_document_and_rejects_it_broken(
    name: str, applied: Path
) -> None:
    """Runs over the schema files on disk: every one of them is used here."""
    schema_id = next(i for i, n in schemas.NAMES.items() if n == name)
    doc = _a_document(schema_id, applied)
    assert_valid(doc, schema_id)
    required = schemas.load(name)["required"]
    for key in required:
        broken = copy.deepcopy(doc)
        del broken[key]
        assert errors(broken, schema_id), f"{name} without {key} passed"
        broken[key] = [doc[key]]  # no key of any document is a list of itself
        assert errors(broken, schema_id), f"{name} with {key} as a list passed"
    broken = {**copy.deepcopy(doc), "surprise": 1}
    assert errors(broken, schema_id), f"{name} with an unknown key passed"


def test_explain_documents_are_valid() -> None:
    from ctguard.catalogue import CATALOGUE

    index = run_valid(argv("explain-index"), schemas.EXPLAIN, codes=(0,))
    assert [row["id"] for row in index["index"]] == list(CATALOGUE)
    for pitfall_id in CATALOGUE:
        story = run_valid(argv("explain", id=pitfall_id), schemas.EXPLAIN, codes=(0,))
        assert story["story"]["id"] == pitfall_id


def test_validation_rejects_wrong_values_deep_inside(applied: Path) -> None:
    doctor = _a_document(schemas.DOCTOR, applied)
    found = next(f for f in doctor["findings"] if f["status"] == "found")
    found["severity"] = "ok"  # a finding is info, warning or critical
    assert errors(doctor, schemas.DOCTOR)
    status = _a_document(schemas.STATUS, applied)
    assert status["counters"]["mode"] == "total"
    status["counters"]["drop"] = 1.5  # totals are whole numbers
    assert errors(status, schemas.STATUS)
    status = _a_document(schemas.STATUS, applied)
    status["sysctls"]["nf_conntrack_max"] = "65536"
    assert errors(status, schemas.STATUS)
    plan = _a_document(schemas.PLAN, applied)
    plan["files"][0]["after_sha256"] = "not a hash"
    assert errors(plan, schemas.PLAN)
    disable = _a_document(schemas.DISABLE, applied)
    assert disable["status"] == "refused"
    disable["exit_code"] = 0  # a refusal exits 2
    assert errors(disable, schemas.DISABLE)
    journal = _a_document(schemas.JOURNAL, applied)
    journal["files"][0]["mode"] = "0644"  # the journal keeps the mode as a number
    assert errors(journal, schemas.JOURNAL)
