"""Hostile arguments for every command and option (issue 17, "bad arguments"): values are
generated from each click parameter's type (the command tree is walked, so a new option is
fuzzed without editing this file) plus the values an operator mistypes: empty strings, huge
and negative numbers, empty comma items, FIFOs, directories and device nodes where a file
is meant.

Every run must end within a few seconds with an exit code that docs/exit-codes.md lists
for the command, one ``ctguard: error:`` line when it fails, and never "internal error"
nor a traceback. Nothing is written outside a temporary directory: every command that can
write gets ``--root`` on a copy of a fixture root and a ``--state-dir`` in the temporary
directory, and nothing that acts on the live host (``notrack --apply/--remove/--verify``
without --root, ``top`` without ``--once``, ``snapshot``) is generated against it.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import re
import shutil
import signal
import stat
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctguard.cli import cli, main

ROOTS = Path(__file__).parents[1] / "roots"
DOCS = Path(__file__).parents[2] / "docs" / "exit-codes.md"
RUN_SECONDS = 10  # a bounded command on a fixture root takes well under a second

NO_SUCH_NETNS = "ctguard-fuzz-no-such-netns"  # the only real-looking name: never made
# commands that only read (a namespace too); the others never get --netns
READ_ONLY_NETNS = ("doctor", "status", "top", "snapshot", "analyze")
# values anyone may type by mistake, for any string option
HOSTILE = ["", ",", " ", ",,", "-1", "0", "-0", str(2**64), str(10**12), "nan", "1e400",
           "a-b", "9-1", "=", "x=", "=1", "é", "\u200b", "CT*", "--", "-", "all,",
           ",all", "\u00b2", "\u0663", "1_0", "%", "\u00b2=\u00b2"]  # fmt: skip
# characters that str.isdigit(), int() and float() do not agree on, and the like
ODD = "0123456789\u00b2\u0663\uff11_.,:-=%+ eE"
# values that reach past the parser, per option (a sample of the valid, with hostile edges)
SAMPLES: dict[str, list[str]] = {
    "--port": ["80", "8983", "9200-9300,53", "1-65535", "0", "65536", "0,65536,abc", "80,80",
               "9300-9200", "1_000", "+80", "\u0663", " 80 ", "80-", "-80", "80,,81"],
    "--by": ["dport", "all", "protocol,state", "sport,sport", "all,dport", " src ", "DPORT"],
    "--listen": ["127.0.0.1:9659", "[::1]:9659", ":9659", "localhost:0", "1.2.3.4:65536",
                 "127.0.0.1", "127.0.0.1:", "[::1]", "a:b:c"],
    "--only": ["CT101", "CT3*", "CT101,CT102", "ct101", ",", "*", "[", "CT1?1,"],
    "--threshold": ["usage_warning=80", "usage_warning=1e308", "usage_critical=-1",
                    "entries_per_bucket=0", "table_min_entries=1e300", "port_share=nan",
                    "usage-warning=5", "x=1", "usage_warning="],
    "--timeout": ["tcp_timeout_time_wait=30", "udp_timeout=0", "udp_timeout=-5",
                  f"udp_timeout={2**64}", "udp_timeout=2147483647", "udp_timeout=4294967296",
                  "tcp_timeout_established=1e3", "udp_timeout=30s", "timeout=5"],
    "--what-if": ["tcp_timeout_established=600,udp_timeout=30", "udp_timeout=0",
                  f"udp_timeout={2**64}", "udp_timeout=1,udp_timeout=2", "tcp_timeout=5",
                  "udp_timeout=-1", "udp_timeout="],
    "--local-address": ["10.0.0.10,2001:db8::10", "10.0.0.0/8", "999.1.1.1", "::1,",
                        "fe80::1%eth0", "::1%1"],
    "--netns": [NO_SUCH_NETNS, "all", "../../proc/1/ns/net", "a/b", "..", "-x"],
    "finding_id": ["CT302", "ct302", "CT999", "CT*", "../CT302"],
    "entry_id": ["20261125T143357Z-3f2a", "..", "../..", "x/y", "latest"],
}  # fmt: skip
INTS = [0, 1, -1, 2, 5, 1000, 2**31 - 1, 2**31, 2**32, 2**63, 2**64, 10**12, 10_000_001]


def documented_codes() -> dict[str, set[int]]:
    """command -> the codes docs/exit-codes.md lists for it."""
    codes: dict[str, set[int]] = {}
    command = None
    for line in DOCS.read_text().splitlines():
        if line.startswith("## ctguard "):
            command = line.removeprefix("## ctguard ").strip()
            codes[command] = set()
        elif command and (match := re.match(r"\| (\d) \|", line)):
            codes[command].add(int(match.group(1)))
    return codes


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Copies of fixture roots, and the odd paths: a FIFO nobody writes, a directory, an
    empty file, device nodes (made here, so a write 'into' them stays in the sandbox)."""
    base = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(ROOTS / "doctor" / "ct505-hot-port", base / "read-root", symlinks=True)
    shutil.copytree(ROOTS / "apply" / "rhel6-service", base / "apply-root", symlinks=True)
    shutil.copytree(ROOTS / "disable" / "modular-idle", base / "disable-root", symlinks=True)
    shutil.copytree(ROOTS / "notrack" / "nft-legacy-ip6tables", base / "nt-root", symlinks=True)
    os.mkfifo(base / "fifo")
    (base / "dir").mkdir()
    (base / "empty").write_bytes(b"")
    (base / "garbage").write_bytes(b"\x00\xff garbage\n" * 10)
    shutil.copy(ROOTS / "doctor" / "ct505-hot-port" / "proc" / "net" / "nf_conntrack",
                base / "dump")  # fmt: skip
    (base / "state").mkdir(mode=0o700)
    (base / "out").mkdir()
    for name, minor in (("null", 3), ("zero", 5), ("full", 7)):
        with contextlib.suppress(PermissionError):  # needs root; the rest still runs
            os.mknod(base / name, 0o600 | stat.S_IFCHR, os.makedev(1, minor))
    return base


