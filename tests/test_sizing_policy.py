"""The policy of `ctguard plan` (docs/design.md §8): target max and buckets within a memory budget,
refusals over 25 % of MemTotal or MemAvailable, and timeouts shortened only where needed."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ctguard.missing import Missing
from ctguard.model.sizing import (
    GIB,
    HARD_LIMIT_PCT,
    NAT_MIN_ESTABLISHED,
    EntryCost,
    SizingInput,
    TimeoutNeed,
    default_max,
    entry_cost,
    kernel_buckets,
    power_of_two_at_least,
    size_table,
    size_timeouts,
)
from ctguard.sources.kernel import KernelVersion
from ctguard.sources.slab import SlabSizes

MIB = 1 << 20
TIB = 1 << 40
NO_SLAB = Missing("no slab")
NO_SYSCTLS = Missing("no sysctls")
K6 = KernelVersion("6.1.0-18-amd64", 6, 1, 0)
K4 = KernelVersion("4.19.0-26-amd64", 4, 19, 0)
K2_RHEL6 = KernelVersion("2.6.32-696.30.1.el6.x86_64", 2, 6, 32)
COST6 = entry_cost(SlabSizes(248, 256), K6, NO_SYSCTLS)  # 256 B, read from the slab
COST4 = entry_cost(NO_SLAB, K4, NO_SYSCTLS)  # no slab figure: the 320 B estimate
COST = {K6: COST6, K4: COST4}


def test_costs_are_what_the_rows_assume():
    assert (COST6.bytes, COST4.bytes) == (256, 320)


def sizing_input(
    mem_total: int,
    kernel: KernelVersion,
    peak: int,
    *,
    mem_available: int | None = None,
    cost: EntryCost | None = None,
    current_max: int | None = None,
    current_buckets: int | None = None,
    target_max: int | None = None,
    budget_pct: float = 5.0,
    force: bool = False,
) -> SizingInput:
    return SizingInput(
        mem_total=mem_total,
        mem_available=mem_total * 3 // 4 if mem_available is None else mem_available,
        cost=cost or COST[kernel],
        kernel=kernel,
        current_max=current_max,
        current_buckets=current_buckets,
        peak=peak,
        peak_source="stat entries",
        target_max=target_max,
        budget_pct=budget_pct,
        force=force,
    )


# -- the rules of docs/design.md §8, written out plainly ------------------------------------------
def ratio_buckets(maximum: int, kernel: KernelVersion) -> int:
    """One bucket per entry from 5.15 on, a quarter before; whole pages; at least 1024."""
    wanted = maximum if (kernel.major, kernel.minor) >= (5, 15) else maximum // 4
    return kernel_buckets(max(wanted, 1024))


def full_table(maximum: int, kernel: KernelVersion, cost: EntryCost) -> int:
    return maximum * cost.bytes + ratio_buckets(maximum, kernel) * 8


def budget_of(mem_total: int, mem_available: int) -> int:
    return min(mem_total * 5 // 100, mem_available)


def wanted_max(mem_total: int, kernel: KernelVersion, peak: int) -> int:
    """2 x peak rounded up to a power of two, never below the kernel default."""
    two_peak = 1
    while two_peak < 2 * peak:
        two_peak *= 2
    return max(two_peak, default_max(mem_total, kernel))


def expected_max(mem_total: int, mem_available: int, kernel: KernelVersion, peak: int) -> int:
    """The wanted max if it fits the budget, else the largest power of two that does."""
    cost, budget = COST[kernel], budget_of(mem_total, mem_available)
    want = wanted_max(mem_total, kernel, peak)
    if full_table(want, kernel, cost) <= budget:
        return want
    fitting = [1 << n for n in range(10, 48) if full_table(1 << n, kernel, cost) <= budget]
    return max(fitting)


def peak_for(kind: str, mem_total: int, kernel: KernelVersion) -> int:
    if kind == "zero":
        return 0
    if kind == "small":
        return 10_000
    if kind == "near_default":  # the default table was full: 2 x peak is twice the default
        return default_max(mem_total, kernel) - 1
    assert kind == "over_budget"  # the peak alone fills the budget: 2 x peak cannot fit
    return budget_of(mem_total, mem_total * 3 // 4) // COST[kernel].bytes


def check_row(mem_total: int, kernel: KernelVersion, peak: int) -> None:
    mem_available = mem_total * 3 // 4
    got = size_table(sizing_input(mem_total, kernel, peak, mem_available=mem_available))
    cost = COST[kernel]
    maximum = expected_max(mem_total, mem_available, kernel, peak)
    assert got.max.value == maximum
    assert got.buckets.value == ratio_buckets(maximum, kernel)
    if kernel.at_least(5, 15):
        assert got.buckets.value == max(maximum, 1024)
    else:
        assert got.buckets.value == max(maximum // 4, 1024)
    assert got.table_bytes == got.max.value * cost.bytes + got.buckets.value * 8
    assert got.max.bytes == got.max.value * cost.bytes
    assert got.buckets.bytes == got.buckets.value * 8
    budget = budget_of(mem_total, mem_available)
    assert got.budget_bytes == budget
    assert got.table_bytes <= budget <= mem_total * 5 // 100
    assert got.table_bytes <= mem_available
    assert got.refusal is None
    if full_table(wanted_max(mem_total, kernel, peak), kernel, cost) > budget:
        assert maximum < wanted_max(mem_total, kernel, peak)
        text = " ".join(got.notes)
        assert "NOTRACK" in text
        assert "timeouts" in text
    else:
        assert got.notes == ()


@pytest.mark.parametrize("peak_kind", ["zero", "small", "near_default", "over_budget"])
@pytest.mark.parametrize("kernel", [K4, K6], ids=["4.19", "6.1"])
@pytest.mark.parametrize("gib", [1, 2, 8, 64, 512])
def test_sizing_table(gib, kernel, peak_kind):
    mem_total = gib * GIB
    peak = peak_for(peak_kind, mem_total, kernel)
    check_row(mem_total, kernel, peak)
    if peak_kind == "over_budget":  # the rows that must say NOTRACK / timeouts
        assert size_table(sizing_input(mem_total, kernel, peak)).notes


# Worked out by hand: cost 256 B (6.1 slab) or 320 B (4.19 estimate), 8 B per bucket,
# budget = min(5 % of MemTotal, MemAvailable); 5 % of 8 GiB is 429,496,729 B.
@pytest.mark.parametrize(
    ("mem_total", "mem_available", "kernel", "peak", "maximum", "buckets", "table"),
    [
        # kernel default 262144 already holds 2 x 10,000: 262144 x 264 B
        (8 * GIB, 6 * GIB, K6, 10_000, 262_144, 262_144, 69_206_016),
        # 4.19 default: 65536 buckets, max 4 x 65536; 262144 x 320 + 65536 x 8
        (8 * GIB, 6 * GIB, K4, 10_000, 262_144, 65_536, 84_410_368),
        # 1 GiB is not "more than 1 GiB": 2^30 / 16384 / 8 = 8192 buckets = max
        (1 * GIB, 768 * MIB, K6, 0, 8_192, 8_192, 2_162_688),
        # 4.19, 1 GiB: 8192 buckets, max 32768; 32768 x 320 + 8192 x 8
        (1 * GIB, 768 * MIB, K4, 0, 32_768, 8_192, 10_551_296),
        # 2 x 40,000 = 80,000 -> 131072, above the 65536 default of a 2 GiB host
        (2 * GIB, 1 * GIB, K6, 40_000, 131_072, 131_072, 34_603_008),
        # 2 x 1,000,000 -> 2^21; 2^21 x 264 = 553,648,128 fits 5 % of 64 GiB
        (64 * GIB, 48 * GIB, K6, 1_000_000, 2_097_152, 2_097_152, 553_648_128),
        # ... but not 5 % of 8 GiB: the budget holds 2^20 (276,824,064 B)
        (8 * GIB, 6 * GIB, K6, 1_000_000, 1_048_576, 1_048_576, 276_824_064),
        # 4.19: 2^21 x 320 + 2^19 x 8 = 675,282,944 > budget; 2^20 x 320 + 2^18 x 8 fits
        (8 * GIB, 6 * GIB, K4, 1_000_000, 1_048_576, 262_144, 337_641_472),
        # MemAvailable 50 MiB (52,428,800 B) caps below the default: 2^17 x 264 = 34,603,008
        (8 * GIB, 50 * MIB, K6, 10_000, 131_072, 131_072, 34_603_008),
    ],
)
def test_sizing_hand_checked(mem_total, mem_available, kernel, peak, maximum, buckets, table):
    got = size_table(sizing_input(mem_total, kernel, peak, mem_available=mem_available))
    assert (got.max.value, got.buckets.value, got.table_bytes) == (maximum, buckets, table)
    assert got.refusal is None


# A peak far beyond the budget: the cap is the largest power of two whose table *with
# its own buckets* fits (8 GiB: 6.1 2^20 x 264 B = 276,824,064; 4.19 2^20 x 320 + 2^18 x 8
# = 337,641,472). Computing it with the buckets of the wanted max (2^25 heads = 256 MiB)
# once left it at 2^19, or at the 1024 floor, below even the kernel default.
@pytest.mark.parametrize(
    ("gib", "kernel", "peak"),
    [
        pytest.param(8, K6, 8_388_609, id="8GiB-6.1-peak-8.4M"),
        pytest.param(8, K6, 50_000_000, id="8GiB-6.1-peak-50M"),
        pytest.param(8, K4, 50_000_000, id="8GiB-4.19-peak-50M"),
        pytest.param(2, K6, 50_000_000, id="2GiB-6.1-peak-50M"),
        pytest.param(1, K4, 50_000_000, id="1GiB-4.19-peak-50M"),
    ],
)
def test_sizing_huge_peak_still_gets_what_the_budget_holds(gib, kernel, peak):
    mem_total = gib * GIB
    got = size_table(sizing_input(mem_total, kernel, peak))
    assert got.max.value >= default_max(mem_total, kernel)
    check_row(mem_total, kernel, peak)


# -- refusals ---------------------------------------------------------------------------
def ten_million_on_8_gib(**kwargs) -> SizingInput:
    return sizing_input(
        8 * GIB, K6, 100_000, mem_available=6 * GIB, target_max=10_485_760, **kwargs
    )


def test_target_over_25_pct_is_refused_with_its_cost_in_bytes():
    got = size_table(ten_million_on_8_gib())
    assert got.max.value == 10_485_760
    assert got.buckets.value == 10_485_760  # 20480 pages of heads exactly
    need = 10_485_760 * 256 + got.buckets.value * 8
    assert need == 2_768_240_640 == got.table_bytes  # 10,485,760 x 264 B: 2.58 GiB
    assert got.refusal is not None
    assert f"{need:,}" in got.refusal
    assert "2,768,240,640" in got.refusal
    assert "25 %" in got.refusal


def test_force_keeps_the_refusal_text():
    plain = size_table(ten_million_on_8_gib())
    forced = size_table(ten_million_on_8_gib(force=True))
    assert forced.refusal is not None
    assert forced.refusal == plain.refusal
    assert (forced.max.value, forced.table_bytes) == (plain.max.value, plain.table_bytes)


def test_target_over_mem_available_but_under_25_pct_names_mem_available():
    # 4,194,304 x 264 = 1,107,296,256 B: under 2 GiB (25 % of 8 GiB), over MemAvailable 1 GiB
    got = size_table(sizing_input(8 * GIB, K6, 0, mem_available=GIB, target_max=4_194_304))
    assert got.table_bytes == 1_107_296_256
    assert got.table_bytes <= 8 * GIB * HARD_LIMIT_PCT / 100
    assert got.refusal is not None
    assert "more than MemAvailable" in got.refusal
    assert "1,107,296,256" in got.refusal
    assert "25 % of MemTotal (" not in got.refusal


def test_target_over_the_budget_but_under_25_pct_names_the_budget():
    # 2^21 x 264 = 553,648,128 B: over 5 % of 8 GiB, under 25 % and MemAvailable
    got = size_table(sizing_input(8 * GIB, K6, 0, mem_available=6 * GIB, target_max=1 << 21))
    assert got.refusal is not None
    assert "budget" in got.refusal
    assert "553,648,128" in got.refusal


def test_budget_over_25_pct_is_refused_even_for_a_small_target():
    got = size_table(sizing_input(8 * GIB, K6, 0, target_max=65_536, budget_pct=30))
    assert got.table_bytes == 65_536 * 264
    assert got.refusal is not None
    assert "over 25" in got.refusal


def test_target_inside_the_budget_is_not_refused():
    got = size_table(sizing_input(8 * GIB, K6, 10_000, mem_available=6 * GIB, target_max=262_144))
    assert (got.max.value, got.buckets.value) == (262_144, 262_144)
    assert got.refusal is None


def test_rhel6_ten_million_max_gets_a_safe_automatic_target():
    # web03 (tests/roots/doctor/ct102-old-log-only): RHEL 6, SLAB (no sysfs slab figure),
    # sysctl.conf sets max 10,485,760; 23,511 entries seen
    mem_total, mem_available = 3_923_608 * 1024, 2_617_488 * 1024
    cost = entry_cost(NO_SLAB, K2_RHEL6, NO_SYSCTLS)
    assert cost.bytes == 320
    got = size_table(
        SizingInput(
            mem_total=mem_total,
            mem_available=mem_available,
            cost=cost,
            kernel=K2_RHEL6,
            current_max=10_485_760,
            current_buckets=16_384,
            peak=23_511,
            peak_source="nf_conntrack_count now",
        )
    )
    # 2 x 23,511 = 47,022 -> 65536, which is also the 2.6.32 default (4 x 16384)
    assert default_max(mem_total, K2_RHEL6) == 65_536
    assert got.max.value == 65_536
    assert got.max.changes
    assert got.buckets.value == 16_384
    assert not got.buckets.changes
    assert got.table_bytes == 65_536 * 320 + 16_384 * 8 == 21_102_592
    assert got.table_bytes <= got.budget_bytes == int(mem_total * 0.05)
    assert got.refusal is None


# -- keeping the current max -------------------------------------------------------------
def test_current_max_that_holds_twice_the_peak_within_budget_is_kept():
    got = size_table(
        sizing_input(8 * GIB, K6, 100_000, current_max=1_048_576, current_buckets=1_048_576)
    )
    assert (got.max.value, got.buckets.value) == (1_048_576, 1_048_576)
    assert not got.max.changes
    assert not got.buckets.changes
    assert got.table_bytes == 276_824_064 <= got.budget_bytes
    assert got.refusal is None
    assert "keeps" in got.max.reason


def test_current_max_over_the_budget_is_lowered():
    # 4,194,304 x 264 B = 1.03 GiB, over 5 % of 8 GiB: back to the 262144 default
    got = size_table(sizing_input(8 * GIB, K6, 100_000, current_max=4_194_304))
    assert got.max.value == 262_144
    assert got.max.changes
    assert got.max.current == 4_194_304
    assert got.buckets.value == 262_144
    assert got.table_bytes <= got.budget_bytes
    assert got.refusal is None


def test_current_max_below_twice_the_peak_is_raised():
    got = size_table(sizing_input(8 * GIB, K6, 300_000, current_max=262_144))
    assert got.max.value == 1_048_576  # 600,000 -> 2^20
    assert got.max.changes


def test_unlimited_current_max_is_not_kept():
    got = size_table(sizing_input(8 * GIB, K6, 10_000, current_max=0, current_buckets=262_144))
    assert got.max.value == 262_144
    assert got.max.changes


# -- no input exceeds the budget without a refusal ----------------------------------------
@st.composite
def sizing_inputs(draw) -> SizingInput:
    mem_total = draw(st.integers(64 * MIB, 2 * TIB))
    slab = draw(st.integers(64, 1024))
    return SizingInput(
        mem_total=mem_total,
        mem_available=draw(st.none() | st.integers(0, mem_total)),
        cost=EntryCost(slab, slab, 0, "slab"),
        kernel=draw(st.sampled_from([K4, K6])),
        current_max=draw(st.none() | st.integers(0, 50_000_000)),
        current_buckets=draw(st.none() | st.integers(0, 50_000_000)),
        peak=draw(st.integers(0, 50_000_000)),
        peak_source="stat entries",
        target_max=draw(st.none() | st.integers(1, 100_000_000)),
        budget_pct=draw(st.floats(0.01, 100.0, allow_nan=False)),
        force=False,
        configured_max=draw(st.none() | st.integers(0, 50_000_000)),
    )


@settings(max_examples=300, deadline=None)
@given(sizing_inputs())
def test_no_plan_exceeds_its_memory_budget_without_a_refusal(req):
    got = size_table(req)
    assert got.table_bytes == got.max.value * req.cost.bytes + got.buckets.value * 8
    if got.refusal is not None:
        return
    assert got.table_bytes <= req.mem_total // 4
    assert req.mem_available is None or got.table_bytes <= req.mem_available
    operator = max((v for v in (req.configured_max, req.current_max) if v), default=0)
    if got.max.value > operator:  # the budget is what a plan adds, not what the operator has
        assert got.table_bytes <= got.budget_bytes
        assert got.table_bytes <= req.mem_total * req.budget_pct / 100


def doctor_flags(req: SizingInput, value: int) -> bool:
    """CT201 written out: a full table (today's buckets) from 10 % of MemTotal, or over
    MemAvailable."""
    need = value * req.cost.bytes + (req.current_buckets or 0) * 8
    over_available = req.mem_available is not None and need > req.mem_available
    return need * 100 >= 10 * req.mem_total or over_available


@settings(max_examples=500, deadline=None)
@example(
    SizingInput(
        mem_total=64 << 20,
        mem_available=None,
        cost=EntryCost(320, 320, 0, "slab"),
        kernel=K6,
        current_max=4097,
        current_buckets=None,
        peak=3277,
        peak_source="stat entries",
        configured_max=104858,
    )
)  # found by hypothesis: the running max, 79.98 % full at the peak, is kept
@given(sizing_inputs())
def test_a_plan_lowers_only_a_max_doctor_flags_and_never_below_the_peak(req):
    """The operator's max (the files' value, else the running one) is lowered only when
    CT201 flags it, and then not below what holds the peak under 80 % (CT101)."""
    got = size_table(replace(req, target_max=None))
    operator = req.configured_max or req.current_max
    if not operator or got.max.value >= operator:
        return
    assert doctor_flags(req, operator)
    least = power_of_two_at_least(-(-req.peak * 100 // 80))
    # the running max is the operator's too: kept when doctor accepts it (the files' value
    # is flagged), even where the peak fills it to just under 80 %
    kept_running = got.max.value == req.current_max and req.peak * 100 < req.current_max * 80
    assert got.max.value >= min(least, operator) or kept_running
    assert got.max.value * 80 >= req.peak * 100 or got.max.value == operator


@settings(max_examples=500, deadline=None)
@given(sizing_inputs())
def test_a_max_doctor_accepts_is_the_plans(req):
    """Neither memory (CT201) nor usage (CT101: the peak under 80 %) flags the operator's
    max: the plan keeps it, above or below its own budget."""
    got = size_table(replace(req, target_max=None))
    operator = req.configured_max or req.current_max
    if not operator or doctor_flags(req, operator) or req.peak * 100 >= operator * 80:
        return
    assert got.max.value == operator


# -- timeouts ---------------------------------------------------------------------------
IDLE = TimeoutNeed("tcp_timeout_established", 0, "idle ESTABLISHED flows fill the table (CT401)")


@pytest.mark.parametrize(("nat", "value"), [(True, 7440), (False, 3600)])
def test_established_need_proposes_by_nat(nat, value):
    got = size_timeouts({"tcp_timeout_established": 432_000}, [IDLE], COST6, 8 * GIB, nat)
    assert [(t.name, t.current, t.value) for t in got] == [
        ("nf_conntrack_tcp_timeout_established", 432_000, value)
    ]
    assert got[0].reason == IDLE.reason


def test_nat_minimum_is_rfc_5382():
    assert NAT_MIN_ESTABLISHED == 7440  # 2 h 4 min


def test_established_override_wins_and_warns_below_rfc_5382_with_nat():
    got = size_timeouts(
        {"tcp_timeout_established": 432_000}, [IDLE], COST6, 8 * GIB, True, established=1800
    )
    assert [(t.name, t.current, t.value) for t in got] == [
        ("nf_conntrack_tcp_timeout_established", 432_000, 1800)
    ]
    assert "--established-timeout" in got[0].reason
    assert "RFC 5382" in got[0].reason


@pytest.mark.parametrize(("nat", "established"), [(True, 7440), (True, 86_400), (False, 1800)])
def test_established_override_without_rfc_warning(nat, established):
    got = size_timeouts(
        {"tcp_timeout_established": 432_000}, [IDLE], COST6, 8 * GIB, nat, established
    )
    assert [t.value for t in got] == [established]
    assert "RFC 5382" not in got[0].reason


def test_established_override_comes_first():
    wait = TimeoutNeed("tcp_timeout_time_wait", 30, "TIME_WAIT dominates (CT402)", 1000)
    got = size_timeouts(
        {"tcp_timeout_established": 432_000, "tcp_timeout_time_wait": 120},
        [wait, IDLE],
        COST6,
        8 * GIB,
        False,
        established=1800,
    )
    assert [(t.name, t.value) for t in got] == [
        ("nf_conntrack_tcp_timeout_established", 1800),
        ("nf_conntrack_tcp_timeout_time_wait", 30),
    ]


@pytest.mark.parametrize(
    ("current", "need", "nat"),
    [
        ({"tcp_timeout_time_wait": 30}, TimeoutNeed("tcp_timeout_time_wait", 30, "tw", 9), False),
        ({"tcp_timeout_time_wait": 10}, TimeoutNeed("tcp_timeout_time_wait", 30, "tw", 9), False),
        ({"tcp_timeout_established": 3600}, IDLE, False),
        ({"tcp_timeout_established": 7440}, IDLE, True),
        ({"tcp_timeout_established": 1800}, IDLE, True),
    ],
)
def test_need_already_met_yields_no_target(current, need, nat):
    assert size_timeouts(current, [need], COST6, 8 * GIB, nat) == []


def test_time_wait_target_accounts_for_what_it_frees():
    need = TimeoutNeed("tcp_timeout_time_wait", 30, "TIME_WAIT is 70 % of the table", 50_000)
    got = size_timeouts({"tcp_timeout_time_wait": 120}, [need], COST6, 8 * GIB, False)
    assert len(got) == 1
    target = got[0]
    assert (target.name, target.current, target.value) == (
        "nf_conntrack_tcp_timeout_time_wait",
        120,
        30,
    )
    assert target.changes
    assert target.bytes == 50_000 * COST6.bytes == 12_800_000
    assert target.pct == pytest.approx(100 * 12_800_000 / (8 * GIB))
    assert target.reason == need.reason


# -- memory unknown ------------------------------------------------------------------------
@pytest.mark.parametrize("kernel", [K2_RHEL6, K4, K6], ids=["2.6.32", "4.19", "6.1"])
def test_memory_unknown_default_max_is_what_every_kernel_picks_at_2_gib(kernel):
    # 2.6.32 and 4.19: 16384 buckets x 4; 6.1: 65536 buckets x 1 (above 1 GiB, up to 4 GiB)
    assert default_max(None, kernel) == 65_536 == default_max(2 * GIB, kernel)
