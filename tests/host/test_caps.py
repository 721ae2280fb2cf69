"""Each program output is read up to its cap (host/caps.py), and what was cut is said.

A 63 MB `ps` capture made doctor take 24 s and 670 MB (issue 17). The snapshot tests pad
the ct306-kube-proxy-info fixture's `ps` with tens of MB of other processes, before or
after kube-proxy, and run doctor through the CLI with its address space capped.
"""

from __future__ import annotations

import io
import json
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ctguard.host import commands as commands_module
from ctguard.host.caps import CAPS, PS_CAP, Cap, Excerpt, excerpt, read_capped
from ctguard.host.commands import CapturedCommands, LiveCommands, Spec
from ctguard.host.root import HostRoot
from ctguard.missing import Missing
from helpers import ROOTS, ctguard_bin

MiB = 1024**2
ADDRESS_SPACE = 512 * MiB  # a 60 MB ps read whole took 670 MB (issue 17)
KUBE_ROOT = ROOTS / "doctor" / "ct306-kube-proxy-info"


def lines(count: int, width: int = 40) -> bytes:
    return b"".join(b"%7d /usr/bin/worker %s\n" % (n, b"x" * width) for n in range(count))


def test_head_keeps_whole_lines_and_says_how_much_was_cut() -> None:
    data = lines(1000)
    cap = Cap(10_000, "head", lost="processes after that were not seen")
    got = excerpt(data[:10_001], len(data), cap, "ps output")
    assert isinstance(got, Excerpt)
    assert got.text.endswith("\n") and len(got.text) <= 10_000
    assert data.startswith(got.text.encode())
    assert got.cut == (
        f"ps output cut at {len(got.text)} bytes of {len(data)} bytes; "
        "processes after that were not seen"
    )


def test_head_stops_at_the_line_cap() -> None:
    data = lines(50)
    got = excerpt(data, len(data), Cap(1 << 20, "head", 20, "rest not seen"), "ps output")
    assert isinstance(got, Excerpt)
    assert got.text.count("\n") == 20
    assert got.cut is not None and got.cut.startswith("ps output cut at 20 lines, ")


def test_tail_keeps_the_latest_whole_lines() -> None:
    data = lines(1000)
    got = excerpt(data[-10_000:], len(data), Cap(10_000, "tail", lost="older"), "dmesg output")
    assert isinstance(got, Excerpt)
    assert data.endswith(got.text.encode()) and got.text.startswith("    ")
    assert got.cut is not None and "only its last" in got.cut


def test_an_output_under_its_cap_is_whole_and_says_nothing() -> None:
    data = lines(10)
    for keep in ("head", "tail", "whole"):
        got = excerpt(data, len(data), Cap(1 << 20, keep, 100), "x")  # type: ignore[arg-type]
        assert got == Excerpt(data.decode())


def test_an_output_read_whole_over_its_cap_is_missing_not_cut() -> None:
    """A cut ruleset or counter list would read as one without what was cut."""
    data = lines(100)
    got = excerpt(data[:1001], len(data), Cap(1000), "iptables-save output")
    assert isinstance(got, Missing)
    assert got.reason == f"iptables-save output is {len(data)} bytes, more than the 1000 bytes read"


@pytest.mark.parametrize("keep", ["head", "tail"])
def test_read_capped_keeps_the_right_end(keep: str) -> None:
    data = lines(20_000)
    got = read_capped(io.BytesIO(data), Cap(64 * 1024, keep), "x")  # type: ignore[arg-type]
    assert isinstance(got, Excerpt)
    assert 0 < len(got.text) <= 64 * 1024
    assert (data.startswith if keep == "head" else data.endswith)(got.text.encode())


def test_a_live_program_is_read_up_to_its_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """The program writes 24 MiB of 55-byte lines (and 1 MiB to stderr, which must not
    block it); ctguard keeps the first 100,000 lines, counts the rest, and waits for the
    program's own exit (a kill would be 'exited -9')."""
    script = (
        "import sys\n"
        "sys.stderr.write('e' * (1 << 20))\n"
        "line = b'%7d /usr/bin/worker ' + b'x' * 30 + b'\\n'\n"
        "for n in range(24 * 1024 * 1024 // 55):\n"
        "    sys.stdout.buffer.write(line % n)\n"
    )
    monkeypatch.setitem(commands_module.SPECS, "ps", Spec((sys.executable, "-c", script)))
    got = LiveCommands().excerpt("ps")
    assert isinstance(got, Excerpt), got
    assert got.cut is not None and got.cut.startswith(f"ps output cut at {PS_CAP.max_lines} lines")
    assert got.cut.endswith("of 24.0 MiB; processes after that were not seen")
    assert got.text.count("\n") == PS_CAP.max_lines


def test_a_live_program_that_fails_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    script = "import sys; sys.stderr.write('no such table\\n'); sys.exit(2)"
    monkeypatch.setitem(commands_module.SPECS, "conntrack-S", Spec((sys.executable, "-c", script)))
    got = LiveCommands().output("conntrack-S")
    assert isinstance(got, Missing)
    assert got.reason.endswith("exited 2: no such table")


def test_a_captured_counter_list_over_its_cap_is_missing(tmp_path: Path) -> None:
    (tmp_path / "ctguard_commands").mkdir()
    (tmp_path / "ctguard_commands" / "conntrack-S").write_bytes(b"cpu=0 found=0\n" * 400_000)
    got = CapturedCommands(HostRoot(tmp_path)).output("conntrack-S")
    assert isinstance(got, Missing)
    assert "more than the 4.0 MiB read" in got.reason
    assert CAPS["conntrack-S"].keep == "whole"


