"""Write a realistic conntrack table dump (a text file: nothing is sent anywhere).

    python3 bench/gen_dump.py --entries 1000000 [--format proc|conntrack|extended]
                              [--seed 1] [-o FILE|-] [--gzip] [--distinct-sources]

Formats, as the kernel and conntrack-tools print them (checked against a 6.x kernel and
conntrack 1.4.7):

- ``proc``: ``/proc/net/nf_conntrack`` (``ct_seq_show``): ``ipv4     2 tcp      6 431999
  ESTABLISHED src=… dst=… sport=… dport=… src=… dst=… sport=… dport=… [ASSURED] mark=0
  zone=0 use=2``; l3 and l4 names padded to 8; IPv6 addresses fully expanded (``%pI6``);
  ``zone=`` always printed; offloaded entries show no remaining timeout.
- ``conntrack``: ``conntrack -L``: no ``ipv4     2`` prefix, ``zone=N`` only when not 0,
  IPv6 compressed (``2001:db8::10``), ``use=1``.
- ``extended``: ``conntrack -L -o extended``: the ``conntrack`` format with the l3 prefix.

The mix (shares of entries, drawn independently per entry, so the file is hash-ordered
like a real table):

==========  =====================================================================
45 %        tcp to the hot service 10.0.0.10:8983 from ~3,000 clients 10.1.x.y
            (Zipf-skewed: proxies hold many connections): ESTABLISHED 75 %, TIME_WAIT
            17 %, CLOSE_WAIT 3 %, SYN_RECV 2 % (not yet assured), FIN_WAIT 2 %,
            LAST_ACK 1 %; [ASSURED] on every state past the handshake
20 %        DNS over UDP from this host to 10.0.0.2/10.0.0.3/192.0.2.53 port 53:
            85 % replied (not assured, <= 30 s), 10 % [UNREPLIED], 5 % assured
            (a resolver used continuously: stream timeout <= 120 s)
5 %         ICMP echo (80 % icmp, 20 % icmpv6; 10 % [UNREPLIED] pings to dead hosts)
10 %        IPv6 tcp to 2001:db8::10 port 443 (ESTABLISHED 85 %, TIME_WAIT 15 %)
8 %         outbound tcp 443 from 10.0.2-9.x to 198.51.100.x, MASQUERADEd: the reply
            goes to the public 192.0.2.1 (5 % with the source port remapped), mark=1
3 %         DNAT 192.0.2.10:80 -> 10.0.1.5:8080 from clients 198.51.100.x
4 %         this host to PostgreSQL 10.0.0.20:5432 (idle pool: timeouts spread)
1 %         ssh in from admin hosts 10.9.0.x
1 %         QUIC: udp to 10.0.0.10:443, assured (<= 120 s)
1 %         IPv6 DNS over UDP 2001:db8::10 -> 2001:db8::53
1 %         a container's tcp to the hot port in conntrack zones 1-3
0.5 %       tcp SYN_SENT [UNREPLIED] to a dead 192.0.2.x:9200
0.4 %       forwarded tcp 443 [OFFLOAD] (no timeout field), 0.1 % [HW_OFFLOAD]
==========  =====================================================================

``--distinct-sources`` (high cardinality): the same mix, but every entry's original
source is an address of its own (10.128.0.0/9 for IPv4, 2001:db8:ffff::/48 for IPv6; the
reply tuple's destination follows it unless NAT changed it): a router or load balancer
facing a million clients, or a flood from spoofed addresses. Same size, same shapes,
about as many distinct sources as entries.

Remaining timeouts follow the kernel defaults per state: ESTABLISHED up to 431999 s
(70 % recently active, 30 % idle anywhere), TIME_WAIT/FIN_WAIT/SYN_SENT <= 119,
SYN_RECV/CLOSE_WAIT <= 59, LAST_ACK <= 29, UDP <= 29 (<= 119 assured), ICMP <= 29.
Only private, documentation and loopback addresses appear (10/8, 192.0.2/24,
198.51.100/24, 2001:db8::/32). Speed: lines are built from pre-rendered pieces and
written in batches of 65,536 (about 1 M lines in a few seconds).
"""

from __future__ import annotations

