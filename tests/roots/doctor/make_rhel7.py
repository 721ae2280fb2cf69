"""Write the RHEL 7 system layer of the RHEL 7 scenarios (one definition, three roots).

Run from the repository root after changing it; README.md ("base of the RHEL 7 scenarios")
says what each file is and why. The layer is what a ``ctguard snapshot --no-table`` of a
RHEL 7 host with iptables-services stores and what differs from the RHEL 6 base the
scenarios were first copied from: systemd (the ``systemd-sysctl`` marker, systemd's own
sysctl.d and udev files, copied from tests/realworld/systemd-rhel7, see SOURCES.md), a
3.10 kernel's log lines and module list, systemd's process list, ``nf_conntrack_acct`` 0
(3.10 has no ``CONFIG_NF_CT_ACCT``), ``tstamp``/``timestamp`` 0 and ``nf_conntrack_helper`` 1.
Table figures, counters and each scenario's own files (sysctl.conf, sysctl.d, the
iptables-services files) are left as they are.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOTS = Path(__file__).parent
REAL = ROOTS.parents[1] / "realworld" / "systemd-rhel7"

# scenario -> (hostname, kernel release, its build line, the gcc that built it)
HOSTS = {
    "ct304-rhel74-greps-sysctl-conf": (
        "rhel74",
        "3.10.0-693.el7.x86_64",
        "#1 SMP Thu Jul 6 19:56:57 EDT 2017",
        "4.8.5-16",
    ),
    "ct304-rhel76-greps-sysctl-d-no-link": (
        "rhel76",
        "3.10.0-957.el7.x86_64",
        "#1 SMP Thu Oct 4 20:48:51 UTC 2018",
        "4.8.5-36",
    ),
    "ct304-near-rhel7-no-unload": (
        "near",
        "3.10.0-1127.el7.x86_64",
        "#1 SMP Tue Mar 31 23:36:51 UTC 2020",
        "4.8.5-39",
    ),
}

CONNTRACK_VERSION = "nf_conntrack version 0.5.0 (16384 buckets, 65536 max)"
SSHD = "sshd[{pid}]: Accepted publickey for ops from 10.20.0.15 port {port} ssh2"
SUDO = "sudo:      ops : TTY=pts/0 ; PWD=/home/ops ; USER=root ; COMMAND={command}"
# 3.10: no pr_fmt prefix and no final dot; the rate limiter is "net_ratelimit"
TABLE_FULL = "nf_conntrack: table full, dropping packet"
BOOT = (2, 26, 4 * 3600 + 12 * 60 + 3)  # Feb 26 04:12:03 2024 (a leap year)


def since_boot(month: int, day: int, clock: str) -> float:
    """Seconds from boot to a syslog time of Feb/Mar 2024."""
    h, m, sec = (int(x) for x in clock.split(":"))
    days = (day - BOOT[1]) if month == 2 else (29 - BOOT[1] + day)
    return float(days * 86400 + h * 3600 + m * 60 + sec - BOOT[2])


# (first line, lines in the burst, callbacks suppressed after it): 80 lines in all, the
# same evening as the RHEL 6 base (Mar 4 20:14:37 to 21:04:51)
BURSTS = [
    (since_boot(3, 4, "20:14:37") + 0.112803, 4, 1874),
    (since_boot(3, 4, "20:14:42") + 0.113264, 10, 6210),
    (since_boot(3, 4, "20:14:47") + 0.113901, 10, 7388),
    (since_boot(3, 4, "20:22:08") + 0.402117, 10, 5931),
    (since_boot(3, 4, "20:31:35") + 0.677045, 10, 2207),
    (since_boot(3, 4, "20:52:09") + 0.530412, 10, 4410),
    (since_boot(3, 4, "20:58:25") + 0.218733, 10, 8126),
    (since_boot(3, 4, "21:04:46") + 0.845120, 16, 3017),
]


def boot_lines(kernel: str, build: str, gcc: str, cmdline: str) -> list[tuple[float, str]]:
    return [
        (0.0, "Initializing cgroup subsys cpuset"),
        (0.0, "Initializing cgroup subsys cpu"),
        (0.0, "Initializing cgroup subsys cpuacct"),
        (
            0.0,
            f"Linux version {kernel} (mockbuild@x86-vm-26.build.eng.bos.redhat.com)"
            f" (gcc version 4.8.5 20150623 (Red Hat {gcc}) (GCC) ) {build}",
        ),
        (0.0, f"Command line: {cmdline}"),
        (0.0, "e820: BIOS-provided physical RAM map:"),
        (
            0.0,
            "Memory: 3893736k/4194304k available (7788k kernel code, 392k absent,"
            " 300176k reserved, 5954k data, 1984k init)",
        ),
        (2.311406, "systemd[1]: Detected virtualization vmware."),
        (2.514930, "systemd[1]: Set hostname to <{host}>."),
        (4.877213, "XFS (dm-0): Mounted V5 Filesystem"),
        (7.208117, "ip_tables: (C) 2000-2006 Netfilter Core Team"),
        (7.231550, CONNTRACK_VERSION),
        (7.262834, "ip6_tables: (C) 2000-2006 Netfilter Core Team"),
        (8.104226, "IPv6: ADDRCONF(NETDEV_UP): ens192: link is not ready"),
        (8.106001, "vmxnet3 0000:0b:00.0 ens192: intr type 3, mode 0, 5 vectors allocated"),
        (8.107338, "IPv6: ADDRCONF(NETDEV_CHANGE): ens192: link becomes ready"),
    ]


def table_full_lines() -> list[tuple[float, str]]:
    lines: list[tuple[float, str]] = []
    for start, count, suppressed in BURSTS:
        lines.extend((start + i * 0.000731, TABLE_FULL) for i in range(count))
        if suppressed:
            lines.append((start + 5.0, f"net_ratelimit: {suppressed} callbacks suppressed"))
    return lines


def at(line: tuple[float, str]) -> float:
    return line[0]  # a stable sort by time keeps the boot lines in their order


def dmesg_text(host: str, kernel: str, build: str, gcc: str, cmdline: str) -> str:
    restart = [
        # the 'systemctl restart iptables' that reloaded the module
        (since_boot(3, 4, "20:36:22") + 0.774402, CONNTRACK_VERSION),
    ]
    lines = sorted(boot_lines(kernel, build, gcc, cmdline) + table_full_lines() + restart, key=at)
    return "".join(f"[{t:12.6f}] {text.replace('{host}', host)}\n" for t, text in lines)


def syslog_time(seconds: float) -> str:
    days, rest = divmod(int(seconds) + BOOT[2], 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    day = 26 + days
    month, day = ("Feb", day) if day <= 29 else ("Mar", day - 29)
    return f"{month} {day:2d} {hours:02d}:{minutes:02d}:{secs:02d}"


def messages_text(host: str, dmesg: str) -> str:
    out = []
    for line in dmesg.splitlines():
        stamp, _, text = line.partition("] ")
        out.append((float(stamp.strip("[ ")), f"kernel: {text}"))
    out += [
        (2.6, "systemd: Started Apply Kernel Variables."),
        (7.1, "systemd: Starting IPv4 firewall with iptables..."),
        (7.4, "systemd: Started IPv4 firewall with iptables."),
        (since_boot(3, 4, "20:10:01"), "systemd: Started Session 4112 of user root."),
        (since_boot(3, 4, "20:34:58"), SSHD.format(pid=31020, port=50712)),
        (since_boot(3, 4, "20:36:21"), SUDO.format(command="/bin/systemctl restart iptables")),
        (since_boot(3, 4, "20:36:22"), "systemd: Stopping IPv4 firewall with iptables..."),
        (since_boot(3, 4, "20:36:22") + 0.5, "systemd: Starting IPv4 firewall with iptables..."),
        (since_boot(3, 4, "20:36:23"), "systemd: Started IPv4 firewall with iptables."),
        (since_boot(3, 4, "21:06:44"), SUDO.format(command="/bin/vi /etc/sysctl.conf")),
        (since_boot(3, 4, "21:07:30"), SUDO.format(command="/sbin/sysctl -p")),
        (since_boot(3, 5, "09:28:40"), SSHD.format(pid=4418, port=53380)),
        (
            since_boot(3, 5, "09:30:02"),
            SUDO.format(command=f"/usr/local/bin/ctguard snapshot --no-table -o /tmp/{host}/"),
        ),
    ]
    return "".join(f"{syslog_time(t)} {host} {text}\n" for t, text in sorted(out, key=at))


PS = """\
  PID COMMAND
    1 /usr/lib/systemd/systemd --switched-root --system --deserialize 22
  477 /usr/lib/systemd/systemd-journald
  503 /usr/sbin/lvmetad -f
  512 /usr/lib/systemd/systemd-udevd
  611 /sbin/auditd
  638 /usr/lib/systemd/systemd-logind
  640 /usr/bin/dbus-daemon --system --address=systemd: --nofork --nopidfile --systemd-activation
  652 /usr/sbin/chronyd
  660 /usr/sbin/crond -n
  671 /sbin/agetty --noclear tty1 linux
  998 /usr/sbin/sshd -D
  999 /usr/sbin/rsyslogd -n
 1344 /usr/bin/memcached -u memcached -p 11211 -m 512 -c 4096
 1371 /usr/sbin/httpd -DFOREGROUND
 2210 /usr/sbin/httpd -DFOREGROUND
 2211 /usr/sbin/httpd -DFOREGROUND
 2212 /usr/sbin/httpd -DFOREGROUND
 2213 /usr/sbin/httpd -DFOREGROUND
 4418 sshd: ops [priv]
 4421 sshd: ops@pts/0
 4422 -bash
 4470 sudo /usr/local/bin/ctguard snapshot --no-table -o /tmp/{host}/
 4471 /opt/ctguard/bin/python /usr/local/bin/ctguard snapshot --no-table -o /tmp/{host}/
 4476 ps -eo pid,args
