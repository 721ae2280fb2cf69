"""Conntrack dump lines for the table tests: one entry rendered the way the kernel
(``/proc/net/nf_conntrack``, ct_seq_show) or conntrack-tools (``conntrack -L`` and
``-o extended``) prints it, and a seeded generator of mixed dumps.

The generator knows what it wrote, so tests can compare a scan with the truth.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, replace

# l4proto_name() in the kernel, and conntrack-tools: anything else prints as "unknown"
L4_NAMES = {
    1: "icmp", 6: "tcp", 17: "udp", 33: "dccp", 47: "gre", 58: "icmpv6", 132: "sctp",
    136: "udplite",
}  # fmt: skip
PORTED = frozenset({6, 17, 33, 132, 136})
ICMP_REPLY = {8: 0, 13: 14, 128: 129}
FORMATS = ("proc", "list", "extended")


@dataclass(frozen=True)
class Conn:
    proto: int
    src: str
    dst: str
    sport: int | None = None
    dport: int | None = None
    state: str = ""
    timeout: int | None = 100  # None: not printed (offloaded)
    unreplied: bool = False
    flag: str = ""  # "", "ASSURED", "OFFLOAD", "HW_OFFLOAD"
    mark: int = 0
    zone: int = 0
    reply_src: str | None = None  # None: the original dst (no DNAT)
    reply_dst: str | None = None  # None: the original src (no SNAT)
    reply_sport: int | None = None  # None: the original dport
    reply_dport: int | None = None  # None: the original sport
    icmp: tuple[int, int, int] = (8, 0, 1)  # type, code, id
    old_gre: bool = False  # "timeout=30, stream_timeout=180 " of kernels before 4.x
    acct: bool = False
    secctx: str | None = None
    delta: int | None = None

    @property
    def ipv6(self) -> bool:
        return ":" in self.src

    @property
    def reply(self) -> tuple[str, str, int | None, int | None]:
        return (
            self.dst if self.reply_src is None else self.reply_src,
            self.src if self.reply_dst is None else self.reply_dst,
            self.dport if self.reply_sport is None else self.reply_sport,
            self.sport if self.reply_dport is None else self.reply_dport,
        )

    @property
    def nat(self) -> bool:
        return self.reply != (self.dst, self.src, self.dport, self.sport)


def _address(text: str, fmt: str) -> str:
    # the kernel prints IPv6 with %pI6 (every group, 4 digits); conntrack-tools compresses
    if fmt == "proc" and ":" in text:
        return ipaddress.IPv6Address(text).exploded
    return text


def _tuple(
    conn: Conn, fmt: str, src: str, dst: str, sport: int | None, dport: int | None, reply: bool
) -> str:
    out = f"src={_address(src, fmt)} dst={_address(dst, fmt)} "
    if conn.proto in PORTED:
        out += f"sport={sport} dport={dport} "
    elif conn.proto in (1, 58):
        kind, code, ident = conn.icmp
        out += f"type={ICMP_REPLY.get(kind, kind) if reply else kind} code={code} id={ident} "
    elif conn.proto == 47:
        out += "srckey=0x0 dstkey=0x0 "
    return out


def render(conn: Conn, fmt: str = "proc", ident: int = 1234567890) -> str:
    """One line without its newline; fmt is "proc", "list" (conntrack -L) or "extended"."""
    parts: list[str] = []
    if fmt in ("proc", "extended"):
        parts.append(f"{'ipv6' if conn.ipv6 else 'ipv4':<8} {10 if conn.ipv6 else 2} ")
    parts.append(f"{L4_NAMES.get(conn.proto, 'unknown'):<8} {conn.proto} ")
    if conn.timeout is not None:
        parts.append(f"{conn.timeout} ")
    if conn.old_gre:
        parts.append("timeout=30, stream_timeout=180 ")
    if conn.state:
        parts.append(f"{conn.state} ")
    parts.append(_tuple(conn, fmt, conn.src, conn.dst, conn.sport, conn.dport, False))
    if conn.acct:
        parts.append("packets=12 bytes=3456 ")
    if conn.unreplied:
        parts.append("[UNREPLIED] ")
    parts.append(_tuple(conn, fmt, *conn.reply, True))
    if conn.acct:
        parts.append("packets=0 bytes=0 " if conn.unreplied else "packets=9 bytes=7890 ")
    if conn.flag:
        parts.append(f"[{conn.flag}] ")
    parts.append(f"mark={conn.mark} ")
    if conn.secctx:
        parts.append(f"secctx={conn.secctx} ")
    if fmt == "proc" or conn.zone:
        parts.append(f"zone={conn.zone} ")
    if conn.delta is not None:
        parts.append(f"delta-time={conn.delta} ")
    parts.append("use=2" if fmt == "proc" else "use=1")
    if fmt == "extended":
        parts.append(f" id={ident}")
    return "".join(parts)


# timeouts on and around the summary's histogram bounds, and the usual maxima
EDGE_TIMEOUTS = (0, 1, 10, 11, 60, 61, 300, 301, 3600, 3601, 86400, 86401, 431999, 432000)


@dataclass(frozen=True)
class Line:
    text: str
    conn: Conn | None  # None: a blank or bad line
    bad: bool = False


def _timeout(rng: random.Random, top: int) -> int:
    if rng.random() < 0.3:
        return rng.choice([t for t in EDGE_TIMEOUTS if t <= top])
    return rng.randint(0, top)


def random_conn(rng: random.Random) -> Conn:
    """One entry of a busy host: a hot HTTPS service, TIME_WAIT, DNS, ICMP, IPv6, NAT..."""
    v6 = rng.random() < 0.12
    pool = rng.randrange(1, 120)
    client = f"2001:db8:1::{pool:x}" if v6 else f"10.1.{pool % 3}.{pool}"
    server = "2001:db8::10" if v6 else "10.0.0.10"
    sport = rng.randint(1024, 65535)
    r = rng.random()
    conn: Conn
    if r < 0.30:
        conn = Conn(
            6, client, server, sport, 443, "ESTABLISHED", _timeout(rng, 432000), flag="ASSURED"
        )
    elif r < 0.42:
        conn = Conn(
            6,
            client,
            rng.choice([server, "10.0.0.11"]) if not v6 else server,
            sport,
            rng.choice([80, 443, 8080]),
            "TIME_WAIT",
            _timeout(rng, 120),
            flag="ASSURED",
        )
    elif r < 0.48:
        state = rng.choice(
            [
                "SYN_SENT",
                "SYN_RECV",
                "FIN_WAIT",
                "CLOSE_WAIT",
                "LAST_ACK",
                "CLOSE",
                "SYN_SENT2",
                "NONE",
            ]
        )
        conn = Conn(
            6,
            client,
            server,
            sport,
            rng.choice([22, 443, 5432]),
            state,
            _timeout(rng, 300),
            unreplied=state == "SYN_SENT",
        )
    elif r < 0.68:
        resolver = "2001:db8::53" if v6 else "10.0.0.53"
        unreplied = rng.random() < 0.4
        flag = "" if unreplied or rng.random() < 0.5 else "ASSURED"
        conn = Conn(
            17,
            client,
            resolver,
            sport,
            53,
            "",
            _timeout(rng, 30 if unreplied else 180),
            unreplied=unreplied,
            flag=flag,
        )
    elif r < 0.76:
        conn = Conn(
            58 if v6 else 1,
            client,
            server,
            None,
            None,
            "",
            _timeout(rng, 30),
            unreplied=rng.random() < 0.2,
            icmp=(128 if v6 else 8, 0, rng.randrange(65536)),
        )
    elif r < 0.80:
        conn = Conn(
            rng.choice([6, 17]),
            client,
            server,
            sport,
            rng.choice([443, 4789]),
            "",
            None,
            flag=rng.choice(["OFFLOAD", "HW_OFFLOAD"]),
        )
        if conn.proto == 6:
            conn = _replace(conn, state="ESTABLISHED")
    elif r < 0.84:
        conn = Conn(
            132,
            client,
            server,
            36412,
            36412,
            rng.choice(
                [
                    "ESTABLISHED",
                    "COOKIE_WAIT",
                    "COOKIE_ECHOED",
                    "CLOSED",
                    "SHUTDOWN_SENT",
                    "HEARTBEAT_SENT",
                ]
            ),
            _timeout(rng, 432000),
            flag=rng.choice(["", "ASSURED"]),
        )
    elif r < 0.87:
        conn = Conn(
            33,
            client,
            server,
            sport,
            5004,
            rng.choice(["OPEN", "REQUEST", "RESPOND", "PARTOPEN", "CLOSEREQ", "TIMEWAIT"]),
            _timeout(rng, 43200),
        )
    elif r < 0.90:
        conn = Conn(
            136,
            client,
            server,
            sport,
            rng.choice([5060, 1234]),
            "",
            _timeout(rng, 180),
            unreplied=rng.random() < 0.5,
        )
    elif r < 0.94:
        conn = Conn(
            47,
            client,
            server,
            None,
            None,
            "",
            _timeout(rng, 180),
            old_gre=rng.random() < 0.3,
            flag=rng.choice(["", "ASSURED"]),
        )
    else:
        conn = Conn(
            rng.choice([2, 4, 50, 112]),
            client,
            server,
            None,
            None,
            "",
            _timeout(rng, 600),
            unreplied=True,
        )
    if not v6 and rng.random() < 0.2:
        if rng.random() < 0.5:  # DNAT: the reply comes from the real server, maybe another port
            conn = _replace(conn, reply_src=f"192.168.7.{rng.randrange(1, 5)}")
            if conn.proto in PORTED and rng.random() < 0.5:
                conn = _replace(conn, reply_sport=8443)
        else:  # SNAT / MASQUERADE: the reply goes to our public address, maybe a new port
            conn = _replace(conn, reply_dst="203.0.113.1")
            if conn.proto in PORTED and rng.random() < 0.7:
                conn = _replace(conn, reply_dport=rng.randint(1024, 65535))
    if rng.random() < 0.15:
        conn = _replace(conn, mark=rng.choice([1, 0x10, 0x40000000, 4294967295]))
    if rng.random() < 0.1:
        conn = _replace(conn, zone=rng.choice([3, 100, 65535]))
    if rng.random() < 0.1:
        conn = _replace(conn, acct=True)
    if rng.random() < 0.05:
        conn = _replace(conn, secctx="system_u:object_r:unlabeled_t:s0")
    if rng.random() < 0.05:
        conn = _replace(conn, delta=rng.randrange(100000))
    return conn


def _replace(conn: Conn, **changes: object) -> Conn:
    return replace(conn, **changes)  # type: ignore[arg-type]


def bad_line(rng: random.Random) -> str:
    """A line every scanner must count as bad (and never as an entry)."""
    conn = random_conn(rng)
    text = render(conn, rng.choice(FORMATS))
    kind = rng.randrange(5)
    if kind == 0:
        return rng.choice(["garbage", "hello world", "conntrack v1.4.7: error", "}{ ]["])
    if kind == 1:  # cut inside the original tuple
        first = text.index("src=")
        second = text.index("src=", first + 1)
        return text[: rng.randrange(first + 1, second)].rstrip("\n")
    if kind == 2 and conn.proto in PORTED:  # a port that is no number
        return text.replace(f"dport={conn.dport} ", f"dport={conn.dport}x ", 1)
    name = f"{L4_NAMES.get(conn.proto, 'unknown'):<8} {conn.proto} "
    return text.replace(name, f"{name.split()[0]:<8} {rng.choice([256, 300, 4096])} ", 1)


def dump(
    seed: int,
    count: int,
    formats: tuple[str, ...] = FORMATS,
    bad_rate: float = 0.005,
    blank_rate: float = 0.002,
) -> list[Line]:
    """``count`` lines: mostly entries in ``formats``, some bad and some blank lines."""
    rng = random.Random(seed)
    lines: list[Line] = []
    for _ in range(count):
        roll = rng.random()
        if roll < bad_rate:
            lines.append(Line(bad_line(rng), None, bad=True))
            continue
        if roll < bad_rate + blank_rate:
            lines.append(Line(rng.choice(["", "   ", "\t"]), None))
            continue
        conn = random_conn(rng)
        fmt = rng.choice(formats)
        lines.append(Line(render(conn, fmt, ident=rng.randrange(1 << 32)), conn))
    return lines


def to_bytes(lines: list[Line], final_newline: bool = True) -> bytes:
    data = "\n".join(line.text for line in lines).encode()
    return data + b"\n" if final_newline and lines else data
