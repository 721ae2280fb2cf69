"""One sizing policy: every max or bucket number a doctor fix recommends is the one
`ctguard plan` computes for the same host, on every fixture root.

A fix that names a different number than the plan writes leaves the operator with two
answers for one setting (CT105 once said 262144 buckets where the plan wrote 65536).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import re
from pathlib import Path

import pytest

from ctguard.cli import main

REPO = Path(__file__).resolve().parent.parent
ROOTS = sorted(
    p.parent for base in ("tests", "examples") for p in (REPO / base).rglob("ctguard_manifest.json")
)
# what a recommendation looks like in a fix text; a number quoted as today's value is not one
MAX_SAID = [
    r"nf_conntrack_max ?= ?(\d+)",
    r"[Ll]ower (?:it|the max) to (\d+)",
    r"for nf_conntrack_max (\d+)",
]
BUCKETS_SAID = [
    r"nf_conntrack_buckets ?= ?(\d+)",
    r"hashsize ?= ?(\d+)",
    r"echo (\d+) > /sys/module/nf_conntrack/parameters/hashsize",
    r"buckets to (\d+)",
]


def _json(*args: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args))
    assert code in (0, 1, 2), out.getvalue()
    return json.loads(out.getvalue())


PERSIST_SAID = [
    r"persist it in (/etc/sysctl[^\s:),]*)",
    r"= \d+ in (/etc/sysctl[^\s:),]*)",
    r"in (/etc/sysctl[^\s:),]*): net\.",
]


def said(patterns: list[str], text: str) -> set[int]:
    """Numbers the fix text recommends for one setting.

    >>> sorted(said(BUCKETS_SAID, "echo 65536 > /sys/module/nf_conntrack/parameters/hashsize"))
    [65536]
    """
    return {int(n) for pattern in patterns for n in re.findall(pattern, text)}


@functools.cache
def fix_texts(root: Path) -> str:
    doctor = _json("doctor", "--root", str(root), "--format", "json")
    return "\n".join(f.get("fix") or "" for f in doctor["findings"] if f["status"] == "found")


def recommended(root: Path) -> tuple[set[int], set[int]]:
    fixes = fix_texts(root)
    return said(MAX_SAID, fixes), said(BUCKETS_SAID, fixes)


def planned(root: Path) -> tuple[int, int] | str:
    plan = _json("plan", "--root", str(root), "--json")
    sizing = plan["sizing"]
    if sizing is None:
        return plan["sizing_skipped"]
    return sizing["max"]["value"], sizing["buckets"]["value"]


@pytest.mark.parametrize("root", ROOTS, ids=lambda p: str(p.relative_to(REPO)))
def test_fix_numbers_are_the_plans(root: Path) -> None:
    maxima, buckets = recommended(root)
    plan = planned(root)
    if isinstance(plan, str):  # memory unknown: the plan says so instead of a number
        assert "memory unknown" in plan
        return
    assert maxima <= {plan[0]}, f"doctor recommends max {maxima}, plan writes {plan[0]}"
    assert buckets <= {plan[1]}, f"doctor recommends buckets {buckets}, plan writes {plan[1]}"


def test_the_comparison_is_not_empty() -> None:
    """Enough roots have a sizing fix for the check above to mean something."""
    with_numbers = [root for root in ROOTS if any(recommended(root))]
    assert len(with_numbers) >= 4, with_numbers


@pytest.mark.parametrize("root", ROOTS, ids=lambda p: str(p.relative_to(REPO)))
def test_fix_files_are_the_plans(root: Path) -> None:
    """A fix that says where to persist a value names the sysctl file plan writes."""
    found = (m.rstrip(".") for p in PERSIST_SAID for m in re.findall(p, fix_texts(root)))
    files = set(found)
    if not files:
        return
    plan = _json("plan", "--root", str(root), "--format", "json")
    written = {f["path"] for f in plan["files"] if f["path"].startswith("/etc/sysctl")}
    assert files <= written or not written, f"doctor says {files}, plan writes {written}"