"""

# RHEL 7 has IPv6 built in (no ipv6 module) and XFS root file systems
DROP_MODULES = {"ipv6", "ext4", "jbd2", "mbcache"}
ADD_MODULES = [
    ("xfs", "978100", "3", "", "0xffffffffc0390000"),
    ("libcrc32c", "12644", "2", "xfs,nf_conntrack,", "0xffffffffc0200000"),
]


def rewrite_modules(root: Path) -> None:
    proc = root / "proc/modules"
    rows = [ln.split(" ") for ln in proc.read_text().splitlines()]
    kept = [r for r in rows if r[0] not in DROP_MODULES]
    for row in kept:
        if row[3] != "-":
            users = [u for u in row[3].rstrip(",").split(",") if u and u not in DROP_MODULES]
            row[3] = ",".join(users) + "," if users else "-"
    present = {row[0] for row in kept}
    for name, size, used, by, addr in ADD_MODULES:
        if name not in present:  # the script can run again on its own output
            kept.append([name, size, used, by or "-", "Live", addr])
    proc.write_text("".join(" ".join(r) + "\n" for r in kept))
    lsmod = ["Module                  Size  Used by"]
    for name, size, used, by, *_ in kept:
        users = "" if by == "-" else by.rstrip(",")
        # kmod's format: "%-19s %8lu  %d", then " holder,holder"
        lsmod.append(f"{name:<19} {size:>8}  {used}" + (f" {users}" if users else ""))
    (root / "ctguard_commands/lsmod").write_text("\n".join(lsmod) + "\n")


def write(root: Path, path: str, text: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def systemd_layer(root: Path) -> list[str]:
    """systemd's files under usr/lib (lib links there, merged /usr); the host paths."""
    lib = root / "lib"
    if not lib.is_symlink():
        lib.symlink_to("usr/lib")
    write(root, "/usr/lib/systemd/systemd-sysctl", "")
    for path, real in (
        ("/usr/lib/sysctl.d/50-default.conf", "sysctl.d__50-default.conf"),
        ("/usr/lib/udev/rules.d/40-redhat.rules", "rules__40-redhat.rules"),
    ):
        write(root, path, (REAL / real).read_text())
    rules = (REAL / "rules__99-systemd.rules.in").read_text()
    # the build's substitution (configure: rootlibexecdir=/usr/lib/systemd on RHEL 7)
    write(
        root,
        "/usr/lib/udev/rules.d/99-systemd.rules",
        rules.replace("@rootlibexecdir@", "/usr/lib/systemd"),
    )
    return [
        "/usr/lib/systemd/systemd-sysctl",
        "/usr/lib/sysctl.d/50-default.conf",
        "/usr/lib/udev/rules.d/40-redhat.rules",
        "/usr/lib/udev/rules.d/99-systemd.rules",
    ]