import argparse
import gzip
import ipaddress
import random
import sys
from collections.abc import Callable
from typing import TextIO

FORMATS = ("proc", "conntrack", "extended")
BLOCK = 1 << 16

PORTS = [str(p) for p in range(65536)]
EPHEMERAL = PORTS[32768:61000]


class Style:
    """How one output format renders the parts that differ between formats."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        prefixed = fmt in ("proc", "extended")
        self.l3 = {4: "ipv4     2 " if prefixed else "", 6: "ipv6     10 " if prefixed else ""}
        self.use = "use=2" if fmt == "proc" else "use=1"
        self.tails: dict[tuple[int, int], str] = {}

    def tail(self, mark: int, zone: int) -> str:
        key = (mark, zone)
        if key not in self.tails:
            shown = zone != 0 or self.fmt == "proc"
            self.tails[key] = f"mark={mark} " + (f"zone={zone} " if shown else "") + self.use
        return self.tails[key]

    def v6(self, address: str) -> str:
        parsed = ipaddress.IPv6Address(address)
        return parsed.exploded if self.fmt == "proc" else parsed.compressed


def _zipf_weights(n: int) -> list[float]:
    total = 0.0
    cumulative = []
    for rank in range(n):
        total += 1.0 / (rank + 1)
        cumulative.append(total)
    return cumulative


def _uniform(low: int, high: int) -> Callable[[random.Random], str]:
    return lambda rng: str(rng.randint(low, high))


def _established(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return str(rng.randint(430000, 431999))
    return str(rng.randint(0, 431999))


TCP_TIMEOUT: dict[str, Callable[[random.Random], str]] = {
    "ESTABLISHED": _established,
    "TIME_WAIT": _uniform(0, 119),
    "CLOSE_WAIT": _uniform(0, 59),
    "SYN_RECV": _uniform(0, 59),
    "FIN_WAIT": _uniform(0, 119),
    "LAST_ACK": _uniform(0, 29),
    "SYN_SENT": _uniform(0, 119),
    "CLOSE": _uniform(0, 9),
}
UDP_SHORT = _uniform(0, 29)
UDP_STREAM = _uniform(0, 119)


class Generator:
    def __init__(self, fmt: str, seed: int) -> None:
        self.rng = random.Random(seed)
        self.s = Style(fmt)
        s = self.s
        self.tcp4 = s.l3[4] + "tcp      6 "
        self.udp4 = s.l3[4] + "udp      17 "
        self.icmp4 = s.l3[4] + "icmp     1 "
        self.tcp6 = s.l3[6] + "tcp      6 "
        self.udp6 = s.l3[6] + "udp      17 "
        self.icmp6 = s.l3[6] + "icmpv6   58 "
        self.clients = [f"10.1.{i // 250}.{i % 250 + 1}" for i in range(3000)]
        self.client_weights = _zipf_weights(len(self.clients))
        self.internet = [f"198.51.100.{i}" for i in range(1, 255)]
        self.internal = [f"10.0.{n}.{h}" for n in range(2, 10) for h in range(1, 255)]
        self.v6_clients = [s.v6(f"2001:db8:{i // 200 + 1:x}::{i % 200 + 1:x}") for i in range(2000)]
        self.v6_weights = _zipf_weights(len(self.v6_clients))
        self.v6_server = s.v6("2001:db8::10")
        self.v6_dns = s.v6("2001:db8::53")
        self.admins = [f"10.9.0.{h}" for h in range(1, 21)]
        self.containers = [f"10.2.{z}.{h}" for z in range(1, 4) for h in range(1, 51)]
        self.dead = [f"192.0.2.{h}" for h in range(100, 140)]

    def tcp(
        self,
        pre: str,
        state: str,
        src: str,
        dst: str,
        sport: str,
        dport: str,
        rsrc: str,
        rdst: str,
        rsport: str,
        rdport: str,
        mark: int = 0,
        zone: int = 0,
        timeout: str | None = None,
        flag: str | None = None,
    ) -> str:
        if timeout is None:
            timeout = TCP_TIMEOUT[state](self.rng)
        if flag is None:
            flag = "" if state in ("SYN_RECV", "SYN_SENT") else "[ASSURED] "
        unreplied = "[UNREPLIED] " if state == "SYN_SENT" else ""
        return (
            f"{pre}{timeout} {state} src={src} dst={dst} sport={sport} dport={dport} "
            f"{unreplied}src={rsrc} dst={rdst} sport={rsport} dport={rdport} "
            f"{flag}{self.s.tail(mark, zone)}"
        )

    # one method per share of the mix; each returns ``n`` lines
    def hot(self, n: int) -> list[str]:
        rng = self.rng
        clients = rng.choices(self.clients, cum_weights=self.client_weights, k=n)
        ports = rng.choices(EPHEMERAL, k=n)
        states = rng.choices(
            ("ESTABLISHED", "TIME_WAIT", "CLOSE_WAIT", "SYN_RECV", "FIN_WAIT", "LAST_ACK"),
            weights=(75, 17, 3, 2, 2, 1),
            k=n,
        )
        return [
            self.tcp(self.tcp4, st, c, "10.0.0.10", p, "8983", "10.0.0.10", c, "8983", p)
            for c, p, st in zip(clients, ports, states, strict=True)
        ]

    def dns(self, n: int) -> list[str]:
        rng = self.rng
        out = []
        pre, tail = self.udp4, self.s.tail(0, 0)
        for server, port, kind in zip(
            rng.choices(("10.0.0.2", "10.0.0.3", "192.0.2.53"), weights=(45, 45, 10), k=n),
            rng.choices(EPHEMERAL, k=n),
            rng.choices((0, 1, 2), weights=(85, 10, 5), k=n),
            strict=True,
        ):
            orig = f"src=10.0.0.10 dst={server} sport={port} dport=53 "
            reply = f"src={server} dst=10.0.0.10 sport=53 dport={port} "
            if kind == 0:
                out.append(f"{pre}{UDP_SHORT(rng)} {orig}{reply}{tail}")
            elif kind == 1:
                out.append(f"{pre}{UDP_SHORT(rng)} {orig}[UNREPLIED] {reply}{tail}")
            else:
                out.append(f"{pre}{UDP_STREAM(rng)} {orig}{reply}[ASSURED] {tail}")
        return out

    def icmp(self, n: int) -> list[str]:
        rng = self.rng
        out = []
        tail = self.s.tail(0, 0)
        for _ in range(n):
            ident = rng.randint(1, 65535)
            timeout = UDP_SHORT(rng)
            if rng.random() < 0.2:
                peer = rng.choice(self.v6_clients)
                out.append(
                    f"{self.icmp6}{timeout} src={peer} dst={self.v6_server} type=128 code=0 "
                    f"id={ident} src={self.v6_server} dst={peer} type=129 code=0 id={ident} {tail}"
                )
            elif rng.random() < 0.1:
                dead = rng.choice(self.dead)
                out.append(
                    f"{self.icmp4}{timeout} src=10.0.0.10 dst={dead} type=8 code=0 id={ident} "
                    f"[UNREPLIED] src={dead} dst=10.0.0.10 type=0 code=0 id={ident} {tail}"
                )
            else:
                peer = rng.choice(self.internet)
                out.append(
                    f"{self.icmp4}{timeout} src={peer} dst=10.0.0.10 type=8 code=0 id={ident} "
                    f"src=10.0.0.10 dst={peer} type=0 code=0 id={ident} {tail}"
                )
        return out

    def v6(self, n: int) -> list[str]:
        rng = self.rng
        server = self.v6_server
        clients = rng.choices(self.v6_clients, cum_weights=self.v6_weights, k=n)
        ports = rng.choices(EPHEMERAL, k=n)
        states = rng.choices(("ESTABLISHED", "TIME_WAIT"), weights=(85, 15), k=n)
        return [
            self.tcp(self.tcp6, st, c, server, p, "443", server, c, "443", p)
            for c, p, st in zip(clients, ports, states, strict=True)
        ]

    def snat(self, n: int) -> list[str]:
        rng = self.rng
        out = []
        for host, peer, port in zip(
            rng.choices(self.internal, k=n),
            rng.choices(self.internet, k=n),
            rng.choices(EPHEMERAL, k=n),
            strict=True,
        ):
            state = "ESTABLISHED" if rng.random() < 0.9 else "TIME_WAIT"
            mapped = port if rng.random() < 0.95 else rng.choice(EPHEMERAL)
            out.append(
                self.tcp(
                    self.tcp4,
                    state,
                    host,
                    peer,
                    port,
                    "443",
                    peer,
                    "192.0.2.1",
                    "443",
                    mapped,
                    mark=1,
                )
            )
        return out

    def dnat(self, n: int) -> list[str]:
        rng = self.rng
        return [
            self.tcp(self.tcp4, st, c, "192.0.2.10", p, "80", "10.0.1.5", c, "8080", p)
            for c, p, st in zip(
                rng.choices(self.internet, k=n),
                rng.choices(EPHEMERAL, k=n),
                rng.choices(("ESTABLISHED", "TIME_WAIT", "SYN_RECV"), weights=(80, 18, 2), k=n),
                strict=True,
            )
        ]

    def postgres(self, n: int) -> list[str]:
        rng = self.rng
        out = []
        for port in rng.choices(EPHEMERAL, k=n):
            if rng.random() < 0.95:
                state, timeout = "ESTABLISHED", str(rng.randint(0, 431999))
            else:
                state, timeout = "TIME_WAIT", None
            out.append(
                self.tcp(
                    self.tcp4,
                    state,
                    "10.0.0.10",
                    "10.0.0.20",
                    port,
                    "5432",
                    "10.0.0.20",
                    "10.0.0.10",
                    "5432",
                    port,
                    timeout=timeout,
                )
            )
        return out

    def ssh(self, n: int) -> list[str]:
        rng = self.rng
        return [
            self.tcp(self.tcp4, "ESTABLISHED", a, "10.0.0.10", p, "22", "10.0.0.10", a, "22", p)
            for a, p in zip(rng.choices(self.admins, k=n), rng.choices(EPHEMERAL, k=n), strict=True)
        ]

    def quic(self, n: int) -> list[str]:
        rng = self.rng
        tail = self.s.tail(0, 0)
        return [
            f"{self.udp4}{UDP_STREAM(rng)} src={c} dst=10.0.0.10 sport={p} dport=443 "
            f"src=10.0.0.10 dst={c} sport=443 dport={p} [ASSURED] {tail}"
            for c, p in zip(
                rng.choices(self.internet, k=n), rng.choices(EPHEMERAL, k=n), strict=True
            )
        ]

    def dns6(self, n: int) -> list[str]:
        rng = self.rng
        tail = self.s.tail(0, 0)
        me, dns = self.v6_server, self.v6_dns
        return [
            f"{self.udp6}{UDP_SHORT(rng)} src={me} dst={dns} sport={p} dport=53 "
            f"src={dns} dst={me} sport=53 dport={p} {tail}"
            for p in rng.choices(EPHEMERAL, k=n)
        ]

    def zoned(self, n: int) -> list[str]:
        rng = self.rng
        out = []
        for c, p in zip(
            rng.choices(self.containers, k=n), rng.choices(EPHEMERAL, k=n), strict=True
        ):
            zone = int(c.split(".")[2])
            out.append(
                self.tcp(
                    self.tcp4,
                    "ESTABLISHED",
                    c,
                    "10.0.0.10",
                    p,
                    "8983",
                    "10.0.0.10",
                    c,
                    "8983",
                    p,
                    zone=zone,
                )
            )
        return out

    def syn_sent(self, n: int) -> list[str]:
        rng = self.rng
        return [
            self.tcp(self.tcp4, "SYN_SENT", "10.0.0.10", d, p, "9200", d, "10.0.0.10", "9200", p)
            for d, p in zip(rng.choices(self.dead, k=n), rng.choices(EPHEMERAL, k=n), strict=True)
        ]

    def offload(self, n: int, hw: bool = False) -> list[str]:
        rng = self.rng
        flag = "[HW_OFFLOAD] " if hw else "[OFFLOAD] "
        out = []
        for host, peer, port in zip(
            rng.choices(self.internal, k=n),
            rng.choices(self.internet, k=n),
            rng.choices(EPHEMERAL, k=n),
            strict=True,
        ):
            # an offloaded entry has no remaining timeout: the line goes straight to the state
            line = self.tcp(
                self.tcp4,
                "ESTABLISHED",
                host,
                peer,
                port,
                "443",
                peer,
                host,
                "443",
                port,
                timeout="",
                flag=flag,
            )
            out.append(line.replace(" ESTABLISHED", "ESTABLISHED", 1))
        return out

    def hw_offload(self, n: int) -> list[str]:
        return self.offload(n, hw=True)

    def block(self, n: int) -> list[str]:
        kinds = [fn for fn, _ in self.mix()]
        cum = []
        total = 0.0
        for _, share in self.mix():
            total += share
            cum.append(total)
        picks = self.rng.choices(range(len(kinds)), cum_weights=cum, k=n)
        counts = [0] * len(kinds)
        for pick in picks:
            counts[pick] += 1
        made = [iter(kind(c)) if c else iter(()) for kind, c in zip(kinds, counts, strict=True)]
        return [next(made[pick]) for pick in picks]

    def mix(self) -> list[tuple[Callable[[int], list[str]], float]]:
        return [
            (self.hot, 45),
            (self.dns, 20),
            (self.icmp, 5),
            (self.v6, 10),
            (self.snat, 8),
            (self.dnat, 3),
            (self.postgres, 4),
            (self.ssh, 1),
            (self.quic, 1),
            (self.dns6, 1),
            (self.zoned, 1),
            (self.syn_sent, 0.5),
            (self.offload, 0.4),
            (self.hw_offload, 0.1),
        ]


class DistinctSources:
    """Gives each line's original source an address of its own (``--distinct-sources``)."""

    def __init__(self, fmt: str) -> None:
        self.style = Style(fmt)
        self.next = 0

    def address(self, ipv6: bool) -> str:
        self.next += 1
        n = self.next
        if ipv6:
            return self.style.v6(f"2001:db8:ffff::{n >> 16 & 0xFFFF:x}:{n & 0xFFFF:x}")
        return str(ipaddress.IPv4Address((10 << 24 | 1 << 23) + n % (1 << 23)))

    def rewrite(self, line: str) -> str:
        at = line.index(" src=") + 5
        end = line.index(" ", at)
        old = line[at:end]
        new = self.address(":" in old)
        reply = line.index(" src=", end) + 5
        head = line[:at] + new + line[end:reply]
        tail = line[reply:]
        # the reply goes back to the new source, unless NAT sent it elsewhere
        return head + tail.replace(f" dst={old} ", f" dst={new} ", 1)


