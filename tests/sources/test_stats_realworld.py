"""node_exporter's /proc fixtures (tests/realworld/SOURCES.md): a real pre-5.10 stat file
(header with ``searched`` and ``delete_list``, 4 CPUs) and the count/max sysctls.

Expected values worked out by hand from the hex columns, not from the parser:
entries 0x21 = 33 on every line (global, taken once); invalid 3 + 2 + 1 + 0x2f (47) = 53;
ignore 0x588a + 0x56a4 + 0x58d4 + 0x5688 = 22666 + 22180 + 22740 + 22152 = 89738;
search_restart 0 + 2 + 1 + 4 = 7; every other counter 0 on every CPU.
"""

from __future__ import annotations

from pathlib import Path

from ctguard.sources.stats import parse_stat_file
from ctguard.sources.sysctl_runtime import parse_sysctl_int

REAL = Path(__file__).parents[1] / "realworld" / "proc" / "node_exporter"


def test_stat_file_counts() -> None:
    stats = parse_stat_file((REAL / "stat-nf_conntrack").read_text())
    assert stats.source == "procfs"
    assert stats.cpus == 4
    assert stats.entries == 33
    assert stats.get("invalid") == 53
    assert stats.get("ignore") == 89738
    assert stats.get("search_restart") == 7
    # no drop of any kind on this host: nothing for CT102/CT103/CT104 to report
    for name in ("drop", "early_drop", "insert_failed", "found", "new", "insert", "delete",
                 "icmp_error", "expect_new", "expect_create", "expect_delete"):  # fmt: skip
        assert stats.get(name) == 0, name
    # icmp_error is conntrack -S's "error": one counter under either name
    assert stats.get("error") == 0
    # pre-5.10 header: no clash_resolve or chaintoolong column, so not a zero but absent
    assert stats.get("clash_resolve") is None
    assert stats.get("chaintoolong") is None


def test_count_and_max() -> None:
    count = parse_sysctl_int((REAL / "nf_conntrack_count").read_text(), "nf_conntrack_count")
    limit = parse_sysctl_int((REAL / "nf_conntrack_max").read_text(), "nf_conntrack_max")
    assert (count, limit) == (123, 65536)
