"""/proc/cmdline: kernel parameters the way kernel/params.c cuts them."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ctguard.missing import Missing
from ctguard.sources.cmdline import (
    CMDLINE,
    KernelCmdline,
    parse_cmdline,
    read_cmdline,
    split_kernel_args,
)

# Debian 12 on a GRUB host, as /proc/cmdline shows it (one trailing newline).
DEBIAN_12 = (
    "BOOT_IMAGE=/boot/vmlinuz-6.1.0-18-amd64 root=UUID=3f1c2d8e-5a1b-4c3d-9e0f-1a2b3c4d5e6f "
    "ro quiet nf_conntrack.hashsize=262144\n"
)
# RHEL 8 with a crashkernel range and an rd.lvm pair.
RHEL_8 = (
    "BOOT_IMAGE=(hd0,msdos1)/vmlinuz-4.18.0-513.el8.x86_64 root=/dev/mapper/rhel-root ro "
    "crashkernel=auto resume=/dev/mapper/rhel-swap rd.lvm.lv=rhel/root rd.lvm.lv=rhel/swap "
    "rhgb quiet\n"
)


def test_debian_cmdline():
    cmdline = parse_cmdline(DEBIAN_12)
    assert cmdline.get("nf_conntrack.hashsize") == "262144"
    assert cmdline.get("root") == "UUID=3f1c2d8e-5a1b-4c3d-9e0f-1a2b3c4d5e6f"
    assert cmdline.get("BOOT_IMAGE") == "/boot/vmlinuz-6.1.0-18-amd64"
    assert cmdline.get("ro") == ""
    assert cmdline.get("nf_conntrack.expect_hashsize") is None
    assert cmdline.text == DEBIAN_12.rstrip("\n")


def test_repeated_parameter_last_wins():
    cmdline = parse_cmdline(RHEL_8)
    assert cmdline.get("rd.lvm.lv") == "rhel/swap"
    assert cmdline.params["rd.lvm.lv"] == "rhel/swap"
    assert cmdline.args.count(("rd.lvm.lv", "rhel/root")) == 1


def test_dash_and_underscore_are_the_same_parameter():
    cmdline = parse_cmdline("nf-conntrack.hashsize=65536 quiet nf_conntrack.hashsize=131072")
    assert cmdline.get("nf_conntrack.hashsize") == "131072"
    assert cmdline.get("nf-conntrack.hashsize") == "131072"
    only_dash = parse_cmdline("nf-conntrack.hashsize=65536")
    assert only_dash.get("nf_conntrack.hashsize") == "65536"


def test_quoted_values_are_unquoted():
    cmdline = parse_cmdline('dyndbg="file nf_conntrack_core.c +p" "acpi_osi=Windows 2020" x="')
    assert cmdline.get("dyndbg") == "file nf_conntrack_core.c +p"
    assert cmdline.get("acpi_osi") == "Windows 2020"
    assert cmdline.get("x") == ""


def test_words_after_double_dash_go_to_init():
    cmdline = parse_cmdline("root=/dev/sda1 ro -- single nf_conntrack.hashsize=1")
    assert cmdline.get("nf_conntrack.hashsize") is None
    assert cmdline.init_args == ("single", "nf_conntrack.hashsize=1")


def test_leading_equals_belongs_to_the_name():
    # next_arg() treats an "=" at offset 0 as "not seen yet" and splits at the next one.
    assert split_kernel_args("=a=b =c")[0] == [("=a", "b"), ("=c", None)]


def test_whitespace_of_every_kind_separates():
    assert split_kernel_args("a=1\tb=2\n c")[0] == [("a", "1"), ("b", "2"), ("c", None)]


def test_get_without_args_falls_back_to_params():
    assert KernelCmdline("quiet", {"quiet": ""}).get("quiet") == ""


def test_read_cmdline(host, write):
    write(CMDLINE, DEBIAN_12)
    cmdline = read_cmdline(host)
    assert isinstance(cmdline, KernelCmdline)
    assert cmdline.get("nf_conntrack.hashsize") == "262144"


def test_read_cmdline_missing(host):
    missing = read_cmdline(host)
    assert isinstance(missing, Missing)
    assert CMDLINE in missing.reason


_WORD = st.text(alphabet=st.characters(blacklist_characters=' \t\n\v\f\r"='), min_size=1)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_parses(text):
    cmdline = parse_cmdline(text)
    assert all(isinstance(value, str) for value in cmdline.params.values())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400).map(lambda b: b.decode("utf-8", errors="replace")))
def test_any_bytes_parse(text):
    parse_cmdline(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_WORD, st.none() | st.text(alphabet="abc =.-_/"), st.booleans())))
def test_round_trip(words):
    text = ""
    for name, value, quote in words:
        if value is None:
            text += f"{name} "
        elif quote or " " in value:
            text += f'{name}="{value}" '
        else:
            text += f"{name}={value} "
    parsed, init = split_kernel_args(text)
    if "--" in [name for name, value, _ in words if value is None]:
        return  # everything after a bare -- belongs to init
    assert init == []
    assert parsed == [(name, value) for name, value, _ in words]
