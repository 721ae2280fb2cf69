"""The names of the metrics `ctguard exporter` serves: the one list the exporter, the shipped
alert rules and the dashboard are checked against (docs/exporter.md explains each).

Base units, ``_total`` for counters; with ``--netns all`` the per-namespace series carry
``netns`` (name or inode), ``container_id`` and ``pod_uid``, all "" for the namespace ctguard
runs in.
"""

from __future__ import annotations

PREFIX = "ctguard_"
ENTRIES = "ctguard_conntrack_entries"
MAX = "ctguard_conntrack_max"
BUCKETS = "ctguard_conntrack_buckets"
# one counter per /proc/net/stat/nf_conntrack column (lowercased), summed over CPUs, named
# alike whether read from procfs or over netlink
STAT_COLUMNS = (
    "found", "invalid", "ignore", "insert", "insert_failed", "drop", "early_drop", "error",
    "search_restart", "clash_resolve", "chaintoolong",
)  # fmt: skip
STAT_TOTALS = tuple(f"ctguard_conntrack_stat_{column}_total" for column in STAT_COLUMNS)
STATS_SOURCE = "ctguard_conntrack_stats_source"  # {source="procfs"|"netlink"|"none"}
MEMORY_BYTES = "ctguard_conntrack_memory_bytes"
FULL_MEMORY_BYTES = "ctguard_conntrack_full_memory_bytes"
FULL_MEMORY_RATIO = "ctguard_conntrack_full_memory_ratio"
TIMEOUT_SECONDS = "ctguard_conntrack_timeout_seconds"  # {timeout="tcp_timeout_established"}
SETTING_DRIFT = "ctguard_conntrack_setting_drift"  # {key="net.netfilter.nf_conntrack_max"}
FINDING = "ctguard_finding"  # {id="CT102", severity="critical"|"warning"|"info"}
SCRAPE_DURATION = "ctguard_scrape_duration_seconds"
SOURCE_UP = "ctguard_source_up"  # {source="..."}
BUILD_INFO = "ctguard_exporter_build_info"  # {version="..."}
# --netns all: ENTRIES, STAT_TOTALS, STATS_SOURCE and SOURCE_UP gain the labels netns,
# container_id and pod_uid ("" for the exporter's own namespace); these two count namespaces
NETNS_FOUND = "ctguard_netns_found"
NETNS_LEFT_OUT = "ctguard_netns_left_out"

ALL = (
    ENTRIES, MAX, BUCKETS, *STAT_TOTALS, STATS_SOURCE, MEMORY_BYTES, FULL_MEMORY_BYTES,
    FULL_MEMORY_RATIO, TIMEOUT_SECONDS, SETTING_DRIFT, FINDING, SCRAPE_DURATION, SOURCE_UP,
    BUILD_INFO, NETNS_FOUND, NETNS_LEFT_OUT,
)  # fmt: skip
