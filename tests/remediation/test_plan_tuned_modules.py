"""``[modules] nf_conntrack=+r hashsize=N`` in a profile of one's own (issue 16 item 5): tuned
writes ``options nf_conntrack hashsize=N`` to /etc/modprobe.d/tuned.conf and reloads the
module (tuned/plugins/plugin_modules.py). That file is tuned's, not a second owner: CT306
does not call it a clash, CT303 counts it, and plan adds no modprobe option of its own."""

from __future__ import annotations

import shutil
from pathlib import Path

from ctguard.facts import collect
from ctguard.findings import Severity, Status
from ctguard.host.commands import CapturedCommands
from ctguard.host.root import HostRoot
from ctguard.host.target import Target
from ctguard.usecases.doctor import diagnose
from ctguard.usecases.plan import Planning, plan

BASE = Path(__file__).parent.parent / "roots" / "doctor" / "ct303-buckets-runtime-only"
PROFILE = """[main]
summary=haproxy front ends
include=throughput-performance

[modules]
nf_conntrack=+r, hashsize=524288
"""


def test_modules_hashsize_counts_and_is_not_duplicated(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(BASE, root, symlinks=True)
    (root / "etc/tuned/web-fe").mkdir(parents=True)
    (root / "etc/tuned/web-fe/tuned.conf").write_text(PROFILE)
    (root / "etc/tuned/active_profile").write_text("web-fe\n")
    (root / "etc/modprobe.d").mkdir()
    (root / "etc/modprobe.d/tuned.conf").write_text("options nf_conntrack hashsize=524288\n")
    host = HostRoot(root)
    findings = {f.id: f for f in diagnose(collect(host, CapturedCommands(host))).findings}
    assert findings["CT303"].status is Status.PASSED
    ct306 = findings["CT306"]
    assert ct306.status is Status.FOUND and ct306.severity is Severity.INFO
    assert "edit /etc/tuned/web-fe/tuned.conf" in (ct306.fix or "")
    made = plan(Target(str(root)), Planning()).plan
    assert not [f.path for f in made.files if "/modprobe.d/" in f.path]