def paths(base: Path, *extra: str) -> st.SearchStrategy[str]:
    names = ["fifo", "dir", "empty", "garbage", "missing", "null", "full", "dir/", "é\u200b",
             *extra]  # fmt: skip
    return st.sampled_from(["", *(str(base / n) for n in names)])


def value_for(param: click.Parameter, base: Path, bad: bool) -> st.SearchStrategy[str]:
    """A plausible value of the parameter, or (``bad``) one an operator should be told
    off for: hostile strings, numbers past the bounds, odd paths."""
    name = param.opts[0] if isinstance(param, click.Option) else str(param.name)
    kind = param.type
    hostile = st.sampled_from(HOSTILE)
    if name == "--root":
        roots = ("read-root", "apply-root", "disable-root", "nt-root")
        return paths(base) if bad else st.sampled_from([str(base / r) for r in roots])
    if name == "--state-dir":
        return paths(base) if bad else st.just(str(base / "state"))
    if name == "--textfile":  # the exporter writes DIR/ctguard.prom: the sandbox only
        return paths(base, "out/") if bad else st.just(str(base / "out"))
    if name == "dump":  # devices included: /dev/zero and /dev/full read zeros forever
        odd = paths(base, "zero")
        return odd if bad else st.sampled_from([str(base / "dump"), "-"])
    if param.name in ("output", "plan_file"):  # plan -o, apply --plan, snapshot -o
        fresh = st.uuids().map(lambda u: str(base / "out" / f"{u.hex[:8]}.tar.gz"))
        return paths(base, "dump", "out/") if bad else fresh | st.just(str(base / "plan.json"))
    if name in SAMPLES:
        if not bad:
            return st.sampled_from(SAMPLES[name])
        return hostile | st.builds(  # a sample with one odd character put in somewhere
            lambda sample, at, char: sample[:at] + char + sample[at:],
            st.sampled_from(SAMPLES[name]), st.integers(0, 40), st.sampled_from(ODD),
        )  # fmt: skip
    if isinstance(kind, click.Choice):
        return hostile if bad else st.sampled_from([str(c) for c in kind.choices])
    if isinstance(kind, click.IntRange | click.types.IntParamType):
        if bad:
            return st.sampled_from(INTS).map(str) | st.integers(-3, 20).map(str) | hostile
        low = getattr(kind, "min", None)
        high = getattr(kind, "max", None)
        low = 0 if low is None else low
        return st.integers(low, low + 10 if high is None else min(high, low + 10**6)).map(str)
    if isinstance(kind, click.FloatRange | click.types.FloatParamType):
        if bad:
            return (
                st.floats(allow_nan=True, allow_infinity=True).map(repr)
                | st.sampled_from(["0", "0.05", "0.1", "-0.0", "1e-320", "3600.0001"])
                | hostile
            )
        low = getattr(kind, "min", None) or 0.0
        return st.floats(low, low + 1, exclude_min=bool(getattr(kind, "min_open", False))).map(repr)
    return hostile


