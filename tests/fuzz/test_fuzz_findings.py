"""One test for each crash the snapshot fuzz found (test_snapshot_readers.py), with what an
operator should get instead; docs/design.md §10 lists them."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import pytest

from ctguard.cli import main

REPO = Path(__file__).resolve().parents[2]
RHEL76 = REPO / "tests" / "roots" / "doctor" / "ct304-rhel76-greps-sysctl-d-no-link"


def ctguard(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_apply_keeps_the_bytes_of_a_sysctl_conf_that_is_not_utf8(tmp_path: Path) -> None:
    """Found: plan crashed (UnicodeEncodeError) when the ctguard block went into a
    sysctl.conf holding a Latin-1 comment. The block is added; the file's other bytes stay
    exactly as they were (sysctl reads bytes, and the comment is not ours to re-encode)."""
    root = tmp_path / "root"
    shutil.copytree(RHEL76, root, symlinks=True)
    conf = root / "etc" / "sysctl.conf"
    original = conf.read_bytes().replace(b"# To override", b"# Param\xe8tres: to override")
    conf.write_bytes(original)
    larger = ("--target-max", "300000")  # sysctl.conf sets 262144
    code, out, err = ctguard("plan", "--root", str(root), "--format", "json", *larger)
    assert code in (0, 1, 2), err
    assert "/etc/sysctl.conf" in out
    code, _, err = ctguard("apply", "--root", str(root), "--yes", *larger)
    assert code == 0, err
    after = conf.read_bytes()
    assert after.startswith(original), after[:300]
    assert b"net.netfilter.nf_conntrack_max = 300000" in after[len(original) :]


IDLE = REPO / "tests" / "roots" / "disable" / "modular-idle"  # nothing uses nf_conntrack
INJECTED = "install nf_nat touch pwned"


def _idle_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(IDLE, root, symlinks=True)
    return root


def _no_trace_of_the_injection(root: Path, *outputs: str) -> None:
    for text in outputs:
        assert "\n" + INJECTED not in text and "\ninstall nf_nat" not in text, text
    written = [p for p in root.rglob("*") if p.is_file() and INJECTED.encode() in p.read_bytes()]
    assert written == [], written


def test_a_holder_that_is_no_module_name_is_refused_not_planned(tmp_path: Path) -> None:
    """Found: a holders/ entry named "evil\\ninstall nf_nat touch pwned" (a crafted snapshot;
    no kernel module can be named so) went as it was into disable's modprobe.d file, as a
    second `install` line that runs a command at the next modprobe, and into the printed
    `modprobe -r` commands. Now the holders reader refuses the name: disable and status stop
    with one line naming it, doctor reports the presence unknown."""
    root = _idle_root(tmp_path)
    holders = root / "sys" / "module" / "nf_conntrack" / "holders"
    holders.mkdir(parents=True, exist_ok=True)
    (holders / f"evil\n{INJECTED}").write_bytes(b"")
    for args in (("disable",), ("disable", "--format", "json"), ("status", "--interval", "0"),
                 ("disable", "--apply", "--yes")):  # fmt: skip
        code, out, err = ctguard(*args, "--root", str(root))
        assert code == 3, (args, code, out, err)
        assert err.count("\n") == 1 and "is not a module name" in err, err
        assert "'evil\\ninstall nf_nat touch pwned'" in err, err  # shown escaped, on one line
        _no_trace_of_the_injection(root, out, err)
    code, out, err = ctguard("doctor", "--root", str(root))
    assert "conntrack unknown" in out.splitlines()[0], out
    _no_trace_of_the_injection(root, out, err)


def test_a_proc_modules_user_that_is_no_module_name_is_refused(tmp_path: Path) -> None:
    """The same through /proc/modules' "used by" column: "$(reboot)" would be printed in a
    `modprobe -r` line for the operator to paste."""
    root = _idle_root(tmp_path)
    modules = root / "proc" / "modules"
    modules.write_bytes(modules.read_bytes().replace(
        b"nf_conntrack 188416 0 - Live", b"nf_conntrack 188416 1 $(reboot), Live"
    ))  # fmt: skip
    code, out, err = ctguard("disable", "--root", str(root))
    assert code == 3, (code, out, err)
    assert "'$(reboot)' is not a module name" in err, err
    assert "$(reboot)" not in out


def _valid(doc_text: str, name: str) -> dict[str, object]:
    import json

    from jsonschema import Draft202012Validator

    from ctguard import schemas

    doc: dict[str, object] = json.loads(doc_text)
    problems = [e.message for e in Draft202012Validator(schemas.load(name)).iter_errors(doc)]
    assert not problems, problems[:5]
    return doc


def test_plan_reads_a_negative_max_as_the_kernel_does(tmp_path: Path) -> None:
    """Found: with nf_conntrack_max = -1 (old proc_dointvec kernels accept it) status read it
    as the unsigned 4294967295, but plan kept -1: 'keeps today's value', -256 bytes, JSON
    outside the schema. The reader now gives every command the kernel's value: the table is
    effectively unbounded, so doctor flags CT201 and plan lowers the max to the configured
    262144 (tests/roots/README.md: 0.83 % of MemTotal)."""
    root = tmp_path / "root"
    shutil.copytree(REPO / "tests" / "roots" / "modern-builtin", root, symlinks=True)
    (root / "proc/sys/net/netfilter/nf_conntrack_max").write_text("-1\n")
    code, out, err = ctguard("plan", "--root", str(root), "--format", "json")
    assert code in (0, 1, 2), err
    plan = _valid(out, "plan")
    sizing = plan["sizing"]
    assert isinstance(sizing, dict)
    assert sizing["max"]["current"] == 2**32 - 1
    assert sizing["max"]["value"] == 262144
    code, out, err = ctguard("doctor", "--root", str(root), "--only", "CT201", "--format", "json")
    assert code == 2, err  # CRITICAL
    (finding,) = _valid(out, "doctor")["findings"]  # type: ignore[misc]
    assert (finding["status"], finding["severity"]) == ("found", "critical"), finding
    code, out, err = ctguard("status", "--root", str(root), "--json", "--interval", "0")
    assert code in (0, 1, 2), err
    status = _valid(out, "status")
    assert any("reads it as unsigned" in note for note in status["notes"])  # type: ignore[attr-defined]


def test_plan_on_an_unloaded_host_with_a_negative_legacy_max(tmp_path: Path) -> None:
    """The fuzz case itself: /proc/sys/net/nf_conntrack_max = -1 on a host where conntrack
    was never loaded; plan must still print a document its schema accepts."""
    root = tmp_path / "root"
    shutil.copytree(REPO / "tests" / "roots" / "not-loaded", root, symlinks=True)
    (root / "proc/sys/net").mkdir(parents=True, exist_ok=True)
    (root / "proc/sys/net/nf_conntrack_max").write_text("-1")
    code, out, err = ctguard("plan", "--root", str(root), "--format", "json")
    assert code in (0, 1, 2), err
    _valid(out, "plan")


def test_a_negative_hashsize_parameter_is_refused(tmp_path: Path) -> None:
    """Found: /sys/module/nf_conntrack/parameters/hashsize = -1 went into status's JSON as
    hashsize_param -1 (outside the schema). The kernel prints it with param_get_uint, so a
    negative one is a damaged file: status stops with one line naming it, doctor reports the
    presence unknown with that reason."""
    root = tmp_path / "root"
    shutil.copytree(REPO / "tests" / "roots" / "modern-builtin", root, symlinks=True)
    (root / "sys/module/nf_conntrack/parameters/hashsize").write_text("-1\n")
    code, out, err = ctguard("status", "--root", str(root), "--json", "--interval", "0")
    assert (code, out) == (3, ""), (code, out)
    assert err == (
        "ctguard: error: /sys/module/nf_conntrack/parameters/hashsize is negative (-1):"
        " the kernel prints it unsigned\n"
    )
    code, out, err = ctguard("doctor", "--root", str(root))
    assert "conntrack unknown" in out.splitlines()[0], out


def _plan_sizing(root: Path) -> object:
    import json

    code, out, err = ctguard("plan", "--root", str(root), "--format", "json")
    assert code in (0, 1, 2), err
    return json.loads(_valid_text(out, "plan"))["sizing"]


def _valid_text(out: str, name: str) -> str:
    _valid(out, name)
    return out


@pytest.mark.parametrize("value", ["-1", "-9223372036854775809", "1_000", "+5"])
def test_a_memavailable_no_kernel_prints_counts_as_absent(tmp_path: Path, value: str) -> None:
    """Found: MemAvailable -1 kB made plan's memory budget -1024 bytes (plan JSON outside its
    schema). The kernel prints meminfo as unsigned decimals (and clamps MemAvailable at 0),
    so such a line is damage: plan sizes as for a kernel without MemAvailable (before 3.14)."""
    base = REPO / "tests" / "roots" / "modern-builtin"
    damaged, absent = tmp_path / "damaged", tmp_path / "absent"
    shutil.copytree(base, damaged, symlinks=True)
    shutil.copytree(base, absent, symlinks=True)
    lines = (base / "proc/meminfo").read_text().splitlines(keepends=True)
    (damaged / "proc/meminfo").write_text(
        "".join(f"MemAvailable:   {value} kB\n" if line.startswith("MemAvailable:") else line
                for line in lines)
    )  # fmt: skip
    (absent / "proc/meminfo").write_text(
        "".join(line for line in lines if not line.startswith("MemAvailable:"))
    )
    assert _plan_sizing(damaged) == _plan_sizing(absent)
