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


def _flags_the_max(finding: dict) -> bool:
    """A doctor finding about nf_conntrack_max itself: usage (CT101), unlimited (CT106),
    memory (CT201), or a running max that is not the configured one (CT301)."""
    if finding["status"] != "found":
        return False
    if finding["id"] in {"CT101", "CT106", "CT201"}:
        return True
    return finding["id"] == "CT301" and any(
        "nf_conntrack_max" in line for line in finding["evidence"]
    )


@pytest.mark.parametrize("root", ROOTS, ids=lambda p: str(p.relative_to(REPO)))
def test_plan_keeps_a_max_doctor_accepts(root: Path) -> None:
    """Changing a max doctor accepts is a change nobody asked for (and lowering one can
    itself cause 'table full' drops): plan changes it only when doctor flags it, and
    lowers it only for memory (CT201) or to the configured value (CT301)."""
    sizing = _json("plan", "--root", str(root), "--format", "json")["sizing"]
    if sizing is None or sizing["max"]["current"] is None:
        return
    current, value = sizing["max"]["current"], sizing["max"]["value"]
    doctor = _json("doctor", "--root", str(root), "--format", "json")
    flags = {f["id"] for f in doctor["findings"] if _flags_the_max(f)}
    if value != current:
        assert flags, f"plan changes nf_conntrack_max {current} -> {value}, doctor accepts it"
    if value < current:
        assert flags & {"CT201", "CT301"}, f"plan lowers {current} -> {value} on {flags}"


def test_rhel6_modular_keeps_the_configured_max_doctor_accepts() -> None:
    """lb-web04 (tests/roots/README.md): sysctl.conf asks for 262144; at 416 B per entry and
    today's 16384 buckets a full table takes 262144 x 416 + 16384 x 8 = 109,182,976 B,
    5.55 % of MemTotal 1,968,336,896 B (under CT201's 10 %), and the peak 65,491 fills 25 %
    of it (under CT101's 80 %). The 5 % budget (98,416,844 B) must not lower it to 131072."""
    plan = _json("plan", "--root", str(REPO / "tests/roots/rhel6-modular"), "--json")
    sizing = plan["sizing"]
    assert (sizing["max"]["current"], sizing["max"]["value"]) == (65_536, 262_144)
    assert sizing["budget_bytes"] == 98_416_844 < 109_182_976
    assert plan["refusal"] is None


def test_doctor_thresholds_reach_every_fix_that_names_a_max() -> None:
    """With --threshold memory_warning=5, CT201 flags lb-web04's configured 262144 (5.55 %
    of MemTotal) and lowers it to 131072 (2 x peak 65,491, rounded up); CT101, CT102,
    CT103 and CT301 size the table with the same thresholds, so every fix names 131072."""
    root = str(REPO / "tests/roots/rhel6-modular")
    doctor = _json("doctor", "--root", root, "--format", "json", "--threshold", "memory_warning=5")
    found = {f["id"]: f.get("fix") or "" for f in doctor["findings"] if f["status"] == "found"}
    assert {"CT101", "CT201", "CT301"} <= set(found)
    assert said(MAX_SAID, "\n".join(found.values())) == {131_072}
    assert said(MAX_SAID, fix_texts(Path(root))) == {262_144}  # default: the configured max
