"""The sh collector (`ctguard collector`) in a real namespace, under dash and busybox sh:
`doctor --root` of its archive equals that of `ctguard snapshot --netns` of the same
namespace (issue 19)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from ctguard.snapshot.collector import collector_script
from helpers import extra_shells, manifest_of, posix_argv, run_ctguard
from netns_helpers import Netns

pytestmark = pytest.mark.kernel

SHELLS = {
    "dash": [shutil.which("dash") or "dash"],
    "busybox": [shutil.which("busybox") or "busybox", "sh"],
    **{name: posix_argv(path) for name, path in extra_shells().items()},  # CTGUARD_TEST_SHELLS
}


def doctor(archive: Path, fmt: str) -> str:
    """doctor's output, but for when the snapshot was taken (the two captures differ)."""
    done = run_ctguard("doctor", "--root", str(archive), "--format", fmt)
    assert done.returncode in (0, 1, 2), done.stderr
    if fmt != "json":
        return done.stdout
    document = json.loads(done.stdout)
    assert document.pop("created_utc")
    return json.dumps(document, indent=2)


@pytest.mark.parametrize("table", [True, False], ids=["table", "no-table"])
@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_collector_in_a_namespace_reads_as_ctguard_snapshot(
    netns: Netns, tmp_path: Path, shell: str, table: bool
) -> None:
    netns.udp_flows(300)
    script = tmp_path / "ctguard-collect.sh"
    script.write_text(collector_script())
    out = tmp_path / "sh"
    out.mkdir()
    extra = [] if table else ["--no-table"]
    env = {**os.environ, "LC_ALL": "C"}
    done = subprocess.run(
        [*SHELLS[shell], str(script), "--netns", netns.name, "-o", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (archive,) = out.iterdir()
    python = tmp_path / "py.tar.gz"
    done = run_ctguard("snapshot", "--netns", netns.name, "-o", str(python), *extra)
    assert done.returncode == 0, done.stderr

    got, want = manifest_of(archive), manifest_of(python)
    assert got.pop("collector").startswith("ctguard-collect.sh")
    assert abs(got.pop("netns_born") - want.pop("netns_born")) < 2  # whole seconds in sh
    for key in ("created_utc",):
        got.pop(key), want.pop(key)
    assert got == want
    if table:
        assert "/proc/net/nf_conntrack" in got["captured"]
    assert any(p.startswith("/ctguard_init_netns/") for p in got["captured"])
    for fmt in ("json", "text"):
        assert doctor(archive, fmt) == doctor(python, fmt)


def test_collector_without_root_records_what_it_could_not_read(netns: Netns) -> None:
    """As nobody (in the namespace, so the host's table is not touched): the archive is
    written, and the manifest says what needed root and why."""
    netns.udp_flows(50)
    with tempfile.TemporaryDirectory(prefix="ctguard-collector-") as tmp:
        base = Path(tmp)
        base.chmod(0o755)
        script = base / "ctguard-collect.sh"
        script.write_text(collector_script())
        script.chmod(0o644)
        out = base / "out"
        out.mkdir()
        out.chmod(0o777)  # nobody's to write in
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        done = netns.run(*nobody, *SHELLS["dash"], str(script), "-o", str(out), timeout=300)
        (archive,) = out.iterdir()
        assert done.stdout.strip() == str(archive)
        manifest = manifest_of(archive)
        failed = {f["what"]: f["why"] for f in manifest["failed"]}
        assert failed["/proc/net/nf_conntrack"] == "Permission denied"
        assert failed["/ctguard_commands/iptables-save"].startswith("iptables-save exited ")
        assert "/proc/sys/net/netfilter/nf_conntrack_max" in manifest["captured"]
        report = json.loads(doctor(archive, "json"))
        assert report["source"] == "snapshot"
        statuses = {f["id"]: f["status"] for f in report["findings"]}
        assert statuses["CT101"] == "passed"
