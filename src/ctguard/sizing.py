"""Sizing policy and the per-entry memory model (design §7, §8): one formula, one place.

Conntrack entries come from the ``nf_conntrack`` slab cache, allocated with GFP_ATOMIC
and not charged to any memory cgroup; the hash table costs one ``hlist_nulls_head``
(8 bytes on 64-bit) per bucket (net/netfilter/nf_conntrack_core.c, nf_ct_alloc_hashtable).
"""

from __future__ import annotations

from dataclasses import dataclass

from ctguard.missing import Missing
from ctguard.sources.kernel import KernelVersion
from ctguard.sources.slab import SlabSizes
from ctguard.sources.sysctl_runtime import ConntrackSysctls

BUCKET_BYTES = 8
# struct nf_conn on x86_64 when no slab figure is readable: 248 B object in a 256 B slot
# on 5.x/6.x; 3.x/4.x kernels had larger entries (about 304-384 B, we take 320).
FALLBACK_SLAB_MODERN = 256
FALLBACK_SLAB_OLD = 320
# Extension area (struct nf_ct_ext header + enabled extensions), kmalloc'd per entry:
# acct = 2 x nf_conn_counter (32 B), tstamp = start/stop (16 B), ecache about 24 B.
_EXT_HEADER = 16
_EXT_SIZES = {"nf_conntrack_acct": 32, "nf_conntrack_timestamp": 16}
_ECACHE = 24
_KMALLOC_CLASSES = (32, 64, 96, 128, 192, 256)
# 5.x/6.x kernels allocate the extension area at least NF_CT_EXT_PREALLOC (128 B) at once
# (net/netfilter/nf_conntrack_extend.c, nf_ct_ext_add); measured here: 50,000 entries with
# acct=1 added 50,002 kmalloc-128 objects.
_EXT_PREALLOC = 128


@dataclass(frozen=True)
class EntryCost:
    bytes: int
    slab_bytes: int
    extension_bytes: int
    source: str  # "slab" or "estimate (kernel X)"


def _kmalloc_round(size: int) -> int:
    return next((c for c in _KMALLOC_CLASSES if size <= c), size)


def entry_cost(
    slab: SlabSizes | Missing,
    kernel: KernelVersion | Missing,
    sysctls: ConntrackSysctls | Missing,
) -> EntryCost:
    """Bytes one conntrack entry costs on this host (an estimate, never zero)."""
    if isinstance(slab, SlabSizes):
        base, source = slab.slab_size, "slab"
    elif isinstance(kernel, KernelVersion) and not kernel.at_least(5, 0):
        base, source = FALLBACK_SLAB_OLD, f"estimate for kernel {kernel.release}"
    else:
        base, source = FALLBACK_SLAB_MODERN, "estimate for a 5.x/6.x kernel"
    ext = 0
    if isinstance(sysctls, ConntrackSysctls):
        ext = sum(size for key, size in _EXT_SIZES.items() if sysctls.get(key))
        if sysctls.get("nf_conntrack_events") == 1:  # 2 = only when someone listens
            ext += _ECACHE
    ext_bytes = _kmalloc_round(_EXT_HEADER + ext) if ext else 0
    modern = not isinstance(kernel, KernelVersion) or kernel.at_least(5, 0)
    if ext_bytes and modern:
        ext_bytes = max(_EXT_PREALLOC, ext_bytes)
    return EntryCost(base + ext_bytes, base, ext_bytes, source)


def table_bytes(entries: int, buckets: int, cost: EntryCost) -> int:
    """Kernel memory of a table holding ``entries`` entries in ``buckets`` buckets."""
    return entries * cost.bytes + buckets * BUCKET_BYTES


GIB = 1 << 30


HASH_ROUNDING = 4096 // 8  # buckets per page of hlist_nulls_head pointers


def kernel_buckets(requested: int) -> int:
    """The bucket count the kernel really allocates for a requested size.

    nf_ct_alloc_hashtable() rounds up to whole pages (PAGE_SIZE / sizeof(hlist_nulls_head)
    = 512 on 4 KiB pages): ``hashsize=100000`` gives 100352 buckets.
    """
    return -(-requested // HASH_ROUNDING) * HASH_ROUNDING


def default_buckets(mem_total: int, kernel: KernelVersion | Missing, bits: int = 64) -> int:
    """Buckets the kernel picks when no ``hashsize`` is given (nf_conntrack_init_start).

    MemTotal is totalram_pages x PAGE_SIZE, the figure the kernel sizes from. 5.15
    (d532bcd0b269, "netfilter: conntrack: sanitize table size default settings") raised
    the steps to 65536/262144 and made max = buckets; before, max was 4 x buckets.
    """
    size = mem_total // 16384 // (bits // 8)
    modern = not isinstance(kernel, KernelVersion) or kernel.at_least(5, 15)
    if modern:
        if bits >= 64 and mem_total > 4 * GIB:
            size = 262144
        elif mem_total > GIB:
            size = 65536
        return kernel_buckets(max(size, 1024))
    # 2.6.x kernels (RHEL 6: nf_conntrack_init_init_net) stop at 16384 above 1 GiB; the
    # 65536 step for more than 4 GiB came with 3.x
    big = isinstance(kernel, KernelVersion) and kernel.at_least(3, 0)
    if big and mem_total > 4 * GIB:
        size = 65536
    elif mem_total > GIB:
        size = 16384
    return kernel_buckets(max(size, 32))


def default_max(mem_total: int, kernel: KernelVersion | Missing) -> int:
    """nf_conntrack_max the kernel starts with when no ``hashsize`` is given."""
    buckets = default_buckets(mem_total, kernel)
    modern = not isinstance(kernel, KernelVersion) or kernel.at_least(5, 15)
    return buckets if modern else 4 * buckets


def largest_safe_max(mem_total: int, buckets: int, cost: EntryCost, budget_pct: float) -> int:
    """The largest power of two whose table fits in ``budget_pct`` % of MemTotal."""
    budget = mem_total * budget_pct / 100 - buckets * BUCKET_BYTES
    if budget <= cost.bytes:
        return 0
    entries = int(budget // cost.bytes)
    return 1 << (entries.bit_length() - 1)
