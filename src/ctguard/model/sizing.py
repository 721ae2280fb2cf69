"""Sizing policy and the per-entry memory model (docs/design.md §7, §8): one formula, one place.

Conntrack entries come from the ``nf_conntrack`` slab cache, allocated with GFP_ATOMIC
and not charged to any memory cgroup; the hash table costs one ``hlist_nulls_head``
(8 bytes on 64-bit) per bucket (net/netfilter/nf_conntrack_core.c, nf_ct_alloc_hashtable).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ctguard.findings import Severity
from ctguard.missing import Missing
from ctguard.model.thresholds import Thresholds
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


# memory unknown: size as for a 2 GiB machine, where every kernel starts with max 65536
# (16384 buckets x 4 before 5.15, 65536 x 1 since)
UNKNOWN_MEMORY = 2 * GIB


def default_max(mem_total: int | None, kernel: KernelVersion | Missing) -> int:
    """nf_conntrack_max the kernel starts with when no ``hashsize`` is given; with memory
    unknown (None), 65536: what every kernel picks from 1 to 4 GiB of RAM."""
    if mem_total is None:
        mem_total = UNKNOWN_MEMORY
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


# -- the policy of `ctguard plan` (docs/design.md §8) ----------------------------------------------
DEFAULT_BUDGET_PCT = 5.0  # of MemTotal: what a plan may give the table without being asked
HARD_LIMIT_PCT = 25.0  # beyond this (or MemAvailable) a plan is refused unless --force
# What the kernel accepts: nf_conntrack_max is an int sysctl (0..INT_MAX); the bucket array
# is refused above INT_MAX / sizeof(struct hlist_nulls_head) (8 B) heads.
KERNEL_MAX_LIMIT = 2**31 - 1
KERNEL_BUCKETS_LIMIT = (2**31 - 1) // 8
# The timeouts are proc_dointvec_jiffies sysctls: seconds over INT_MAX / HZ are EINVAL. HZ is
# at least 100, so no kernel takes more than this (one with HZ=1000 stops at 2147483 s).
KERNEL_TIMEOUT_LIMIT = (2**31 - 1) // 100


def buckets_writable(kernel: KernelVersion | Missing) -> bool:
    """nf_conntrack_buckets is writable since 4.7 (before, only the module parameter
    ``hashsize`` resizes the table); an unknown kernel is taken as a recent one."""
    return not isinstance(kernel, KernelVersion) or kernel.at_least(4, 7)


def power_of_two_at_least(value: int) -> int:
    return 1 << max(0, (max(value, 1) - 1).bit_length())


def buckets_for(maximum: int, kernel: KernelVersion | Missing) -> int:
    """Buckets for a max: one per entry on >= 5.15 (the kernel's own default ratio since
    d532bcd0b269), a quarter before (the old default); whole pages of heads, >= 1024."""
    modern = not isinstance(kernel, KernelVersion) or kernel.at_least(5, 15)
    return kernel_buckets(max(1024, maximum if modern else maximum // 4))


@dataclass(frozen=True)
class MaxJudgement:
    """What a full table at one nf_conntrack_max costs, and whether doctor flags it (CT201)."""

    value: int
    bytes: int  # value x entry cost + buckets x 8 B
    pct: float  # of MemTotal
    over_available: bool  # more than MemAvailable
    severity: Severity  # OK: doctor accepts it, and a plan does not lower it

    @property
    def acceptable(self) -> bool:
        return self.severity is Severity.OK


def judge_max(
    value: int,
    buckets: int,
    cost: EntryCost,
    mem_total: int,
    mem_available: int | None,
    limits: Thresholds,
) -> MaxJudgement:
    """The one judgement of a max (docs/design.md §7): a full table from ``memory_warning`` %
    of MemTotal is a WARNING, from ``memory_critical`` % or over MemAvailable CRITICAL.

    CT201 reports it; ``plan`` keeps every max it accepts (lowering one can itself cause
    "table full" drops) and lowers only one it flags. ``buckets``: today's (0 unknown)."""
    need = table_bytes(value, buckets, cost)
    pct = _pct(need, mem_total)
    over_available = mem_available is not None and need > mem_available
    severity = Severity.OK
    if pct >= limits.memory_critical or over_available:
        severity = Severity.CRITICAL
    elif pct >= limits.memory_warning:
        severity = Severity.WARNING
    return MaxJudgement(value, need, pct, over_available, severity)