def commands() -> dict[str, click.Command]:
    ctx = click.Context(cli)
    found = {}
    for name in cli.list_commands(ctx):  # type: ignore[attr-defined]
        command = cli.get_command(ctx, name)  # type: ignore[attr-defined]
        assert command is not None
        found[name] = command
    return found


@st.composite
def argv_for(draw: st.DrawFn, base: Path) -> list[str]:
    name = draw(st.sampled_from(sorted(commands())))
    command = commands()[name]
    argv = [name]
    params = [p for p in command.params if p.name not in ("help", "debug", "netns")]
    if name in READ_ONLY_NETNS:  # names no namespace has (analyze: with --root, refused)
        params += [p for p in command.params if p.name == "netns"]
    bad = draw(st.integers(-1, len(params) - 1))  # one bad value at a time, or none
    for index, param in enumerate(params):
        if index != bad and draw(st.integers(0, 2)) != 0:  # a third of the others
            continue
        if isinstance(param, click.Option) and param.is_flag:
            argv.append(param.opts[0])
        elif isinstance(param, click.Option):
            for _ in range(draw(st.integers(1, 2 if param.multiple else 1))):
                argv += [param.opts[0], draw(value_for(param, base, index == bad))]
        else:
            argv.append(draw(value_for(param, base, index == bad)))
    return confined(argv, base)


def confined(argv: list[str], base: Path) -> list[str]:
    """The generated command, made safe to run here: nothing acts on this host."""
    name = argv[0]
    has = set(argv)
    live_netns = "--netns" in has and name in ("doctor", "status")
    if name in ("doctor", "status", "analyze", "plan", "apply", "disable", "notrack",
                "rollback") and "--root" not in has and not live_netns:  # fmt: skip
        argv += ["--root", str(base / "read-root")]
    if name in ("apply", "disable", "notrack", "rollback") and "--state-dir" not in has:
        argv += ["--state-dir", str(base / "state")]
    if name == "analyze" and "--netns" in has:
        argv += ["--root", str(base / "read-root")]  # refused: a snapshot is not live
    if name == "top":  # one frame; a long --interval is a real wait, not a hang: cut short
        pairs = itertools.pairwise(argv)
        rest = [short_interval(a) if p == "--interval" else a for p, a in pairs]
        return ["top", "--once", "--interval", "0", *rest]
    if name == "exporter":  # a snapshot, printed or written once: it never serves here
        root = [] if "--root" in has else ["--root", str(base / "read-root")]
        once = [] if "--textfile" in has else ["--once"]
        return [*argv, *root, *once]
    if name == "snapshot":  # captures this host, without its table, into the sandbox only
        where = [] if "-o" in has else ["-o", str(base / "out" / "default.tar.gz")]
        return ["snapshot", "--no-table", *where, *argv[1:]]
    return argv


def short_interval(text: str) -> str:
    try:
        return "0.1" if float(text) > 1 else text
    except ValueError:
        return text


class Hung(BaseException):
    """Raised by SIGALRM: main() catches Exception (as 'internal error'), not this."""


def _hung(_signum: int, _frame: FrameType | None) -> None:
    raise Hung


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    previous = signal.signal(signal.SIGALRM, _hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        deadline(RUN_SECONDS),
    ):
        try:
            code = main(argv)
        except Hung:
            pytest.fail(f"ctguard {' '.join(argv)} still running after {RUN_SECONDS} s")
    return code, out.getvalue(), err.getvalue()


@settings(
    max_examples=int(os.environ.get("CTGUARD_FUZZ_EXAMPLES", "1500")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=os.environ.get("CTGUARD_FUZZ_RANDOM") != "1",
)
@given(data=st.data())
def test_no_argument_crashes_or_hangs(
    sandbox: Path, data: st.DataObject, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(sandbox / "dir")  # an empty --state-dir or -o names nothing here
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"")))
    argv = data.draw(argv_for(sandbox))
    code, out, err = run(argv)
    allowed = documented_codes()[argv[0]]
    assert code in allowed, (argv, code, err)
    assert "Traceback" not in out + err, (argv, err)
    assert "internal error" not in err, (argv, err)
    if code == 3:
        lines = err.strip("\n").splitlines()
        assert lines and lines[-1].startswith("ctguard: error: "), (argv, err)
    for name, kind in (("null", stat.S_ISCHR), ("full", stat.S_ISCHR), ("fifo", stat.S_ISFIFO)):
        node = sandbox / name  # a write 'into' a device or a FIFO must not replace it
        if node.exists():
            assert kind(node.lstat().st_mode), (argv, f"{name} was replaced")
