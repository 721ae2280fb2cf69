"""``ctguard snapshot``: one line per capture, or the manifest as JSON."""

from __future__ import annotations

import json

from ctguard.usecases.snapshot import SnapshotReport


def render_snapshot_json(report: SnapshotReport) -> str:
    return json.dumps(report.manifest, indent=2) + "\n"


def render_snapshot_text(report: SnapshotReport) -> str:
    manifest = report.manifest
    failed = manifest["failed"]
    lines = [
        f"wrote {report.path}: {len(manifest['captured'])} items captured, {len(failed)} failed"
    ]
    lines += [f"  not captured: {item['what']}: {item['why']}" for item in failed]
    return "\n".join(lines) + "\n"