def usage_severity(entries: int, maximum: int, limits: Thresholds) -> Severity:
    """CT101's judgement of a table holding ``entries`` at ``maximum`` (> 0)."""
    pct = 100.0 * entries / maximum
    if pct >= limits.usage_critical:
        return Severity.CRITICAL
    return Severity.WARNING if pct >= limits.usage_warning else Severity.OK


@dataclass(frozen=True)
class SizingInput:
    mem_total: int
    mem_available: int | None
    cost: EntryCost
    kernel: KernelVersion | Missing
    current_max: int | None  # None: not loaded or unreadable
    current_buckets: int | None
    peak: int  # the most entries seen (stat entries, count, or the table read)
    peak_source: str
    target_max: int | None = None  # --target-max
    budget_pct: float = DEFAULT_BUDGET_PCT  # --memory-budget
    force: bool = False
    configured_max: int | None = None  # what the sysctl files ask for (ctguard's own aside)
    # doctor's: the max it flags (CT201), the usage it warns at (CT101)
    limits: Thresholds = field(default_factory=Thresholds)

    def judge(self, value: int) -> MaxJudgement:
        """Doctor's judgement of ``value`` on this host, with today's buckets."""
        buckets = self.current_buckets or 0
        return judge_max(value, buckets, self.cost, self.mem_total, self.mem_available, self.limits)

    def accepts(self, value: int) -> bool:
        """Doctor accepts this max: a full table below CT201's warning, and the peak below
        CT101's. ``plan`` keeps such a max: any change to it is one nobody asked for."""
        usage = usage_severity(self.peak, value, self.limits)
        return self.judge(value).acceptable and usage is Severity.OK

    def operator_values(self) -> list[tuple[int, str]]:
        """The operator's max: the files' first (a module loaded after boot-time sysctl runs
        with the default, CT302: the fix is to apply theirs), then the running one; 0
        (unlimited, CT106) is never one to keep."""
        values = ((self.configured_max, "the configured value"), (self.current_max, ""))
        return [(value, whose) for value, whose in values if value]

    def headroom_max(self) -> int:
        """The least max that holds the peak below CT101's warning, a power of two."""
        share = max(self.limits.usage_warning, 1.0) / 100
        return power_of_two_at_least(math.ceil(self.peak / share))


@dataclass(frozen=True)
class SizingTarget:
    """One value a plan sets, why, and the kernel memory it accounts for."""

    name: str
    current: int | None
    value: int
    reason: str
    bytes: int = 0
    pct: float = 0.0  # of MemTotal
    current_bytes: int | None = None  # what the current value costs, where it matters
    current_pct: float | None = None  # of MemTotal

    @property
    def changes(self) -> bool:
        return self.current != self.value


@dataclass(frozen=True)
class Sizing:
    max: SizingTarget
    buckets: SizingTarget
    table_bytes: int  # a full table at the target: max x entry cost + buckets x 8 B
    table_pct: float
    budget_bytes: int
    refusal: str | None  # why this would be refused without --force (None: safe)
    notes: tuple[str, ...] = ()


