"""nf_conntrack slab sizes from sysfs."""

from __future__ import annotations

import pytest

from ctguard.errors import ParseError
from ctguard.missing import Missing
from ctguard.sources.slab import SLAB_DIR, SlabSizes, read_slab


def test_object_and_slab_size(host, write):
    write(f"{SLAB_DIR}/object_size", "248\n")
    write(f"{SLAB_DIR}/slab_size", "256\n")
    assert read_slab(host) == SlabSizes(248, 256)


def test_no_slab_size_uses_object_size(host, write):
    write(f"{SLAB_DIR}/object_size", "320\n")
    assert read_slab(host) == SlabSizes(320, 320)


def test_slab_size_never_below_object_size(host, write):
    write(f"{SLAB_DIR}/object_size", "320\n")
    write(f"{SLAB_DIR}/slab_size", "300\n")
    assert read_slab(host) == SlabSizes(320, 320)


def test_absent(host, write):
    write(f"{SLAB_DIR}/slab_size", "256\n")  # without object_size it is not enough
    result = read_slab(host)
    assert isinstance(result, Missing)
    assert f"{SLAB_DIR}/object_size" in result.reason


def test_bad_value(host, write):
    write(f"{SLAB_DIR}/object_size", "n/a\n")
    with pytest.raises(ParseError, match="object_size"):
        read_slab(host)
