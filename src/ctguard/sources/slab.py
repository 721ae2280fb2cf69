"""Size of one conntrack entry from SLUB's sysfs (``/sys/kernel/slab/nf_conntrack``)."""

from __future__ import annotations

from dataclasses import dataclass

from ctguard.host.root import SMALL_FILE_BYTES, HostRoot
from ctguard.missing import Missing
from ctguard.sources.sysctl_runtime import parse_sysctl_int

SLAB_DIR = "/sys/kernel/slab/nf_conntrack"


@dataclass(frozen=True)
class SlabSizes:
    object_size: int  # sizeof(struct nf_conn) as the cache sees it
    slab_size: int  # what one object really takes, alignment and metadata included


def read_slab(host: HostRoot) -> SlabSizes | Missing:
    """Two one-number files; on 6.x x86_64 ``object_size`` is ``248`` and ``slab_size`` ``256``.

    Only SLUB has this directory; SLAB kernels (RHEL 6) fall back to an estimate.
    """
    obj = host.try_read_text(f"{SLAB_DIR}/object_size", SMALL_FILE_BYTES)
    size = host.try_read_text(f"{SLAB_DIR}/slab_size", SMALL_FILE_BYTES)
    if isinstance(obj, Missing):
        return obj
    object_size = parse_sysctl_int(obj, f"{SLAB_DIR}/object_size")
    slab_size = (
        object_size
        if isinstance(size, Missing)
        else parse_sysctl_int(size, f"{SLAB_DIR}/slab_size")
    )
    return SlabSizes(object_size, max(slab_size, object_size))
