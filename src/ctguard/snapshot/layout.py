"""What a snapshot holds (docs/design.md §5). Host paths keep their place under the root."""

from __future__ import annotations

from ctguard.host.caps import LOG_TAIL_BYTES as LOG_TAIL_BYTES  # the same tail, below
from ctguard.sources.identity import MACHINE_ID_FILES
from ctguard.sources.kernel_log import KERNEL_LOG_FILES
from ctguard.sources.tuned_config import (
    TUNED_ACTIVE_PROFILE,
    TUNED_MAIN_CONF,
    TUNED_POST_LOADED_PROFILE,
)

# Read literally (procfs/sysfs: their own links, such as /proc/net -> self/net, are
# followed by the kernel, and the file is stored at the path asked for).
KERNEL_FILES = (
    "/proc/sys/net/nf_conntrack_max",
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sys/net/ipv4/ip_local_port_range",  # where own connections start (analyze, notrack)
    "/proc/net/fib_trie",
    "/proc/net/if_inet6",
    "/proc/net/stat/nf_conntrack",
    "/proc/meminfo",
    "/proc/modules",
    "/proc/cmdline",
    "/proc/sys/kernel/osrelease",
    "/proc/sys/kernel/hostname",
    "/sys/module/nf_conntrack/initstate",
    "/sys/kernel/slab/nf_conntrack/object_size",
    "/sys/kernel/slab/nf_conntrack/slab_size",
)
KERNEL_DIRS = (
    "/proc/sys/net/netfilter",
    "/sys/module/nf_conntrack/parameters",
)
# Stored as empty files named after each entry (they are links into /sys/module).
HOLDERS_DIR = "/sys/module/nf_conntrack/holders"
TABLE_FILE = "/proc/net/nf_conntrack"

# Configuration: symbolic links are kept as (relative) links, so sysctl.d masking and
# the 99-sysctl.conf -> ../sysctl.conf link read the same as on the host.
CONFIG_FILES = (
    "/etc/sysctl.conf",
    "/etc/modprobe.conf",
    "/etc/modules",
    "/etc/sysconfig/iptables-config",
    "/etc/init.d/iptables",
    "/etc/rc.d/init.d/iptables",
    "/usr/libexec/iptables/iptables.init",
    TUNED_ACTIVE_PROFILE,
    TUNED_POST_LOADED_PROFILE,
    TUNED_MAIN_CONF,
    # which machine (with the hostname above): `ctguard report` tells hosts apart by both
    *MACHINE_ID_FILES,
)
# Programs whose presence matters (which systemd-sysctl a udev rule should run): stored as
# empty files, like the holders.
PRESENCE_MARKERS = ("/usr/lib/systemd/systemd-sysctl", "/lib/systemd/systemd-sysctl")
CONFIG_DIRS = (
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
    "/etc/modprobe.d",
    "/run/modprobe.d",
    "/usr/local/lib/modprobe.d",
    "/usr/lib/modprobe.d",
    "/lib/modprobe.d",
    "/etc/modules-load.d",
    "/run/modules-load.d",
    "/usr/local/lib/modules-load.d",
    "/usr/lib/modules-load.d",
    "/lib/modules-load.d",
    "/etc/sysconfig/modules",
    "/etc/udev/rules.d",
    "/run/udev/rules.d",
    "/usr/lib/udev/rules.d",
    "/lib/udev/rules.d",
)
# The same files and the same tail that doctor reads live, so a snapshot counts the same.
LOG_FILES = KERNEL_LOG_FILES

COMMANDS = (
    "iptables-save",
    "ip6tables-save",
    "nft-json",
    "dmesg",
    "lsmod",
    "ps",
    "conntrack-S",
    "uname-r",
    "ip-addr",
)
REDACTED_COMMANDS = (
    "dmesg",
    "ip-addr",
)  # the table dump (procfs or conntrack -L) is redacted by table()
# Any ctnetlink request makes the kernel load nf_conntrack_netlink and with it
# nf_conntrack: on a host without conntrack a snapshot must not ask.
CTNETLINK_COMMANDS = ("conntrack-S",)
