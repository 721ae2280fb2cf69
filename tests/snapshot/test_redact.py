"""--redact: stable, distinct, parseable address tokens; everything else untouched."""

from __future__ import annotations

import hashlib
import ipaddress
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctguard.snapshot.redact import Redactor

KEY = b"k" * 32
TOKENS_V4 = ipaddress.ip_network("240.0.0.0/4")
TOKENS_V6 = ipaddress.ip_network("2001:db8::/32")

# /proc/net/nf_conntrack lines (kernel 6.1).
TABLE = (
    b"ipv4     2 tcp      6 431999 ESTABLISHED src=10.1.2.3 dst=192.0.2.80 sport=51234 "
    b"dport=443 src=192.0.2.80 dst=10.1.2.3 sport=443 dport=51234 [ASSURED] mark=0 zone=0 "
    b"use=2\n"
    b"ipv4     2 udp      17 29 src=10.1.2.4 dst=10.1.2.3 sport=5353 dport=53 [UNREPLIED] "
    b"src=10.1.2.3 dst=10.1.2.4 sport=53 dport=5353 mark=0 zone=0 use=2\n"
    b"ipv6     10 tcp      6 117 TIME_WAIT src=2a01:4f8:c2c:1234::1 dst=2606:4700::6810:85e5 "
    b"sport=40000 dport=443 src=2606:4700::6810:85e5 dst=2a01:4f8:c2c:1234::1 sport=443 "
    b"dport=40000 [ASSURED] mark=0 zone=0 use=2\n"
)


def addresses(data: bytes) -> list[str]:
    return [m.decode() for m in re.findall(rb"(?:src|dst)=(\S+)", data)]


def test_same_address_same_token():
    out = Redactor(KEY).redact(TABLE)
    first, second = out.splitlines()[0], out.splitlines()[1]
    a = addresses(first)
    b = addresses(second)
    assert a[0] == a[3] == b[1] == b[2]  # 10.1.2.3 everywhere
    assert a[1] == a[2]  # 192.0.2.80


def test_same_token_across_calls_of_one_redactor():
    r = Redactor(KEY)
    assert r.redact(b"10.9.8.7") == r.redact(b"x 10.9.8.7 y").split()[1]


def test_different_addresses_different_tokens():
    r = Redactor(KEY)
    originals = [f"10.{i // 250}.{i % 250}.1" for i in range(2000)]
    originals += [f"2001:db8:{i:x}::1" for i in range(500)]
    tokens = r.redact(" ".join(originals).encode()).decode().split()
    assert len(tokens) == len(originals)
    assert len(set(tokens)) == len(originals)
    assert not set(tokens) & set(originals)


def test_collisions_are_retried(monkeypatch):
    # Every address hashes alike: the second must still get a token of its own.
    def constant(self, text, attempt):
        return hashlib.sha256(bytes([attempt])).digest()

    monkeypatch.setattr(Redactor, "_digest", constant)
    r = Redactor(KEY)
    out = r.redact(b"10.0.0.1 10.0.0.2 10.0.0.3 10.0.0.1").split()
    assert len(set(out[:3])) == 3
    assert out[3] == out[0]


def test_tokens_depend_on_the_key():
    assert Redactor(b"a" * 32).redact(b"10.1.2.3") != Redactor(b"b" * 32).redact(b"10.1.2.3")
    assert Redactor().key != Redactor().key


def test_output_still_parses_and_hides_addresses():
    out = Redactor(KEY).redact(TABLE)
    for before, after in zip(addresses(TABLE), addresses(out), strict=True):
        token = ipaddress.ip_address(after)
        assert token.version == ipaddress.ip_address(before).version
        assert token in (TOKENS_V4 if token.version == 4 else TOKENS_V6)
        assert after != before
    for original in set(addresses(TABLE)):
        assert original.encode() not in out
    # Everything but the addresses is byte for byte the same.
    strip = re.compile(rb"(src|dst)=\S+")
    assert strip.sub(rb"\1=", out) == strip.sub(rb"\1=", TABLE)


@pytest.mark.parametrize(
    "kept",
    [b"127.0.0.1", b"127.5.5.5", b"0.0.0.0", b"::1", b"::"],
)
def test_loopback_and_unspecified_kept(kept):
    data = b"src=" + kept + b" dst=" + kept + b" sport=1\n"
    assert Redactor(KEY).redact(data) == data


@pytest.mark.parametrize(
    "text",
    [
        b"link/ether 00:1a:2b:3c:4d:5e brd ff:ff:ff:ff:ff:ff",
        b"Nov 25 11:44:02 web1 kernel: nf_conntrack: table full, dropping packet",
        b"[12345.678901] 12:34:56",
        b"version 1.2.3.4.5 and 999.1.1.1 and 1.2.3",
        b"2.6.32-754.35.1.el6.x86_64",
        b"nf_conntrack_max = 262144",
        b"",
    ],
)
def test_non_addresses_untouched(text):
    assert Redactor(KEY).redact(text) == text


def test_addresses_beside_punctuation():
    data = b"[2001:db8:1::5]:443 10.1.2.3:80 10.1.2.0/24 fe80::1%eth0 ::ffff:10.1.2.3"
    out = Redactor(KEY).redact(data).decode()
    v6, v4, net, link, mapped = out.split()
    assert ipaddress.ip_address(v6[1 : v6.index("]")]) in TOKENS_V6
    assert v6.endswith("]:443")
    assert ipaddress.ip_address(v4.removesuffix(":80")) in TOKENS_V4
    assert ipaddress.ip_address(net.removesuffix("/24")) in TOKENS_V4
    assert ipaddress.ip_address(link.removesuffix("%eth0")) in TOKENS_V6
    assert ipaddress.ip_address(mapped).ipv4_mapped in TOKENS_V4
    assert v4.removesuffix(":80") == mapped.removeprefix("::ffff:")  # same 10.1.2.3


def test_same_ipv6_address_in_two_spellings_same_token():
    # /proc/net/nf_conntrack prints %pI6 (uncompressed); conntrack -L and logs compress.
    spellings = b"2001:0db8:0000:0000:0000:0000:0000:0001 2001:db8::1 2001:DB8:0:0::1"
    out = Redactor(KEY).redact(spellings).split()
    assert out[0] == out[1] == out[2]
    assert ipaddress.ip_address(out[0].decode()) in TOKENS_V6


@settings(max_examples=300, deadline=None)
@given(addr=st.ip_addresses())
def test_any_address_becomes_a_parseable_token(addr):
    text = str(addr)
    out = Redactor(KEY).redact(b"src=" + text.encode() + b" sport=1\n").decode()
    assert out.startswith("src=")
    assert out.endswith(" sport=1\n")
    token = ipaddress.ip_address(out.removeprefix("src=").removesuffix(" sport=1\n"))
    assert token.version == addr.version
    if addr.is_loopback or addr.is_unspecified:
        assert token == addr
    else:
        assert token != addr
        if addr.version == 4 or addr.ipv4_mapped is None:
            assert token in (TOKENS_V4 if addr.version == 4 else TOKENS_V6)
