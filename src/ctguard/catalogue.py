"""The pitfall catalogue (design §4): stable IDs, titles, and the long story ``explain`` prints.

Each entry says what goes wrong (``cause``), how to prove it on the reader's host with
read-only commands (``proof``, one command per line with ``# what to look for``), the exact
manual fix, complete on its own (``fix``), and where the facts come from (``refs``). A
ctguard command that does not exist yet is named only as "(coming: `ctguard exporter` ...)".
Kernel facts were checked against the kernel sources named in ``refs``.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    id: str
    title: str
    family: str  # usage, memory, persistence, timeouts, bypass, observability
    cause: str = ""
    proof: str = ""  # how to prove it on your host (commands)
    fix: str = ""
    refs: tuple[str, ...] = ()


def _text(block: str) -> str:
    """A triple-quoted block without its source indentation and surrounding blank lines."""
    return textwrap.dedent(block).strip("\n")


_SYSCTL_DOC = "Documentation/networking/nf_conntrack-sysctl.rst"

_ENTRIES = (
    Entry(
        "CT101",
        "conntrack table usage is high",
        "usage",
        cause=_text(
            """
            Every flow the kernel tracks holds one entry until its timeout expires. When the
            count reaches nf_conntrack_max, a new flow first tries to evict an unassured entry
            near its own hash slot (early_drop, CT103); if there is none, its packet is dropped
            (CT102). After such a failure, recent kernels' garbage collector also evicts
            unassured entries and TCP entries in closing states while usage stays >= 95 %, so
            trouble starts before 100 %. The limit is global, but each network namespace's
            count is checked against it on its own: a container's namespace can be full while
            the host's count looks fine. `ctguard doctor` warns at 80 %, critical at 95 %.
            """
        ),
        proof=_text(
            """
            cat /proc/sys/net/netfilter/nf_conntrack_count  # entries now (this namespace)
            cat /proc/sys/net/netfilter/nf_conntrack_max    # limit; count/max >= 0.80 is CT101
            ctguard status --interval 5  # usage %, drop/early_drop per second
            nsenter -t "$PID" -n cat /proc/sys/net/netfilter/nf_conntrack_count  # a container
            """
        ),
        fix=_text(
            """
            First see what fills it: states (CT402's proof) and ports (CT505's proof). If one
            dominates, cut the source (CT505 NOTRACK, CT401/CT402 timeouts) before buying a
            bigger table. Otherwise raise max to about 2 x the observed peak, a power of two,
            only as far as RAM allows (CT201: roughly 300-500 B per entry plus 8 B per bucket),
            and raise the buckets with it (CT105). Now and for every boot:
              sysctl -w net.netfilter.nf_conntrack_max=<N>
              /etc/sysctl.d/90-conntrack.conf:  net.netfilter.nf_conntrack_max = <N>
            If it does not survive a reboot or a firewall restart, see CT301-CT304.
            `ctguard plan` sizes N from the observed peak and a memory budget.
            """
        ),
        refs=(
            f"{_SYSCTL_DOC} (nf_conntrack_count, nf_conntrack_max)",
            "net/netfilter/nf_conntrack_core.c __nf_conntrack_alloc, early_drop, gc_worker",
        ),
    ),
    Entry(
        "CT102",
        "packets dropped because the table was full",
        "usage",
        cause=_text(
            """
            The table was full and nothing could be evicted: __nf_conntrack_alloc() found no
            unassured entry in the 8 hash slots starting at the new flow's, so the packet that
            would have created the entry was dropped, stat `drop` went up and the kernel logged
            "nf_conntrack: table full, dropping packet" (6.x: "table full in netns N, ...").
            Established flows keep working; new ones fail: clients see SYN retransmits and
            seconds of delay, DNS lookups time out, local senders get EPERM. The log line is
            rate-limited, so it undercounts. On newer kernels an insert clash that cannot be
            resolved is also counted in `drop` (together with insert_failed, CT104), so
            `drop - insert_failed` or the log line is the reliable sign.
            """
        ),
        proof=_text(
            """
            dmesg -T | grep 'table full'  # "table full, dropping packet" (needs root)
            journalctl -k --since yesterday | grep -c 'table full'  # how often (a floor)
            conntrack -S | grep -Eo '(^|[[:space:]])(drop|insert_failed)=[0-9]+'  # per CPU
            ctguard status --interval 5  # drops per second right now
            """
        ),
        fix=_text(
            """
            Now: make room without risking memory. Raise the limit only within RAM (CT201):
              sysctl -w net.netfilter.nf_conntrack_max=<N>
            or shed entries you can afford to lose: conntrack -D -p tcp --state TIME_WAIT.
            Then fix it durably: persist the limit, and raise the buckets with it (CT105):
              /etc/sysctl.d/90-conntrack.conf:  net.netfilter.nf_conntrack_max = <N>
            and cut what fills the table (see CT402's and CT505's proofs): take a busy port
            that is not NATed out of conntrack (CT505), shorten the timeout of the dominating
            state (CT401/CT402). `ctguard analyze` shows what fills the table.
            """
        ),
        refs=(
            "net/netfilter/nf_conntrack_core.c __nf_conntrack_alloc (log), nf_conntrack_in (drop)",
            f"{_SYSCTL_DOC} (nf_conntrack_max)",
            "conntrack(8) -S",
        ),
    ),
    Entry(
        "CT103",
        "entries early-dropped to make room",
        "usage",
        cause=_text(
            """
            When the table is full, a new flow evicts an entry that is not ASSURED (no reply
            yet, or a TCP handshake not completed) in the 8 hash slots starting at its own and
            counts it in `early_drop`. Nothing is logged and `drop` stays 0, so this pressure
            is invisible unless you read the counter. It means the table is full of half-open
            flows: UDP without replies (DNS to a dead server, syslog/statsd fire-and-forget,
            scans), SYN_SENT to unreachable hosts, or an inbound SYN flood. The evicted flows
            rarely matter, but once the table is full of assured entries the kernel drops
            packets instead (CT102).
            """
        ),
        proof=_text(
            """
            conntrack -S | grep -Eo 'early_drop=[0-9]+'  # > 0 on any CPU
            conntrack -L -p udp | grep -c UNREPLIED  # unreplied UDP entries
            conntrack -L -p tcp --state SYN_SENT | wc -l  # outbound SYNs never answered
            sysctl -a 2>/dev/null | grep -E 'conntrack_(udp_timeout|tcp_timeout_syn)'  # timers
            """
        ),
        fix=_text(
            """
            Shorten the life of the half-open flows the table shows, and only those, e.g.:
              sysctl -w net.netfilter.nf_conntrack_udp_timeout=10           (default 30)
              sysctl -w net.netfilter.nf_conntrack_tcp_timeout_syn_sent=30  (default 120)
            and persist the same `key = value` lines in /etc/sysctl.d/90-conntrack.conf.
            Keep nf_conntrack_udp_timeout_stream >= 120 s where the host NATs (RFC 4787).
            If the flows belong to one service that needs no state and is not NATed (a DNS
            resolver on udp/53), take its port out of conntrack instead (CT505). Then re-check
            max (CT101). `ctguard plan` proposes only what the table justifies.
            """
        ),
        refs=(
            "net/netfilter/nf_conntrack_core.c early_drop, early_drop_list",
            f"{_SYSCTL_DOC} (udp_timeout, tcp_timeout_syn_sent)",
            "RFC 4787 REQ-5 (UDP mapping timer >= 2 minutes)",
        ),
    ),
    Entry(
        "CT104",
        "conntrack insert failures (clashes)",
        "usage",
        cause=_text(
            """
            Two packets of one new flow were processed at the same time on different CPUs:
            both created an unconfirmed entry, and the second to reach __nf_conntrack_confirm()
            found the tuple already taken. The classic case is glibc sending the A and AAAA
            queries of one lookup together from one UDP socket; behind a DNAT (a Kubernetes
            Service VIP for the cluster DNS) the two may even be sent to different backends.
            The losing packet is dropped and the lookup waits out its 5 s resolver timeout.
            Newer kernels resolve most such clashes and count them in clash_resolve
            ("clashres" in procfs). Since 5.15 insert_failed also counts inserts refused
            because a hash chain grew too long (chaintoolong, CT105).
            """
        ),
        proof=_text(
            """
            conntrack -S | grep -Eo 'insert_failed=[0-9]+'  # > 0 and rising: lost races
            conntrack -S | grep -Eo 'clash_resolve=[0-9]+'  # clashes the kernel repaired
            conntrack -S | grep -Eo 'chaintoolong=[0-9]+'  # > 0: fix CT105 first
            grep '^options' /etc/resolv.conf  # single-request? (glibc clients only)
            """
        ),
        fix=_text(
            """
            The fix is in the kernel and the resolver path, not in conntrack settings:
            - Kernel: 4.19 merges identical clashing entries (ed07d9a021df), 5.0 stops NAT
              from re-mapping them (4e35c1cb9460), 5.6 keeps the loser when NAT chose another
              backend (6a757c07e51f); distribution kernels often carry backports.
            - glibc clients: `options single-request` in resolv.conf (Kubernetes: the pod's
              dnsConfig.options) sends A and AAAA one after the other; musl ignores it.
            - Kubernetes: NodeLocal DNSCache takes DNS off the DNAT path entirely.
            If chaintoolong rises as well, raise the buckets first (CT105).
            """
        ),
        refs=(
            "net/netfilter/nf_conntrack_core.c __nf_conntrack_confirm, nf_ct_resolve_clash",
            "resolv.conf(5) single-request",
            "conntrack(8) -S",
        ),
    ),
    Entry(
        "CT105",
        "hash chains are long (too few buckets)",
        "usage",
        cause=_text(
            """
            Entries live in a hash table of nf_conntrack_buckets slots. Each entry is linked
            twice (original and reply direction), so a lookup walks a chain of about
            2 x count / buckets entries, for every packet, in softirq. Before 5.15 the default
            was max = 4 x buckets; 5.15 made it max = buckets (chains of about 2 when full).
            Raising nf_conntrack_max without the buckets gives long chains and more CPU per
            packet exactly when the table is busiest. Since 5.15 an insert is refused when a
            chain grows past a randomised limit of 50-80 entries: the packet is dropped and
            counted in chaintoolong ("chainlength" in procfs) and insert_failed.
            `ctguard doctor` flags max/buckets > 4.
            """
        ),
        proof=_text(
            """
            sysctl -n net.netfilter.nf_conntrack_max  # max
            sysctl -n net.netfilter.nf_conntrack_buckets  # max/buckets > 4 is CT105
            conntrack -S | grep -Eo 'chaintoolong=[0-9]+'  # > 0: inserts refused (5.15+)
            head -1 /proc/net/stat/nf_conntrack  # has a chainlength column on 5.15+
            """
        ),
        fix=_text(
            """
            Raise the buckets to max (5.15+; max/4 is acceptable before), a power of two.
            At runtime, initial namespace only; the table is rehashed under a global lock (a
            short stall) and costs 8 B per bucket:
              sysctl -w net.netfilter.nf_conntrack_buckets=<N>
            (where that key is read-only: echo <N> > /sys/module/nf_conntrack/parameters/hashsize)
            Persist it for the next module load (CT303):
              /etc/modprobe.d/ctguard-conntrack.conf:  options nf_conntrack hashsize=<N>
            `ctguard apply` does both steps.
            """
        ),
        refs=(
            "net/netfilter/nf_conntrack_core.c __nf_conntrack_confirm, nf_conntrack_hash_resize",
            f"{_SYSCTL_DOC} (nf_conntrack_buckets)",
            "kernel commit d7e7747ac5c2 (refuse insertion if chain has grown too large)",
        ),
    ),
    Entry(
        "CT106",
        "table is unlimited (nf_conntrack_max = 0)",
        "usage",
        cause=_text(
            """
            nf_conntrack_max = 0 disables the limit: __nf_conntrack_alloc() checks the count
            only when max is non-zero, and nothing is ever early-dropped. Entries are then
            bounded by memory alone, allocated with GFP_ATOMIC from a slab that no memory
            cgroup is charged for, unswappable, freed only when their timeouts expire. A SYN
            flood, a UDP scan or a client bug can take gigabytes of kernel memory until
            allocations fail or the OOM killer runs; with vm.panic_on_oom or kernel.panic set,
            the host reboots. No "table full" line warns first; on 5.15+ only the chain-length
            limit (CT105) brakes it. 0 is usually set by someone who read it as "auto".
            """
        ),
        proof=_text(
            """
            sysctl -n net.netfilter.nf_conntrack_max  # 0 = unlimited
            grep -rn conntrack_max /etc/sysctl.conf /etc/sysctl.d  # who set it
            grep -E '^(MemTotal|MemAvailable):' /proc/meminfo  # what a flood could take
            sysctl vm.panic_on_oom kernel.panic  # would an OOM reboot the host?
            """
        ),
        fix=_text(
            """
            Set a bounded max. A safe stopgap is the kernel default for a 64-bit host with
            more than 4 GiB (about 100 MiB at most):
              sysctl -w net.netfilter.nf_conntrack_max=262144
            If nf_conntrack_count is already higher, new flows are dropped until it falls:
            set the limit above the count first. Then delete the line that sets 0 (the proof's
            grep finds it) and persist the limit:
              /etc/sysctl.d/90-conntrack.conf:  net.netfilter.nf_conntrack_max = 262144
            For good, size it to 2 x the observed peak, at least the kernel default for this
            RAM and within the memory budget (CT201): `ctguard plan` sizes it.
            """
        ),
        refs=(
            "net/netfilter/nf_conntrack_core.c __nf_conntrack_alloc",
            f"{_SYSCTL_DOC} (nf_conntrack_max)",
        ),
    ),
    Entry(
        "CT201",
        "nf_conntrack_max is unsafe for this machine's memory",
        "memory",
        cause=_text(
            """
            Each entry costs its nf_conntrack slab object (248 B in a 256 B slot on 6.x,
            304-384 B on older kernels) plus an extension area (accounting, timestamps,
            labels, helpers: up to about 128 B); the hash table costs 8 B per bucket. Entries
            are allocated with GFP_ATOMIC and charged to no memory cgroup, so nothing but
            nf_conntrack_max stops them, and each namespace may hold up to max on its own.
            A max copied from a tuning guide (10 M is common) promises about 3.6 GiB of
            unswappable kernel memory; on a small box a flood then ends in OOM kills, or in a
            reboot with vm.panic_on_oom or kernel.panic. `ctguard doctor` warns when max x
            entry cost + buckets x 8 B reaches 10 % of MemTotal, and is critical at 25 % or
            above MemAvailable.
            """
        ),
        proof=_text(
            """
            sysctl -n net.netfilter.nf_conntrack_max  # the promise
            sysctl -n net.netfilter.nf_conntrack_buckets  # 8 B each, allocated up front
            cat /sys/kernel/slab/nf_conntrack/slab_size  # bytes per entry slot (SLUB)
            grep -E '^(MemTotal|MemAvailable):' /proc/meminfo  # what it is measured against
            ctguard status  # estimated kernel memory now and at max
            """
        ),
        fix=_text(
            """
            Lower max to 2 x the observed peak rounded up to a power of two, so that a full
            table (max x entry cost + buckets x 8 B) stays within about 5 % of MemTotal, and
            never above 25 % or MemAvailable. Now, and in the file that sets it (CT301):
              sysctl -w net.netfilter.nf_conntrack_max=<N>
              /etc/sysctl.d/90-conntrack.conf:  net.netfilter.nf_conntrack_max = <N>
            Lowering max evicts nothing: if the count is above the new max, new flows are
            dropped until it falls, so lower it at a quiet time or in steps. If the peak
            really needs more than the budget, cut the demand instead (CT505 NOTRACK,
            CT401/CT402 timeouts) or add RAM. `ctguard plan` computes N and its cost in
            bytes.
            """
        ),
        refs=(
            "net/netfilter/nf_conntrack_core.c nf_conntrack_init_start, init_conntrack",
            "net/netfilter/nf_conntrack_extend.c nf_ct_ext_add",
            f"{_SYSCTL_DOC} (nf_conntrack_max, nf_conntrack_buckets)",
        ),
    ),
    Entry(
        "CT301",
        "runtime value differs from the configured one",
        "persistence",
        cause=_text(
            """
            The value in /proc/sys is not the one the sysctl files say should win.
            systemd-sysctl (and `sysctl --system`) read *.conf from /etc/sysctl.d,
            /run/sysctl.d, /usr/local/lib/sysctl.d and /usr/lib/sysctl.d (a file name in an
            earlier directory masks the same name in a later one), apply all files sorted by
            name, and the last assignment wins; /etc/sysctl.conf comes in as 99-sysctl.conf,
            or last with `sysctl --system`. net.nf_conntrack_max and
            net.netfilter.nf_conntrack_max are one value under two names, so a later file
            using the other spelling silently overrides yours. The runtime value also moves
            behind the files' back: `sysctl -w` by hand, a module reload (CT302/CT304), an
            agent (CT306). Either way the next boot gives another value than today.
            """
        ),
        proof=_text(
            """
            sysctl net.netfilter.nf_conntrack_max net.nf_conntrack_max  # the kernel, now
            systemd-analyze cat-config sysctl.d | grep -E '^# /|conntrack'  # in order; last wins
            grep -rn conntrack /etc/sysctl.conf /etc/sysctl.d /usr/lib/sysctl.d  # every setter
            ctguard doctor --only CT301  # which file and line wins, and the runtime value
            """
        ),
        fix=_text(
            """
            Keep each conntrack key in one place and make that place win: one drop-in, e.g.
            /etc/sysctl.d/90-conntrack.conf, and delete or align every other line that sets
            the key (both spellings of max; /etc/sysctl.conf counts as 99-sysctl.conf, so it
            wins over 90-). Then apply only the conntrack keys and re-read them (Debian
            without merged /usr: /lib/systemd/systemd-sysctl):
              /usr/lib/systemd/systemd-sysctl --prefix=/net/netfilter --prefix=/net/nf_conntrack_max
              sysctl net.netfilter.nf_conntrack_max
            If the value drifts again, find the writer: CT302 (module reload), CT304 (firewall
            restart), CT306 (agents). `ctguard apply` writes and verifies it.
            """
        ),
        refs=(
            "sysctl.d(5)",
            "systemd-sysctl.service(8) --prefix",
            "systemd-analyze(1) cat-config",
        ),
    ),
    Entry(
        "CT302",
        "settings are applied before the conntrack module loads",
        "persistence",
        cause=_text(
            """
            net.netfilter.* keys (and net.nf_conntrack_max) exist only while nf_conntrack is
            loaded. systemd-sysctl runs early at boot, usually before a firewall or container
            runtime pulls the module in; it finds no such file, skips the key (at most a
            "Couldn't write ... No such file or directory" line) and never looks again. When
            the module loads later it starts from compiled-in defaults: max and buckets from
            RAM size, a 5-day ESTABLISHED timeout. The same happens at every later load: a
            firewall restart that unloads it (CT304), `modprobe -r` during maintenance. The
            files look right, `sysctl --system` by hand "fixes" it, and the next boot undoes
            it. Built-in conntrack (no /sys/module/nf_conntrack/initstate) is not affected.
            """
        ),
        proof=_text(
            """
            cat /sys/module/nf_conntrack/initstate  # "live" = a module, so it can load late
            journalctl -b -u systemd-sysctl | grep -i conntrack  # "Couldn't write" = skipped
            grep -rs nf_conntrack /etc/modules-load.d /usr/lib/modules-load.d  # loaded early?
            grep -rs conntrack /etc/udev/rules.d  # a rule that re-applies sysctls on load?
            sysctl net.netfilter.nf_conntrack_max  # compare with your sysctl files
            """
        ),
        fix=_text(
            """
            Re-apply the keys whenever the module appears, with the udev rule sysctl.d(5)
            recommends: /etc/udev/rules.d/90-ctguard-conntrack.rules, one line (shown on two),
            with the systemd-sysctl path of this distribution:
              ACTION=="add", SUBSYSTEM=="module", KERNEL=="nf_conntrack",
              RUN+="/usr/lib/systemd/systemd-sysctl --prefix=/net/netfilter"
            The alternative, loading it before systemd-sysctl runs, covers boot but not later
            reloads: echo nf_conntrack > /etc/modules-load.d/ctguard-conntrack.conf
            Without systemd (RHEL 6): an executable /etc/sysconfig/modules/nf_conntrack.modules
            running `modprobe nf_conntrack`, plus the iptables service load list (CT304).
            `ctguard plan` shows and `ctguard apply` writes the udev rule.
            """
        ),
        refs=(
            "sysctl.d(5) (keys of modules: a udev rule, or modules-load.d)",
            "udev(7)",
            "modules-load.d(5)",
            "systemd-sysctl.service(8) --prefix",
        ),
    ),
    Entry(
        "CT303",
        "hash table size is not persistent",
        "persistence",
        cause=_text(
            """
            The bucket count is chosen when nf_conntrack loads: the hashsize= module parameter
            if given, else from RAM (5.15+: 262144 on 64-bit hosts above 4 GiB, 65536 above
            1 GiB). Raising it later, with `sysctl -w net.netfilter.nf_conntrack_buckets=N` or
            by writing /sys/module/nf_conntrack/parameters/hashsize, resizes the live table
            only: the next load (reboot, firewall restart, module reload) is back to the
            default while a raised max usually persists via sysctl.d, so the chains grow long
            again (CT105). A buckets line in sysctl.d only works if the module is loaded
            before systemd-sysctl runs (CT302). Also: with hashsize= given, the default max
            becomes 8 x hashsize (instead of 1 x, or 4 x before 5.15): always set max too.
            """
        ),
        proof=_text(
            """
            sysctl -n net.netfilter.nf_conntrack_buckets  # buckets now
            modprobe -c | grep -E '^options nf_conntrack .*hashsize'  # empty: default next load
            grep -o 'nf_conntrack.hashsize=[0-9]*' /proc/cmdline  # where built-in needs it
            ls /sys/module/nf_conntrack/initstate  # absent = built in (use the cmdline)
            """
        ),
        fix=_text(
            """
            Persist the bucket count where the kernel reads it at load time (N = max on 5.15+,
            a power of two), keep max explicit, and set the runtime value now (CT105):
              /etc/modprobe.d/ctguard-conntrack.conf:  options nf_conntrack hashsize=<N>
              /etc/sysctl.d/90-conntrack.conf:  net.netfilter.nf_conntrack_max = <max>
            If nf_conntrack is loaded from the initramfs, rebuild it (dracut -f, or
            update-initramfs -u). Built-in conntrack: add nf_conntrack.hashsize=<N> to the
            kernel command line (grubby --update-kernel=ALL --args=..., or GRUB_CMDLINE_LINUX
            and regenerate grub.cfg); it takes effect at the next boot.
            `ctguard plan` shows and `ctguard apply` writes both files and sets the runtime values.
            """
        ),
        refs=(
            "modprobe.d(5) options",
            "net/netfilter/nf_conntrack_core.c nf_conntrack_init_start, nf_conntrack_set_hashsize",
            f"{_SYSCTL_DOC} (nf_conntrack_buckets)",
        ),
    ),
    Entry(
        "CT304",
        "firewall service restart resets conntrack settings",
        "persistence",
        cause=_text(
            """
            RHEL's iptables init script (RHEL 6 /etc/init.d/iptables, RHEL 7
            /usr/libexec/iptables/iptables.init) unloads nf_conntrack and all its users on stop
            and restart when IPTABLES_MODULES_UNLOAD is "yes" or unset: the table is emptied
            and every conntrack setting returns to its compiled-in default. On start it
            re-applies only lines matched by `fgrep` of each IPTABLES_SYSCTL_LOAD_LIST item, in
            the files that script version reads: /etc/sysctl.conf (RHEL 6, plus sysctl.d/*.conf
            from 1.4.7-17; RHEL 7 up to 1.4.21-20), then /etc/sysctl.d/* only (RHEL 7 from
            1.4.21-21). fgrep is a substring match: "net.nf_conntrack" matches
            net.nf_conntrack_max but not net.netfilter.nf_conntrack_* nor the old ip_conntrack
            names. Every unmatched key is silently back at its default after each restart.
            """
        ),
        proof=_text(
            """
            grep -E '^IPTABLES_(MOD|SYSCTL)' /etc/sysconfig/iptables-config  # unset = unload
            grep -hn fgrep /etc/init.d/iptables /usr/libexec/iptables/iptables.init  # files read
            grep -rh conntrack /etc/sysctl.conf /etc/sysctl.d  # keys an item must match
            rpm -q iptables iptables-services  # RHEL 7: 1.4.21-29 and later never unload
            """
        ),
        fix=_text(
            """
            In /etc/sysconfig/iptables-config (keep a copy) set:
              IPTABLES_SYSCTL_LOAD_LIST=".nf_conntrack"
            ".nf_conntrack" is a substring of net.nf_conntrack_max and of every
            net.netfilter.nf_conntrack_* key; add ".ip_conntrack" (space-separated) if your
            files use the old alias names. Keep the keys in a file your script version greps
            (RHEL 7 from 1.4.21-21: /etc/sysctl.d/*, not /etc/sysctl.conf). Do the same for
            IP6TABLES_SYSCTL_LOAD_LIST in /etc/sysconfig/ip6tables-config: that script unloads
            the same module. IPTABLES_MODULES_UNLOAD="no" instead keeps settings and entries
            across restarts, but then a stop no longer empties a full table (CT305).
            `ctguard apply` sets the load lists, with a backup (`ctguard rollback` undoes).
            """
        ),
        refs=(
            "RHEL iptables-config comments: IPTABLES_MODULES_UNLOAD, IPTABLES_SYSCTL_LOAD_LIST",
            "RHEL iptables init script: stop() with NF_MODULES_COMMON, load_sysctl()",
            "RHEL iptables.spec changelog: rhbz#1459673, RHBZ#1402021, RHBZ#1520534",
        ),
    ),
    Entry(
        "CT305",
        "firewall stop can no longer relieve a full table",
        "persistence",
        cause=_text(
            """
            Someone removed nf_conntrack from NF_MODULES_COMMON=(x_tables nf_nat nf_conntrack)
            in the iptables init script, usually to stop restarts from resetting the conntrack
            sysctls (CT304). Two things follow. `service iptables stop`, the classic emergency
            move on a host whose table is full, no longer empties it: the module and its
            entries stay until they time out, and tracking usually continues. And the init
            script is not a config file in the package: the next iptables update overwrites it
            without a .rpmnew, so the reset behaviour silently comes back, on a day nobody
            remembers the edit.
            """
        ),
        proof=_text(
            """
            grep -hn 'NF_MODULES_COMMON=' /etc/init.d/iptables  # nf_conntrack missing = edited
            rpm -Vf /etc/init.d/iptables  # a "5" in the flags: differs from the package
            rpm -Vf /usr/libexec/iptables/iptables.init  # the same on RHEL 7
            grep '^IPTABLES_MODULES_UNLOAD' /etc/sysconfig/iptables-config  # the real switch
            """
        ),
        fix=_text(
            """
            Put the packaged script back (keep a copy of the edited one first):
              yum reinstall iptables            (RHEL 7: yum reinstall iptables-services)
            then use CT304's fix (IPTABLES_SYSCTL_LOAD_LIST=".nf_conntrack" in iptables-config)
            so restarts re-apply your conntrack keys. If restarts must not touch conntrack at
            all, set IPTABLES_MODULES_UNLOAD="no" in /etc/sysconfig/iptables-config: that file
            survives updates. To relieve a full table without unloading anything, delete what
            you can lose: conntrack -D -p udp, or conntrack -F as a last resort (it also drops
            NAT state).
            """
        ),
        refs=(
            "RHEL iptables init script: stop(), rmmod_r, NF_MODULES_COMMON",
            "iptables.spec %files: the init script is not %config, iptables-config is "
            "%config(noreplace)",
            "rpm(8) --verify",
        ),
    ),
    Entry(
        "CT306",
        "another agent owns these conntrack settings",
        "persistence",
        cause=_text(
            """
            Something other than sysctl.d re-asserts these values, so editing sysctl files
            loses at that agent's next start. kube-proxy sets nf_conntrack_max to
            max(conntrack.maxPerCore x CPUs, conntrack.min) (defaults 32768 and 131072),
            raises /sys/module/nf_conntrack/parameters/hashsize to max/4, and sets
            tcp_timeout_established (24 h) and tcp_timeout_close_wait (1 h) at every start;
            newer versions can also set tcp_be_liberal and the UDP timeouts. tuned applies
            its profile's [sysctl] section, then re-applies the system sysctl files when
            reapply_sysctl=1 (the default). Configuration management (Ansible, Puppet, Salt,
            Chef) rewrites whatever its role says on every run.
            """
        ),
        proof=_text(
            """
            ps -eo pid,args | grep -E '[k]ube-proxy|[t]uned'  # which agents run here
            ps -eo args | grep -o -- '--conntrack-[a-z-]*=[^ ]*'  # kube-proxy flags
            kubectl -n kube-system get cm kube-proxy -o yaml | grep -A7 'conntrack:'  # config
            tuned-adm active  # the active tuned profile
            grep -rs conntrack /etc/tuned /usr/lib/tuned  # tuned profiles that set it
            """
        ),
        fix=_text(
            """
            Change the value at its owner, then let `ctguard doctor` check it:
            - kube-proxy: in KubeProxyConfiguration set conntrack.maxPerCore, conntrack.min,
              conntrack.tcpEstablishedTimeout, conntrack.tcpCloseWaitTimeout (flags
              --conntrack-max-per-core, --conntrack-min, --conntrack-tcp-timeout-*); 0 (or 0s)
              leaves the kernel value alone, after which sysctl.d owns it (CT301).
            - tuned: override the [sysctl] section in a custom profile
              (/etc/tuned/<name>/tuned.conf with include=<parent>), then tuned-adm profile <name>.
            - configuration management: change the role's variable, not the host.
            `ctguard doctor --only CT306` names the agent and the knob it found.
            """
        ),
        refs=(
            "kube-proxy command-line reference: --conntrack-max-per-core, --conntrack-min",
            "kube-proxy config API: KubeProxyConntrackConfiguration",
            "tuned-main.conf(5) reapply_sysctl",
            "tuned.conf(5) (profile format, [sysctl] section)",
        ),
    ),
    Entry(
        "CT307",
        "namespaces run with different conntrack timeouts",
        "timeouts",
        cause=_text(
            """
            Conntrack timeouts (and acct, tcp_loose, tcp_be_liberal...) are per network
            namespace, and a new namespace starts from the kernel's compiled-in defaults, not
            from the host's values: 5 days ESTABLISHED, 120 s TIME_WAIT, 30 s unreplied UDP.
            Tuning applied on the host (sysctl.d, kube-proxy, ctguard) never reaches
            containers. It matters when something inside a namespace makes conntrack track
            there (its own iptables/nft rules with state or NAT: a service-mesh sidecar's
            REDIRECT, Docker-in-Docker): those entries live for the default times and count
            against the same global max (CT101). nf_conntrack_max and the buckets are global:
            read-only, or absent, inside a namespace.
            """
        ),
        proof=_text(
            """
            sysctl -a 2>/dev/null | grep timeout_established  # host (initial namespace)
            ip netns exec NAME sysctl -a 2>/dev/null | grep timeout_established  # named netns
            nsenter -t "$PID" -n sysctl -a 2>/dev/null | grep timeout_established  # container
            nsenter -t "$PID" -n cat /proc/sys/net/netfilter/nf_conntrack_count  # its entries
            """
        ),
        fix=_text(
            """
            Set the timeouts inside each namespace that tracks, when it is created:
            - Docker: docker run --sysctl net.netfilter.nf_conntrack_tcp_timeout_established=7440
            - Kubernetes: net.netfilter.* are "unsafe" sysctls: allow them on the kubelet
              (--allowed-unsafe-sysctls='net.netfilter.*') and set them in the pod's
              securityContext.sysctls, or from the sidecar's init container.
            - named namespaces: ip netns exec NAME sysctl -w net.netfilter.<key>=<value>
            Better still, do not track inside a namespace where nothing needs it.
            `ctguard doctor` finds this but cannot fix it: only you know when your namespaces
            are created.
            """
        ),
        refs=(
            "net/netfilter/nf_conntrack_proto_tcp.c nf_conntrack_tcp_init_net (per-netns defaults)",
            "net/netfilter/nf_conntrack_standalone.c nf_conntrack_standalone_init_sysctl",
            "Kubernetes docs: Using sysctls in a Kubernetes Cluster",
            f"{_SYSCTL_DOC}",
        ),
    ),
    Entry(
        "CT401",
        "TCP established timeout is very long",
        "timeouts",
        cause=_text(
            """
            nf_conntrack_tcp_timeout_established defaults to 432000 s (5 days). Entries of TCP
            connections that ended without a FIN or RST reaching this host (the peer crashed
            or lost power, a load balancer or NAT in between forgot the flow, a mobile client
            roamed) stay for that long, holding a slot and memory for nothing. On busy hosts
            such idle ESTABLISHED entries can become most of the table. Every packet resets
            an entry's timer to the full timeout, so idle time = timeout - remaining.
            `ctguard doctor` warns about a timeout above 86400 s once the table is 50 % full.
            """
        ),
        proof=_text(
            """
            sysctl -n net.netfilter.nf_conntrack_tcp_timeout_established  # 432000 = 5 days
            conntrack -L -p tcp --state ESTABLISHED | wc -l  # ESTABLISHED entries
            T=$(sysctl -n net.netfilter.nf_conntrack_tcp_timeout_established)  # used below
            conntrack -L -p tcp --state ESTABLISHED | awk -v t="$T" 't-$3>3600' | wc -l  # idle 1h+
            """
        ),
        fix=_text(
            """
            Lower it to what your connections need (7440 where this host NATs, else 1800-3600),
            now and persistently in /etc/sysctl.d/90-conntrack.conf:
              sysctl -w net.netfilter.nf_conntrack_tcp_timeout_established=7440
              net.netfilter.nf_conntrack_tcp_timeout_established = 7440
            Never below 7440 s where this host NATs: RFC 5382 REQ-5 requires 2 h 4 min, so
            connections kept alive by 2 h TCP keepalives keep their mapping. Without NAT an
            expired idle connection gets a new entry at its next packet (tcp_loose=1), but as
            ctstate NEW: rules that accept only ESTABLISHED for it (replies to connections this
            host opened) drop it. Existing entries take the new value at their next packet.
            `ctguard plan` proposes this only when idle entries fill the table.
            """
        ),
        refs=(
            "RFC 5382 REQ-5 (established idle-timeout >= 2 hours 4 minutes)",
            f"{_SYSCTL_DOC} (tcp_timeout_established, tcp_loose)",
            "net/netfilter/nf_conntrack_proto_tcp.c tcp_timeouts",
        ),
    ),
    Entry(
        "CT402",
        "table composition is unhealthy",
        "timeouts",
        cause=_text(
            """
            The table is dominated by entries that carry no live traffic: TIME_WAIT
            (connections already closed, kept 120 s each), unreplied UDP (30 s), SYN_SENT
            (120 s), SYN_RECV (60 s) or CLOSE_WAIT (60 s; 3600 s where kube-proxy set it).
            Each points at a cause outside conntrack: clients that open a new connection per
            request, a dead upstream or DNS server, outbound connects to unreachable hosts, a
            scan or SYN flood, an application that never closes its sockets. They compete
            with real flows for the same max, and when the table fills the unassured ones are
            evicted first (CT103). One state holding more than 50 % of entries is CT402.
            """
        ),
        proof=_text(
            """
            ctguard analyze --by state,flags,timeout  # state shares, unreplied, timeouts
            conntrack -L -p tcp | awk '{print $4}' | sort | uniq -c | sort -rn  # TCP states
            conntrack -L -p udp | grep -c UNREPLIED  # unreplied UDP entries
            conntrack -C  # the total to compare with (conntrack -L: ~3 s per million)
            """
        ),
        fix=_text(
            """
            Shorten only the state that dominates, and fix its source:
              TIME_WAIT   tcp_timeout_time_wait 30-60 (default 120); reuse connections
              UDP         udp_timeout 10-15 (default 30); fix the dead peer, or NOTRACK it
              SYN_SENT    tcp_timeout_syn_sent 30-60 (default 120); find who connects where
              SYN_RECV    net.ipv4.tcp_syncookies=1 or SYNPROXY: handshakes not completed
              CLOSE_WAIT  60 s unless kube-proxy owns it (CT306); an app not closing sockets
            Keys are under net.netfilter.nf_conntrack_: set one now and persist the same
            `key = value` in /etc/sysctl.d/90-conntrack.conf, e.g.:
              sysctl -w net.netfilter.nf_conntrack_tcp_timeout_time_wait=60
            Keep udp_timeout_stream >= 120 s where the host NATs (RFC 4787 REQ-5).
            `ctguard analyze --what-if tcp_timeout_time_wait=30` shows the state shares and
            how much a shorter timeout frees; `ctguard plan` proposes the key.
            """
        ),
        refs=(
            f"{_SYSCTL_DOC} (per-state timeouts)",
            "net/netfilter/nf_conntrack_proto_tcp.c tcp_timeouts",
            "RFC 4787 REQ-5 (UDP mapping timer >= 2 minutes)",
        ),
    ),
    Entry(
        "CT501",
        "NOTRACK without an accept for untracked packets",
        "bypass",
        cause=_text(
            """
            A raw-table rule (iptables -j CT --notrack or -j NOTRACK, nft `notrack`) marks
            packets before conntrack sees them (priority -300), so they carry ctstate
            UNTRACKED. A stateful filter accepts ESTABLISHED,RELATED plus some NEW ports;
            UNTRACKED matches neither, so under a DROP policy every notracked packet is
            silently dropped and the service behind the port goes dark the moment the raw
            rule lands. nftables adds a trap: every base chain on a hook must accept, so an
            accept in one table does not save a packet another table's chain drops. The reply
            direction needs its own NOTRACK (raw OUTPUT, source port), or replies are still
            classified (INVALID, or picked up as new entries) and fill the table anyway.
            """
        ),
        proof=_text(
            """
            iptables-save -t raw | grep -E 'NOTRACK|--notrack'  # what is notracked
            iptables-save -t filter | grep -E '^:|UNTRACKED'  # chain policies, UNTRACKED accepts
            ip6tables-save -t raw | grep -E 'NOTRACK|--notrack'  # the same for IPv6
            nft list ruleset | grep -nE 'notrack|policy drop|untracked'  # every base chain
            ctguard doctor --only CT501  # the chains where untracked packets die
            """
        ),
        fix=_text(
            """
            Accept untracked packets explicitly, in every filter chain they cross, before the
            stateful rules:
              iptables -I INPUT  -p tcp --dport P -m conntrack --ctstate UNTRACKED -j ACCEPT
              iptables -I OUTPUT -p tcp --sport P -m conntrack --ctstate UNTRACKED -j ACCEPT
              nft: tcp dport P ct state untracked accept  (every input base chain, all tables)
                   tcp sport P ct state untracked accept  (output chains likewise)
            ip6tables likewise. Make the raw rules symmetric too: PREROUTING --dport P and
            OUTPUT --sport P (CT505). Save the rules where this host keeps its ruleset, or
            the next boot loses them. `ctguard notrack --port P` prints, installs (--apply) and
            proves (--verify) the NOTRACK pair with these accepts.
            """
        ),
        refs=(
            "iptables-extensions(8): CT target --notrack, conntrack match --ctstate UNTRACKED",
            "nft(8): notrack statement, ct state untracked",
            "net/netfilter/nf_conntrack_core.c nf_conntrack_in (untracked packets skipped)",
        ),
    ),
    Entry(
        "CT502",
        "NOTRACK on traffic that is NATed",
        "bypass",
        cause=_text(
            """
            NAT rides on conntrack: the first packet of a flow chooses the translation and
            stores it in the flow's entry; later packets and the replies are rewritten from
            that entry. A notracked packet has no entry, so NAT never touches it: DNAT and
            REDIRECT (published container ports, Kubernetes Service VIPs and NodePorts) do
            not happen, SNAT/MASQUERADE leave the private source address, and replies are not
            translated back. The typical report: "DNS broke on the node after we added
            NOTRACK for udp/53": queries to the cluster DNS Service VIP are never DNATed to a
            pod. The rule looks harmless because nothing in the raw table mentions NAT.
            """
        ),
        proof=_text(
            """
            iptables-save -t raw | grep -E 'NOTRACK|--notrack'  # ports and protos notracked
            iptables-save -t nat | grep -E 'DNAT|SNAT|MASQUERADE|REDIRECT'  # what is NATed
            nft list ruleset | grep -nE 'notrack|dnat|snat|masquerade|redirect'  # nftables
            ctguard doctor --only CT502  # the overlap, computed
            """
        ),
        fix=_text(
            """
            Narrow the NOTRACK rule so it never matches NATed traffic, or remove it:
            - match only this host's own addresses (-d <host IP>, nft ip daddr), never a VIP,
              a range the nat table translates, or a NAT gateway's forwarded traffic;
            - if the port itself is DNATed (container publish, NodePort), do not notrack it:
              shrink its entries with timeouts instead (CT402).
            To remove it, repeat the line iptables-save printed with -D instead of -A, e.g.
              iptables -t raw -D PREROUTING -p udp --dport 53 -j CT --notrack
              nft -a list ruleset  # the rule's handle H, then:
              nft delete rule <family> <table> <chain> handle H
            and its reply twin (raw OUTPUT, --sport) the same way; ip6tables likewise.
            """
        ),
        refs=(
            "net/netfilter/nf_nat_core.c nf_nat_inet_fn (no conntrack entry, no NAT)",
            "iptables-extensions(8): CT target --notrack",
            "nft(8): notrack statement",
        ),
    ),
    Entry(
        "CT503",
        "blacklist does not keep nf_conntrack out",
        "bypass",
        cause=_text(
            """
            "blacklist nf_conntrack" in modprobe.d only stops modprobe from loading the module
            through one of its aliases. Loading it by name still works, and so does loading
            it as a dependency: any rule or tool that needs conntrack (xt_conntrack/xt_state,
            iptable_nat, nft_ct, nf_nat, nf_conntrack_netlink behind `conntrack -L`, docker,
            kube-proxy) pulls it in. A host meant to run without connection tracking gets it
            anyway, with the default max and timeouts, and the first busy day fills the table.
            Only `install nf_conntrack /bin/false` makes every load fail (loudly, so you learn
            who wanted it). Before 4.19 the per-family parts were separate modules
            (nf_conntrack_ipv4, nf_conntrack_ipv6).
            """
        ),
        proof=_text(
            """
            modprobe -c | grep -E '^(blacklist|install) nf_conntrack'  # blacklist alone = CT503
            lsmod | grep -E '^nf_conntrack'  # loaded anyway?
            ls /sys/module/nf_conntrack/holders/  # which modules pulled it in
            modprobe -n -v nf_conntrack  # dry run: "insmod" = would load, "install" = blocked
            """
        ),
        fix=_text(
            """
            Replace the blacklist line with an install line:
              /etc/modprobe.d/ctguard-disable-conntrack.conf:  install nf_conntrack /bin/false
            (before 4.19 the same line for nf_conntrack_ipv4 and nf_conntrack_ipv6). Then
            remove every rule that needs conntrack (state/ctstate, NAT, nft ct) and unload its
            holders and nf_conntrack: modprobe -r <holders> nf_conntrack. Whatever still needs
            conntrack now fails to load: that is the point, so check docker, kube-proxy and
            firewalld first. Do not test with `conntrack -L` or `-S`: asking ctnetlink loads
            the module again. (`ctguard disable` shows what keeps it loaded and plans this.)
            """
        ),
        refs=(
            "modprobe.d(5): blacklist (aliases only) vs install",
            "modprobe(8) -c, -n, -r",
        ),
    ),
    Entry(
        "CT504",
        "conntrack is loaded but no rule needs it",
        "bypass",
        cause=_text(
            """
            nf_conntrack is loaded, and may be tracking every flow, although no rule uses the
            result: no state/ctstate match, no NAT rule, no nft ct expression. Common causes:
            an empty nat table (legacy iptables creates it, and with it NAT and conntrack
            hooks, as soon as anything runs `iptables -t nat -L`), a module left behind by a
            tool run once (`conntrack -L` loads nf_conntrack_netlink), distribution defaults.
            On recent kernels conntrack hooks are registered per namespace only when a rule
            needs them, so an unused module costs little, but an existing nat table still
            turns every new flow into an entry. Those entries buy nothing and can fill the
            table (CT101/CT102) on a host that never meant to track.
            """
        ),
        proof=_text(
            """
            lsmod | grep -E '^(nf_conntrack|nf_nat|iptable_nat|xt_conntrack|nft_ct)'  # loaded
            ls /sys/module/nf_conntrack/holders/  # modules that hold it
            iptables-save | grep -cE '(-m (state|conntrack)|-j (DNAT|SNAT|MASQUERADE))'  # 0: none
            iptables-save -t nat | grep -c '^-A'  # 0 with a *nat table = an empty nat table
            nft list ruleset | grep -cE 'ct |nat|masquerade|redirect'  # 0 = nft needs none
            cat /proc/sys/net/netfilter/nf_conntrack_count  # > 0: it is tracking anyway
            """
        ),
        fix=_text(
            """
            When nothing needs it: remove the empty nat table (legacy: modprobe -r iptable_nat;
            nftables: nft delete table <family> <table> for the table whose nat chain is
            empty), unload the holders, then modprobe -r nf_conntrack, and keep it out (CT503):
              /etc/modprobe.d/ctguard-disable-conntrack.conf:  install nf_conntrack /bin/false
            If the host does need stateful rules or NAT, keep conntrack and size it instead
            (CT101, CT201). (`ctguard disable` shows why conntrack is loaded and plans these
            steps.)
            """
        ),
        refs=(
            "net/netfilter/nf_conntrack_proto.c nf_ct_netns_get (hooks per namespace)",
            "modprobe.d(5) install",
            "modprobe(8) -r",
        ),
    ),
    Entry(
        "CT505",
        "one port dominates the table",
        "bypass",
        cause=_text(
            """
            One (protocol, port) holds half or more of the table and no NAT rule touches it.
            That is typical of a busy server port reached directly: a search or cache node
            (8983, 11211, 6379), a DNS resolver (udp/53), an HTTP backend behind a load
            balancer. Every request costs an entry that outlives the connection by its
            state's timeout (TIME_WAIT 120 s, UDP 30 s), so the table grows with the request
            rate, not with concurrency, and that one service eats the max of everything else
            on the host. If nothing needs state for that port (no NAT, no rule that relies on
            ESTABLISHED for it), the cheapest fix is not to track it at all.
            """
        ),
        proof=_text(
            """
            ctguard analyze --by dport,nat  # top ports, NATed entries per port, candidates
            conntrack -L | grep -o 'dport=[0-9]*' | sort | uniq -c | sort -rn | head  # by hand
            conntrack -C  # all entries
            conntrack -L -p tcp --dport 8983 | wc -l  # one port's entries (use your port)
            iptables-save -t nat | grep -E -- '--dport 8983|:8983'  # NATed to or from it?
            nft list ruleset | grep -nE 'dnat|snat|masquerade|redirect'  # nftables NAT
            """
        ),
        fix=_text(
            """
            Never for a NATed port (CT502). Take the port out of conntrack in both directions
            and accept its untracked packets before the stateful rules (CT501), for iptables
            (ip6tables likewise; nft: `notrack` in raw-priority chains, CT501's accepts):
              iptables -t raw -A PREROUTING -p tcp --dport P -j CT --notrack
              iptables -t raw -A OUTPUT     -p tcp --sport P -j CT --notrack
              iptables -I INPUT  -p tcp --dport P -m conntrack --ctstate UNTRACKED -j ACCEPT
              iptables -I OUTPUT -p tcp --sport P -m conntrack --ctstate UNTRACKED -j ACCEPT
            Save them with the host's ruleset. You lose state-based filtering and conntrack
            accounting for that port; keep plain port/address rules for it.
            `ctguard notrack --port P` prints, installs and verifies these, and refuses NAT.
            """
        ),
        refs=(
            "iptables-extensions(8): CT target --notrack, conntrack match UNTRACKED",
            "nft(8): notrack statement",
            "conntrack(8) -L filters, -C",
        ),
    ),
    Entry(
        "CT601",
        "conntrack counters are not in procfs",
        "observability",
        cause=_text(
            """
            /proc/net/stat/nf_conntrack (per-CPU counters: drop, early_drop, insert_failed...)
            and /proc/net/nf_conntrack (the table) exist only with CONFIG_NF_CONNTRACK_PROCFS.
            The option is marked obsolete and lost its "default y" in 2022, so newer and
            minimal kernel builds often lack it. Without it nothing in procfs shows drops:
            scripts and exporters that read the stat file report nothing (or zero) while the
            table overflows. The same counters are still available over netlink (ctnetlink,
            `conntrack -S`), and count and max remain in /proc/sys/net/netfilter.
            """
        ),
        proof=_text(
            """
            ls /proc/net/stat/nf_conntrack /proc/net/nf_conntrack  # "No such file" = no procfs
            grep NF_CONNTRACK_PROCFS /boot/config-"$(uname -r)"  # "is not set" = built without
            cat /proc/sys/net/netfilter/nf_conntrack_count  # the count is still readable
            conntrack -S  # the counters over netlink
            """
        ),
        fix=_text(
            """
            Nothing to repair on the host. In your own scripts and monitoring read the
            counters with `conntrack -S` (netlink) instead of the stat file; count and max
            stay in /proc/sys/net/netfilter. If you build your own kernels and want the files
            back, set CONFIG_NF_CONNTRACK_PROCFS=y. `ctguard doctor` and `ctguard status` fall
            back to netlink (only when nf_conntrack is already loaded, since asking ctnetlink
            loads it) and say where the counters came from (coming: `ctguard exporter` too).
            """
        ),
        refs=(
            "net/netfilter/Kconfig NF_CONNTRACK_PROCFS",
            "net/netfilter/nf_conntrack_standalone.c ct_cpu_seq_show",
            "conntrack(8) -S",
        ),
    ),
)

CATALOGUE: dict[str, Entry] = {entry.id: entry for entry in _ENTRIES}