def main() -> None:
    for name, (host, kernel, build, gcc) in HOSTS.items():
        root = ROOTS / name
        cmdline = (
            f"BOOT_IMAGE=/vmlinuz-{kernel} root=/dev/mapper/rhel-root ro crashkernel=auto"
            " rd.lvm.lv=rhel/root rd.lvm.lv=rhel/swap rhgb quiet LANG=en_US.UTF-8"
        )
        write(root, "/ctguard_commands/uname-r", kernel + "\n")
        write(root, "/proc/sys/kernel/osrelease", kernel + "\n")
        write(root, "/proc/sys/kernel/hostname", f"{host}.example.com\n")
        write(root, "/proc/cmdline", cmdline + "\n")
        dmesg = dmesg_text(host, kernel, build, gcc, cmdline)
        write(root, "/ctguard_commands/dmesg", dmesg)
        write(root, "/var/log/messages", messages_text(host, dmesg))
        write(root, "/ctguard_commands/ps", PS.replace("{host}", host))
        rewrite_modules(root)
        for saved in ("iptables-save", "ip6tables-save"):
            path = root / "ctguard_commands" / saved
            path.write_text(path.read_text().replace(" v1.4.7 ", " v1.4.21 "))
        netfilter = "/proc/sys/net/netfilter"
        write(root, f"{netfilter}/nf_conntrack_acct", "0\n")
        write(root, f"{netfilter}/nf_conntrack_timestamp", "0\n")
        write(root, f"{netfilter}/nf_conntrack_helper", "1\n")
        write(root, "/sys/module/nf_conntrack/parameters/acct", "0\n")
        write(root, "/sys/module/nf_conntrack/parameters/tstamp", "0\n")
        added = [
            *systemd_layer(root),
            f"{netfilter}/nf_conntrack_timestamp",
            f"{netfilter}/nf_conntrack_helper",
            "/sys/module/nf_conntrack/parameters/tstamp",
        ]
        manifest_path = root / "ctguard_manifest.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["hostname"] = f"{host}.example.com"
        manifest["captured"] = sorted(set(manifest["captured"]) | set(added))
        # /usr/lib/sysctl.d now exists; /lib/* resolve through the link, not listed apart
        manifest["absent"] = sorted(
            set(manifest["absent"]) - {"/usr/lib/sysctl.d", "/lib/sysctl.d"}
        )
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        print(name, host, kernel, file=sys.stderr)
    os.sync()


if __name__ == "__main__":
    main()