def _pct(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def _budget(req: SizingInput) -> int:
    """Bytes the table may take without --force: the budget, never over MemAvailable."""
    budget = int(req.mem_total * req.budget_pct / 100)
    return budget if req.mem_available is None else min(budget, req.mem_available)


def _fits(req: SizingInput, maximum: int, buckets: int) -> bool:
    return table_bytes(maximum, buckets, req.cost) <= _budget(req)


def _auto_max(req: SizingInput, notes: list[str]) -> tuple[int, str]:
    """The operator's max while doctor accepts it (the files' first); else twice the peak, a
    power of two, never below the kernel default, within the budget; a max doctor flags
    for memory is lowered, but never below what holds the peak under CT101's warning."""
    floor = default_max(req.mem_total, req.kernel)
    want = max(power_of_two_at_least(2 * req.peak), floor)
    why = (
        f"2 x peak {req.peak:,} ({req.peak_source}), rounded up to a power of two"
        if want > floor
        else f"the kernel default for {req.mem_total / GIB:.1f} GiB already holds 2 x peak"
        f" {req.peak:,} ({req.peak_source})"
    )
    operator = req.operator_values()
    for kept, whose in operator:
        if req.accepts(kept):
            used, whose = 100.0 * req.peak / kept, whose or "keeps today's value"
            return kept, (
                f"{whose}: peak {req.peak:,} ({req.peak_source}) fills"
                f" {used:.0f} % of it and a full table takes {req.judge(kept).pct:.2f} % of"
                " MemTotal, both below doctor's warnings (CT101, CT201)"
            )
    if _fits(req, want, buckets_for(want, req.kernel)):
        return want, why
    capped = want  # a power of two: halving keeps it one, with its own buckets each time
    while capped > 1024 and not _fits(req, capped, buckets_for(capped, req.kernel)):
        capped //= 2
    notes.append(
        f"2 x peak {req.peak:,} needs {want:,} entries, more than the memory budget holds"
        f" ({capped:,}; {req.budget_pct:g} % of MemTotal, never over MemAvailable): shorten"
        " timeouts or NOTRACK the busiest port ('ctguard analyze' names candidates) instead"
        " of a bigger table"
    )
    highest = max((value for value, _ in operator), default=0)
    least = req.headroom_max()
    if capped < least and highest > capped:  # lowering a flagged max: not below the peak
        lowered = min(least, highest)
        return lowered, (
            f"the least power of two that holds peak {req.peak:,} ({req.peak_source}) below"
            f" {req.limits.usage_warning:g} % (CT101): lower would drop new flows"
        )
    if capped < req.peak:
        notes.append(
            f"the table has held {req.peak:,} entries: at {capped:,}, new flows are dropped"
            " until it drains below that"
        )
    return capped, "the largest power of two the memory budget holds"


def size_table(req: SizingInput) -> Sizing:
    """Target max and buckets for this host, each with its reason and memory cost.

    Automatic targets never exceed the budget (``budget_pct`` of MemTotal, and never more
    than MemAvailable). An explicit ``target_max``, or a budget over 25 %, is refused
    (``refusal`` set) when the full table would exceed the budget, 25 % of MemTotal or
    MemAvailable; ``force`` keeps the plan but the refusal text stays as a warning.
    """
    notes: list[str] = []
    if req.target_max is not None:
        maximum, why = req.target_max, "--target-max"
    else:
        maximum, why = _auto_max(req, notes)
    if maximum > KERNEL_MAX_LIMIT:  # only a MemTotal no machine has gets here
        notes.append(f"nf_conntrack_max {maximum:,} is over what the kernel accepts")
        maximum, why = KERNEL_MAX_LIMIT, "the kernel's largest nf_conntrack_max (INT_MAX)"
    buckets = min(buckets_for(maximum, req.kernel), KERNEL_BUCKETS_LIMIT)
    buckets_why = (
        "one bucket per entry (the kernel's own ratio since 5.15)"
        if buckets >= maximum
        else "a quarter of the max (the ratio of kernels before 5.15)"
    )
    current_buckets = req.current_buckets
    # keep today's buckets when enough and not oversized (a lowered max gets fewer heads)
    if current_buckets is not None and buckets <= current_buckets <= 2 * max(buckets, maximum):
        keep = table_bytes(maximum, current_buckets, req.cost) <= _budget(req)
        if keep or req.target_max is not None:
            buckets, buckets_why = current_buckets, "already enough for the max"
    need = table_bytes(maximum, buckets, req.cost)
    hard = int(req.mem_total * HARD_LIMIT_PCT / 100)
    limits = [(hard, f"{HARD_LIMIT_PCT:g} % of MemTotal")]
    if req.mem_available is not None:
        limits.append((req.mem_available, "MemAvailable"))
    highest = max((value for value, _ in req.operator_values()), default=0)
    if maximum > highest:  # the budget is what a plan may add, not what the operator has
        limits.append((_budget(req), f"the {req.budget_pct:g} % memory budget (--memory-budget)"))
    over = [(limit, label) for limit, label in limits if need > limit]
    refusal = None
    if over:
        limit, label = over[0]
        refusal = (
            f"nf_conntrack_max {maximum:,} would let the table take {need:,} bytes"
            f" ({_pct(need, req.mem_total):.1f} % of MemTotal {req.mem_total:,} B,"
            f" {req.cost.bytes} B per entry + 8 B per bucket), more than {label}"
            f" ({limit:,} bytes): entries are unswappable kernel memory and a full table can"
            " OOM or reboot the machine"
        )
    if req.budget_pct > HARD_LIMIT_PCT and refusal is None:
        refusal = f"--memory-budget {req.budget_pct:g} is over {HARD_LIMIT_PCT:g} % of MemTotal"
    entry_bytes = maximum * req.cost.bytes
    bucket_bytes = buckets * BUCKET_BYTES
    current_bytes = req.current_max * req.cost.bytes if req.current_max else None
    return Sizing(
        max=SizingTarget(
            "nf_conntrack_max", req.current_max, maximum, why, entry_bytes,
            _pct(entry_bytes, req.mem_total), current_bytes,
            None if current_bytes is None else _pct(current_bytes, req.mem_total),
        ),
        buckets=SizingTarget(
            "nf_conntrack_buckets", current_buckets, buckets, buckets_why, bucket_bytes,
            _pct(bucket_bytes, req.mem_total),
        ),
        table_bytes=need,
        table_pct=_pct(need, req.mem_total),
        budget_bytes=_budget(req),
        refusal=refusal,
        notes=tuple(notes),
    )  # fmt: skip


# -- timeouts ---------------------------------------------------------------------------
NAT_MIN_ESTABLISHED = 7440  # RFC 5382 REQ-5: 2 h 4 min for NATed TCP
ESTABLISHED_NO_NAT = 3600


@dataclass(frozen=True)
class TimeoutNeed:
    """A timeout the table shows keeping a majority alive, and the value that frees it."""

    name: str  # short name: tcp_timeout_time_wait
    proposed: int
    reason: str
    frees: int = 0  # entries that would already have expired (what-if)


def size_timeouts(
    current: dict[str, int],
    needs: list[TimeoutNeed],
    cost: EntryCost,
    mem_total: int,
    nat: bool,
    established: int | None = None,  # --established-timeout
) -> list[SizingTarget]:
    """Shorten only what the table shows dominating (docs/design.md §8); never below 7440 s for
    established TCP where NAT is in use (RFC 5382), unless the operator said so."""
    targets: list[SizingTarget] = []
    for need in needs:
        now = current.get(need.name)
        if need.name == "tcp_timeout_established" and established is not None:
            continue
        value = need.proposed
        if need.name == "tcp_timeout_established":
            value = NAT_MIN_ESTABLISHED if nat else ESTABLISHED_NO_NAT
        if now is not None and now <= value:
            continue
        freed = need.frees * cost.bytes
        targets.append(SizingTarget(
            f"nf_conntrack_{need.name}", now, value, need.reason, freed, _pct(freed, mem_total)
        ))  # fmt: skip
    if established is not None:
        now = current.get("tcp_timeout_established")
        why = "--established-timeout"
        if nat and established < NAT_MIN_ESTABLISHED:
            why += f" (below the {NAT_MIN_ESTABLISHED} s RFC 5382 asks for NATed TCP)"
        name = "nf_conntrack_tcp_timeout_established"
        targets.insert(0, SizingTarget(name, now, established, why))
    return targets