def padded_root(tmp_path: Path, before: int, after: int) -> Path:
    """The kube-proxy fixture with ``before``/``after`` bytes of other processes around
    its own ps lines."""
    root = tmp_path / "root"
    shutil.copytree(KUBE_ROOT, root)
    ps = root / "ctguard_commands" / "ps"
    header, body = ps.read_bytes().split(b"\n", 1)
    pad = b"%7d /usr/bin/python3 /opt/app/worker.py --queue=jobs --token=" + b"t" * 200 + b"\n"
    with ps.open("wb") as out:
        out.write(header + b"\n")
        out.write(b"".join(pad % (40000 + n) for n in range(before // len(pad))))
        out.write(body)
        out.write(b"".join(pad % (90000 + n) for n in range(after // len(pad))))
    return root


def doctor_ct306(root: Path, code: int) -> dict[str, object]:
    done = subprocess.run(
        [ctguard_bin(), "doctor", "--root", str(root), "--format", "json", "--only", "CT306"],
        capture_output=True, text=True, timeout=120, check=False,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE,) * 2),
    )  # fmt: skip
    assert done.returncode == code, done.stderr
    (finding,) = json.loads(done.stdout)["findings"]
    return finding  # type: ignore[no-any-return]


def test_a_huge_ps_capture_past_kube_proxy_is_skipped_and_says_why(tmp_path: Path) -> None:
    """kube-proxy sits after 60 MB of other processes: past the cut, so CT306 cannot say
    there is none. It is skipped (not passed), naming the cut."""
    root = padded_root(tmp_path, before=60 * MiB, after=0)
    total = (root / "ctguard_commands" / "ps").stat().st_size
    finding = doctor_ct306(root, 3)  # 3: every check asked for (--only CT306) was skipped
    assert finding["status"] == "skipped"
    reason = str(finding["reason"])
    assert reason.startswith("no kube-proxy in the processes read, but ps output cut at ")
    assert reason.endswith(f" of {total / MiB:.1f} MiB; processes after that were not seen")


def test_a_huge_ps_capture_with_kube_proxy_in_its_head_is_found_with_the_cut(
    tmp_path: Path,
) -> None:
    finding = doctor_ct306(padded_root(tmp_path, before=0, after=60 * MiB), 0)
    assert (finding["status"], finding["severity"]) == ("found", "info")
    evidence = list(finding["evidence"])  # type: ignore[call-overload]
    assert evidence[0].startswith("kube-proxy (pid 1011) sets")
    assert evidence[-1].startswith("ps output cut at")


def test_a_stat_file_of_tens_of_megabytes_is_not_read(tmp_path: Path) -> None:
    """One line per possible CPU: 8192 CPUs are 1.3 MB. A larger one is crafted; it is
    refused by size (doctor falls back to the conntrack -S capture) instead of parsed."""
    root = tmp_path / "root"
    shutil.copytree(ROOTS / "modern-builtin", root)
    stat_file = root / "proc" / "net" / "stat" / "nf_conntrack"
    header, first = stat_file.read_text().splitlines()[:2]
    stat_file.write_text(header + "\n" + (first + "\n") * (5 * MiB // len(first)))
    done = subprocess.run(
        [ctguard_bin(), "doctor", "--root", str(root), "--format", "json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    evidence = [line for f in json.loads(done.stdout)["findings"] for line in f["evidence"]]
    assert any("/proc/net/stat/nf_conntrack: larger than 4194304 bytes" in e for e in evidence)


def test_conntrack_s_of_8192_cpus_is_read_whole(tmp_path: Path) -> None:
    """~250 bytes per CPU (conntrack-tools 1.4 prints every counter by name): 2 MB; the
    1 MiB cap it had read such a host's counters as missing."""
    line = (
        b"cpu=%d \tfound=0 invalid=1234 insert=0 insert_failed=0 drop=0 early_drop=0"
        b" error=0 search_restart=4567 clash_resolve=0 chaintoolong=0" + b" " * 130 + b"\n"
    )
    text = b"".join(line % cpu for cpu in range(8192))
    assert len(text) > 2 * 1024**2
    (tmp_path / "ctguard_commands").mkdir()
    (tmp_path / "ctguard_commands" / "conntrack-S").write_bytes(text)
    got = CapturedCommands(HostRoot(tmp_path)).output("conntrack-S")
    assert not isinstance(got, Missing), got
    assert got.count("\n") == 8192


def test_no_ps_capture_is_no_pass_either(tmp_path: Path) -> None:
    """Without the process list kube-proxy is as unseen as past a cut: skipped, not
    passed (it passed, while a cut list skipped)."""
    root = padded_root(tmp_path, before=0, after=0)
    (root / "ctguard_commands" / "ps").unlink()
    (root / "etc" / "tuned").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "tuned" / "active_profile").write_text("quiet\n")
    profile = root / "usr" / "lib" / "tuned" / "quiet" / "tuned.conf"
    profile.parent.mkdir(parents=True)
    profile.write_text("[main]\nsummary=no conntrack keys\n[sysctl]\nvm.swappiness=10\n")
    finding = doctor_ct306(root, 3)
    assert finding["status"] == "skipped"
    assert "processes not read" in str(finding["reason"])
    assert "kube-proxy unknown" in str(finding["reason"])
