"""Every input a reader takes from a snapshot root, as host paths, for the fuzz tests.

Built from the snapshot layout (src/ctguard/snapshot/layout.py) and the captured commands
(host/commands.py), plus the few files the sources read that the layout does not name
(tuned's include chain, modules.builtin). test_snapshot_readers.py
checks the list both ways: every layout entry is here, and every file a command opens or
lists in any fixture root is covered by an entry (traced with an audit hook).

Three kinds of entry:
- FILES: one file each;
- DIRS: directories whose files are read (a fuzz case writes one of the base root's files in
  it, or a new one);
- PATTERNS: fnmatch patterns for files found through other files (a tuned profile named in
  active_profile), written at a concrete path (PATTERN_EXAMPLES) by the fuzz cases.
"""

from __future__ import annotations

import fnmatch

from ctguard.host.commands import CAPTURE_DIR, MANIFEST, NETLINK_STATS, SPECS
from ctguard.snapshot import layout
from ctguard.sources.manifest import INIT_NETNS_DIR
from ctguard.sources.sysctl_runtime import NETFILTER_DIR
from ctguard.sources.tuned_config import OCP_TUNED_RECOMMEND

# The commands a snapshot stores (layout.COMMANDS), the table fallback (conntrack -L) and
# the netlink counters: every name a CapturedCommands reader may ask for.
CAPTURED = (*layout.COMMANDS, "conntrack-L", "conntrack-C", "iptables-version", NETLINK_STATS)

FILES: tuple[str, ...] = (
    MANIFEST,
    *layout.KERNEL_FILES,
    layout.TABLE_FILE,
    *layout.CONFIG_FILES,
    *layout.PRESENCE_MARKERS,
    *layout.LOG_FILES,
    *(f"{CAPTURE_DIR}/{name}" for name in CAPTURED),
    "/proc/sys/net/netfilter/nf_conntrack_max",
    "/proc/sys/net/netfilter/nf_conntrack_count",
    "/proc/sys/net/netfilter/nf_conntrack_buckets",
    "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established",
    "/proc/sys/net/netfilter/nf_conntrack_acct",
    "/proc/sys/net/netfilter/nf_conntrack_events",
    "/sys/module/nf_conntrack/parameters/hashsize",
    f"{INIT_NETNS_DIR}{NETFILTER_DIR}/nf_conntrack_max",
    f"{INIT_NETNS_DIR}{NETFILTER_DIR}/nf_conntrack_buckets",
)
DIRS: tuple[str, ...] = (
    *layout.KERNEL_DIRS,
    layout.HOLDERS_DIR,  # the names matter, not the contents
    *layout.CONFIG_DIRS,
    OCP_TUNED_RECOMMEND,
    f"{INIT_NETNS_DIR}{NETFILTER_DIR}",
)
PATTERNS: tuple[str, ...] = (
    "/etc/tuned/*/tuned.conf",
    "/etc/tuned/profiles/*/tuned.conf",
    "/usr/lib/tuned/*/tuned.conf",
    "/usr/lib/tuned/profiles/*/tuned.conf",
    "/var/lib/ocp-tuned/profiles/*/tuned.conf",
    "/lib/modules/*/modules.builtin",
)
# where a fuzz case writes for each pattern: profiles the fixture roots activate, and the
# running kernel of the roots' osrelease files
PATTERN_EXAMPLES: tuple[str, ...] = (
    "/etc/tuned/web-fe/tuned.conf",
    "/usr/lib/tuned/throughput-performance/tuned.conf",
    "/usr/lib/tuned/openshift-node/tuned.conf",
    "/usr/lib/tuned/openshift/tuned.conf",
    "/lib/modules/6.1.0-18-amd64/modules.builtin",
    "/lib/modules/2.6.32-754.35.1.el6.x86_64/modules.builtin",
)
# files that hold JSON (structure-aware mutations apply to them too)
JSON_FILES = (MANIFEST, f"{CAPTURE_DIR}/nft-json", f"{CAPTURE_DIR}/ip-addr")
# every capture command name a reader may ask for is in SPECS or is the netlink counters
assert set(CAPTURED) <= {*SPECS, NETLINK_STATS}, set(CAPTURED) - {*SPECS, NETLINK_STATS}


def covered(path: str, listed: bool = False) -> bool:
    """Whether a fuzz case can reach ``path`` (a host path a reader opened, or listed)."""
    if path in FILES or path == "/":
        return True
    if listed and (path in DIRS or any(f.startswith(f"{path}/") for f in FILES)):
        return True
    if any(path.startswith(f"{d}/") for d in DIRS):
        return True
    return any(fnmatch.fnmatchcase(path, p) for p in PATTERNS)