def write_dump(
    out: TextIO, entries: int, fmt: str = "proc", seed: int = 1, distinct_sources: bool = False
) -> None:
    """Write ``entries`` lines to ``out`` (a text stream)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}")
    gen = Generator(fmt, seed)
    distinct = DistinctSources(fmt) if distinct_sources else None
    left = entries
    while left > 0:
        n = min(BLOCK, left)
        lines = gen.block(n)
        if distinct is not None:
            lines = [distinct.rewrite(line) for line in lines]
        out.write("\n".join(lines))
        out.write("\n")
        left -= n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, required=True)
    parser.add_argument("--format", choices=FORMATS, default="proc")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("-o", "--output", default="-", help="FILE, or - for stdout")
    parser.add_argument("--gzip", action="store_true", help="gzip the output (level 6)")
    parser.add_argument(
        "--distinct-sources",
        action="store_true",
        help="every entry from an address of its own (high cardinality)",
    )
    args = parser.parse_args()
    if args.entries < 0:
        parser.error("--entries must be >= 0")
    if args.output == "-":
        if args.gzip:
            with gzip.open(sys.stdout.buffer, "wt", compresslevel=6, encoding="ascii") as out:
                write_dump(out, args.entries, args.format, args.seed, args.distinct_sources)
        else:
            write_dump(sys.stdout, args.entries, args.format, args.seed, args.distinct_sources)
            sys.stdout.flush()
        return 0
    if args.gzip:
        with gzip.open(args.output, "wt", compresslevel=6, encoding="ascii") as out:
            write_dump(out, args.entries, args.format, args.seed, args.distinct_sources)
    else:
        with open(args.output, "w", encoding="ascii", buffering=1 << 20) as out:
            write_dump(out, args.entries, args.format, args.seed, args.distinct_sources)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
