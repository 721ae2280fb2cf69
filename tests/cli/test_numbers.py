"""Numbers an operator may type by mistake (issue 17, "Numbers"): nan, infinities ('1e400'
parses as inf) and values the kernel would refuse are one-line usage errors (exit 3), never
"internal error"; and no plan proposes an nf_conntrack_max the kernel cannot take."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctguard.model.sizing import (
    KERNEL_BUCKETS_LIMIT,
    KERNEL_MAX_LIMIT,
    EntryCost,
    SizingInput,
    size_table,
)
from ctguard.sources.kernel import parse_kernel_release
from helpers import one_error_line, run_ctguard

EXAMPLE = Path(__file__).parents[2] / "examples" / "rhel6-table-full"


@pytest.mark.parametrize("value", ["nan", "1e400", "inf", "-inf", "150", "0"])
def test_memory_budget_must_be_a_finite_share_of_memory(value: str) -> None:
    done = run_ctguard("plan", "--root", str(EXAMPLE), "--memory-budget", value)
    line = one_error_line(done, 3, "--memory-budget")
    assert "internal error" not in line


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (("status", "--root", str(EXAMPLE), "--interval", "nan"), "--interval"),
        (("status", "--root", str(EXAMPLE), "--interval", "1e400"), "--interval"),
        (("plan", "--root", str(EXAMPLE), "--target-max", "2147483648"), "--target-max"),
    ],
)
def test_other_numbers_out_of_reach_are_usage_errors(argv: tuple[str, ...], option: str) -> None:
    line = one_error_line(run_ctguard(*argv), 3, option)
    assert "internal error" not in line


def test_the_largest_target_max_the_kernel_takes_is_accepted() -> None:
    done = run_ctguard("plan", "--root", str(EXAMPLE), "--target-max", str(2**31 - 1), "--force")
    assert "internal error" not in done.stderr
    assert done.returncode in (0, 2), done.stderr


def test_no_memory_size_makes_a_max_or_buckets_the_kernel_refuses() -> None:
    # a crafted MemTotal of 4 EiB and a peak of 2^40 entries: the policy stops at INT_MAX
    req = SizingInput(
        mem_total=2**62, mem_available=None, cost=EntryCost(320, 320, 0, "slab"),
        kernel=parse_kernel_release("6.1.0"), current_max=None, current_buckets=None,
        peak=2**40, peak_source="stat entries",
    )  # fmt: skip
    got = size_table(req)
    assert got.max.value == KERNEL_MAX_LIMIT == 2**31 - 1
    assert got.buckets.value <= KERNEL_BUCKETS_LIMIT
