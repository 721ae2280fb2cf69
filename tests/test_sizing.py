"""Per-entry memory model: slab size plus kmalloc'd extensions plus 8 B per bucket."""

from __future__ import annotations

import pytest

from ctguard.missing import Missing
from ctguard.model.sizing import (
    GIB,
    EntryCost,
    default_buckets,
    default_max,
    entry_cost,
    kernel_buckets,
    largest_safe_max,
    table_bytes,
)
from ctguard.sources.kernel import KernelVersion
from ctguard.sources.slab import SlabSizes
from ctguard.sources.sysctl_runtime import ConntrackSysctls

NO_SLAB = Missing("no slab")
NO_KERNEL = Missing("no kernel")
NO_SYSCTLS = Missing("no sysctls")
K6 = KernelVersion("6.1.0-18-amd64", 6, 1, 0)
K5 = KernelVersion("5.0.0", 5, 0, 0)
K4 = KernelVersion("4.19.0-26-amd64", 4, 19, 0)
K2 = KernelVersion("2.6.32-754.el6.x86_64", 2, 6, 32)


def sysctls(**values: int) -> ConntrackSysctls:
    return ConntrackSysctls({f"nf_conntrack_{k}": v for k, v in values.items()})


def test_slab_present_wins_over_kernel():
    cost = entry_cost(SlabSizes(248, 256), K2, sysctls(acct=0, timestamp=0, events=0))
    assert cost == EntryCost(256, 256, 0, "slab")


def test_slab_size_not_object_size_is_charged():
    assert entry_cost(SlabSizes(304, 320), K4, NO_SYSCTLS).bytes == 320


@pytest.mark.parametrize(
    ("kernel", "base"),
    [(K2, 320), (K4, 320), (K5, 256), (K6, 256), (NO_KERNEL, 256)],
)
def test_slab_missing_estimates_by_kernel(kernel, base):
    cost = entry_cost(NO_SLAB, kernel, NO_SYSCTLS)
    assert (cost.bytes, cost.slab_bytes, cost.extension_bytes) == (base, base, 0)
    assert cost.source.startswith("estimate")


def test_old_kernel_estimate_names_the_release():
    assert "2.6.32-754.el6.x86_64" in entry_cost(NO_SLAB, K2, NO_SYSCTLS).source


# Extension area = 16 B header + 32 (acct) + 16 (timestamp) + 24 (events=1), rounded up
# to a kmalloc size class: 32, 64, 96, 128, 192, 256. On 2.6/3.x/4.x kernels that is all.
@pytest.mark.parametrize(
    ("values", "ext"),
    [
        ({}, 0),
        ({"acct": 0, "timestamp": 0, "events": 0}, 0),
        ({"events": 2}, 0),  # events only while someone listens: no ecache by default
        ({"timestamp": 1}, 32),  # 16 + 16 = 32
        ({"acct": 1}, 64),  # 16 + 32 = 48
        ({"acct": 1, "timestamp": 1}, 64),  # 16 + 48 = 64
        ({"events": 1}, 64),  # 16 + 24 = 40
        ({"timestamp": 1, "events": 1}, 64),  # 16 + 40 = 56
        ({"acct": 1, "events": 1}, 96),  # 16 + 56 = 72
        ({"acct": 1, "timestamp": 1, "events": 1}, 96),  # 16 + 72 = 88
    ],
)
def test_extensions_rounded_to_kmalloc_classes_old_kernel(values, ext):
    cost = entry_cost(SlabSizes(304, 320), K4, sysctls(**values))
    assert cost.extension_bytes == ext
    assert cost.bytes == 320 + ext
    assert cost.slab_bytes == 320


# 5.x/6.x kernels allocate at least NF_CT_EXT_PREALLOC = 128 B as soon as any extension
# is on (measured on 6.18: acct=1 -> one kmalloc-128 object per entry).
@pytest.mark.parametrize(
    ("values", "ext"),
    [
        ({}, 0),
        ({"events": 2}, 0),
        ({"timestamp": 1}, 128),
        ({"acct": 1}, 128),
        ({"acct": 1, "timestamp": 1, "events": 1}, 128),
    ],
)
def test_extensions_preallocate_128_on_modern_kernels(values, ext):
    cost = entry_cost(SlabSizes(248, 256), K6, sysctls(**values))
    assert cost.extension_bytes == ext
    assert cost.bytes == 256 + ext


def test_extensions_apply_to_estimates_too():
    cost = entry_cost(NO_SLAB, K2, sysctls(acct=1))
    assert (cost.bytes, cost.slab_bytes, cost.extension_bytes) == (384, 320, 64)


def test_table_bytes():
    cost = EntryCost(320, 256, 64, "slab")
    assert table_bytes(0, 0, cost) == 0
    assert table_bytes(0, 65536, cost) == 65536 * 8
    assert table_bytes(1000, 0, cost) == 320_000
    # 262144 entries of 256 B in 65536 buckets: 64 MiB + 512 KiB.
    assert table_bytes(262144, 65536, entry_cost(SlabSizes(248, 256), K6, NO_SYSCTLS)) == (
        64 * 2**20 + 512 * 2**10
    )


def test_ten_million_entries_take_gibibytes():
    # Design §7: a max of 10 M on a small box can take several GiB.
    cost = entry_cost(SlabSizes(248, 256), K6, sysctls(acct=1))
    assert table_bytes(10_000_000, 2_500_000, cost) == 10_000_000 * 384 + 2_500_000 * 8
    assert table_bytes(10_000_000, 2_500_000, cost) > 3 * 10**9


MIB = 1 << 20


@pytest.mark.parametrize(
    ("mem_total", "kernel", "buckets", "maximum"),
    [
        # 5.15+ (nf_conntrack_init_start): 262144 above 4 GiB on 64-bit, 65536 above 1 GiB,
        # else RAM/16384/8 with a floor of 1024; max = buckets
        (int(23.5 * GIB), K6, 262144, 262144),
        (4 * GIB + 4096, K6, 262144, 262144),
        (4 * GIB, K6, 65536, 65536),  # "more than 4 GiB": exactly 4 is the lower step
        (2 * GIB, K6, 65536, 65536),
        (512 * MIB, K6, 4096, 4096),
        # a "1 GiB" VM: 1002276 kB / 16384 / 8 = 7830, rounded up to whole pages (512)
        (1002276 * 1024, K6, 8192, 8192),
        (64 * MIB, K6, 1024, 1024),
        # 3.x-5.14: 65536 above 4 GiB, 16384 above 1 GiB, floor 32; max = 4 x buckets
        (8 * GIB, K4, 65536, 262144),
        (2 * GIB, K4, 16384, 65536),
        (256 * MIB, K4, 2048, 8192),
        # 2.6.x (RHEL 6): 16384 above 1 GiB whatever the size (example: web03)
        (8 * GIB, K2, 16384, 65536),
        (3923608 * 1024, K2, 16384, 65536),
        (8 * GIB, NO_KERNEL, 262144, 262144),  # unknown: today's rules
    ],
)
def test_kernel_defaults(mem_total, kernel, buckets, maximum):
    assert default_buckets(mem_total, kernel) == buckets
    assert default_max(mem_total, kernel) == maximum


@pytest.mark.parametrize(("asked", "got"), [(1, 512), (512, 512), (100000, 100352), (65536, 65536)])
def test_kernel_rounds_buckets_to_pages(asked, got):
    assert kernel_buckets(asked) == got


def test_largest_safe_max_fits_the_budget():
    cost = EntryCost(256, 256, 0, "slab")
    safe = largest_safe_max(8 * GIB, 262144, cost, 5.0)
    assert safe == 1 << 20  # 1048576 x 256 B + 2 MiB = 258 MiB <= 409.6 MiB < 2^21 x 256 B
    assert table_bytes(safe, 262144, cost) <= 8 * GIB * 0.05 < table_bytes(2 * safe, 262144, cost)
    assert largest_safe_max(64 * MIB, 262144, cost, 1.0) == 0  # buckets alone exceed it
