"""The snapshot fuzz harness: mutated copies of fixture roots, and every command that reads
a snapshot run on them in this process (through ``ctguard.cli.main``).

``check_root(root)`` is the oracle: each command either prints a document that validates
against its JSON Schema (or its text report), or stops with one of ctguard's own errors
(``CtguardError``: the one ``ctguard: error:`` line the CLI prints). Anything else, an
exception of another type or a document the schema rejects, fails.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from snapshot_inputs import DIRS, FILES, JSON_FILES, PATTERN_EXAMPLES

from ctguard import schemas
from ctguard.cli import main
from ctguard.errors import CtguardError
from helpers import signals_kept

REPO = Path(__file__).resolve().parents[2]
# Fixture roots that differ in what they hold: RHEL 6 module with its iptables service,
# builtin 6.1 with nft, no procfs stats (conntrack -S), nothing loaded, a table and the
# host's addresses, tuned/OpenShift profiles, iptables NOTRACK, nft + legacy ip6tables, a
# table of a proxy, agents that hold the module, a sysctl.d link chain.
BASES = tuple(
    REPO / p
    for p in (
        "examples/rhel6-table-full",
        "tests/roots/modern-builtin",
        "tests/roots/no-procfs-stats",
        "tests/roots/not-loaded",
        "tests/roots/doctor/ct505-hot-port",
        "tests/roots/doctor/ct306-tuned-openshift-modprobe-clash",
        "tests/roots/doctor/ct306-tuned-profile",
        "tests/roots/doctor/ct501-notrack-iptables",
        "tests/roots/notrack/nft-legacy-ip6tables",
        "tests/roots/analyze/proxy-host",
        "tests/roots/disable/modular-agents",
        "tests/roots/doctor/ct304-rhel76-greps-sysctl-d-no-link",
    )
)

# command -> (arguments after --root ROOT, the schema of its JSON output or None for text)
COMMANDS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "doctor": (("doctor", "--format", "json"), schemas.DOCTOR),
    "doctor-text": (("doctor",), None),
    "status": (("status", "--json", "--interval", "0"), schemas.STATUS),
    "status-text": (("status", "--interval", "0"), None),
    "plan": (("plan", "--format", "json"), schemas.PLAN),
    "plan-text": (("plan",), None),
    "analyze": (("analyze", "--format", "json", "--by", "all", "--top", "0"), schemas.ANALYZE),
    "analyze-text": (("analyze", "--by", "all"), None),
    "disable": (("disable", "--format", "json"), schemas.DISABLE),
    "notrack": (("notrack", "--port", "8983", "--format", "json"), schemas.NOTRACK),
}


# -- running --------------------------------------------------------------------------------
@cache
def validator(schema_id: str) -> Draft202012Validator:
    return Draft202012Validator(schemas.load(schemas.NAMES[schema_id]))


def run_command(root: Path, name: str) -> None:
    """``ctguard --debug COMMAND --root ROOT`` in this process; fails unless it reported or
    stopped with a CtguardError (--debug: any other exception reaches the test whole)."""
    args, schema_id = COMMANDS[name]
    out, err = io.StringIO(), io.StringIO()
    try:
        with signals_kept(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["--debug", *args, "--root", str(root)])
    except CtguardError as exc:
        assert str(exc).strip(), f"{name}: {type(exc).__name__} without a message"
        return
    assert code in (0, 1, 2, 3), (name, code, err.getvalue())
    text = out.getvalue()
    if not text:
        lines = err.getvalue().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ctguard: error: "), (name, lines)
        assert "internal error" not in lines[0], (name, lines)
        return
    if schema_id is None:
        return
    doc = json.loads(text)
    errors = list(validator(schema_id).iter_errors(doc))
    assert not errors, f"{name}: " + "\n".join(_shown(e) for e in errors[:10])


def _shown(error: ValidationError) -> str:
    """Where a document fails and why; for anyOf/oneOf, the branch that came closest."""
    deepest = max([error, *error.context], key=lambda e: len(e.absolute_path))
    where = "/".join(map(str, deepest.absolute_path)) or "(top)"
    return f"{where}: {deepest.message[-300:]}"


def check_root(root: Path, commands: tuple[str, ...] = tuple(COMMANDS)) -> None:
    for name in commands:
        run_command(root, name)


# -- writing a mutated root -----------------------------------------------------------------
def copy_base(base: Path, dest: Path) -> Path:
    root = dest / "root"
    shutil.copytree(base, root, symlinks=True)
    return root


def host_file(root: Path, host_path: str) -> Path:
    """Where ``host_path`` lives in the copy; never outside it (links are followed as the
    file system does, so one that leaves the copy would be refused here)."""
    target = root / host_path.lstrip("/")
    real = Path(os.path.realpath(target.parent))
    if not real.is_relative_to(root.resolve()):
        raise AssertionError(f"{host_path} leaves the copied root: {real}")
    return real / target.name  # the last component itself may be a link: replaced, not followed


def existing(root: Path, host_path: str) -> bytes:
    """The file's bytes in the copy; b"" when absent, not a regular file, or reached only
    through a link out of the copy (never a file of this machine)."""
    target = root / host_path.lstrip("/")
    real = Path(os.path.realpath(target))
    if not real.is_relative_to(root.resolve()):
        return b""
    try:
        return real.read_bytes() if real.is_file() else b""
    except OSError:
        return b""


def _clear_way(root: Path, host_path: str) -> None:
    """Remove a link an earlier case left on the way to ``host_path`` when it does not
    lead to a directory inside the copy (a loop, a dangling link, one out of the root)."""
    here = root
    for part in Path(host_path.lstrip("/")).parts[:-1]:
        here = here / part
        if here.is_symlink():
            real = Path(os.path.realpath(here))
            if not (real.is_relative_to(root.resolve()) and real.is_dir()):
                here.unlink()
        elif here.exists() and not here.is_dir():
            here.unlink()  # a file or FIFO where a directory is needed


def place(root: Path, host_path: str, content: bytes | str) -> None:
    """Write ``content`` at ``host_path`` in the copy; a str is a special file kind."""
    _clear_way(root, host_path)
    (root / host_path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
    target = host_file(root, host_path)
    if target.is_symlink() or (target.exists() and not target.is_dir()):  # a FIFO too
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        target.write_bytes(content)
    elif content == "fifo":
        os.mkfifo(target)
    elif content == "directory":
        target.mkdir()
        (target / "inner").write_bytes(b"1\n")
    elif content == "link-loop":
        target.symlink_to(target.name)
    elif content == "link-out":  # absolute: resolved inside the root, where it is absent
        target.symlink_to("/etc/shadow")
    elif content == "link-dangling":
        target.symlink_to("no-such-file")
    else:
        raise AssertionError(content)


# -- content --------------------------------------------------------------------------------
HUGE = (b"18446744073709551616", b"9223372036854775808", b"-9223372036854775809", b"-1",
        b"4294967296", b"2147483648", b"1e400", b"nan", b"-0", b"0x7fffffffffffffff",
        b"99999999999999999999999999999999999999999999999999999999999999999", b"",
        b"\xef\xbc\x91", b"1_000")  # fmt: skip
JUNK = (b"\x00", b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\r", b"\t", b"\x0b", b"=", b"[",
        b"]", b"{", b"}", b'"', b"\\", b"#", b";", b"\x1b[31m", b"[bold]", b"[/]", b"%s",
        b"\xe2\x80\xae", b"..", b"/", b"*", b"$(", b"`")  # fmt: skip


def _numbers(rng: random.Random, data: bytes) -> bytes:
    """Every run of digits (or one in three) replaced by a huge, negative or odd number."""
    out = bytearray()
    i = 0
    every = rng.random() < 0.5
    while i < len(data):
        if 48 <= data[i] <= 57:
            j = i
            while j < len(data) and 48 <= data[j] <= 57:
                j += 1
            out += rng.choice(HUGE) if every or rng.random() < 0.33 else data[i:j]
            i = j
        else:
            out.append(data[i])
            i += 1
    return bytes(out) if data else rng.choice(HUGE)


def _junk(rng: random.Random, data: bytes) -> bytes:
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(len(data) + 1)
        data = data[:at] + rng.choice(JUNK) + data[at + rng.randrange(2) :]
    return data


def _lines(rng: random.Random, data: bytes) -> bytes:
    """Lines dropped, doubled, swapped or cut."""
    lines = data.splitlines(keepends=True) or [b"x = 1\n"]
    for _ in range(rng.randint(1, 6)):
        at = rng.randrange(len(lines))
        action = rng.randrange(4)
        if action == 0 and len(lines) > 1:
            del lines[at]
        elif action == 1:
            lines.insert(at, lines[rng.randrange(len(lines))])
        elif action == 2:
            other = rng.randrange(len(lines))
            lines[at], lines[other] = lines[other], lines[at]
        else:
            lines[at] = lines[at][: rng.randrange(len(lines[at]) + 1)]
    return b"".join(lines)


def _tokens(rng: random.Random, data: bytes) -> bytes:
    """Within lines: fields dropped, doubled or given another line's field."""
    lines = data.split(b"\n")
    for _ in range(rng.randint(1, 6)):
        at = rng.randrange(len(lines))
        words = lines[at].split(b" ")
        pick = rng.randrange(len(words))
        action = rng.randrange(3)
        if action == 0:
            del words[pick]
        elif action == 1:
            words.insert(pick, words[rng.randrange(len(words))])
        else:
            donor = lines[rng.randrange(len(lines))].split(b" ")
            words[pick] = donor[rng.randrange(len(donor))]
        lines[at] = b" ".join(words)
    return b"\n".join(lines)


def _long_line(rng: random.Random, data: bytes) -> bytes:
    line = (data.splitlines() or [b"net.netfilter.nf_conntrack_max = 1"])[0][:200] or b"x"
    size = rng.choice((4095, 4096, 65535, 65536, 65537, 300_000))
    return data + (line * (size // len(line) + 1))[:size] + b"\n"


def _many_lines(rng: random.Random, data: bytes) -> bytes:
    lines = data.splitlines(keepends=True) or [b"x = 1\n"]
    line = rng.choice(lines)[:MAX_CONTENT]
    return line * min(rng.choice((1_000, 20_000, 1 << 30)), MAX_CONTENT // max(1, len(line)))


def _flips(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    out = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


MAX_CONTENT = (1 << 20) + 4096  # just above the config readers' 1 MiB cap
MUTATIONS: dict[str, Callable[[random.Random, bytes], bytes]] = {
    "numbers": _numbers, "junk": _junk, "lines": _lines, "tokens": _tokens,
    "long-line": _long_line, "many-lines": _many_lines, "flips": _flips, "truncate": _truncate,
}  # fmt: skip
SPECIAL = ("fifo", "directory", "link-loop", "link-out", "link-dangling")


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    _containers,
    max_leaves=12,
)


def _json_nodes(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _json_nodes(value, (*path, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _json_nodes(value, (*path, i))


def _json_replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return doc


@st.composite
def contents(draw: st.DrawFn, old: bytes, is_json: bool) -> bytes | str:
    """New content for a file whose current bytes are ``old`` (b"" when absent)."""
    kind = draw(st.sampled_from(("garbage", "text", "empty", "special", "json", *MUTATIONS)))
    if kind == "garbage":
        return draw(st.binary(max_size=2048))
    if kind == "text":
        return draw(st.text(max_size=400)).encode("utf-8", "surrogatepass")
    if kind == "empty":
        return b""
    if kind == "special":
        return draw(st.sampled_from(SPECIAL))
    if kind == "json":
        try:
            doc = json.loads(old)
        except ValueError:
            doc = {}
        nodes = list(_json_nodes(doc))
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from(nodes))
            doc = _json_replace(doc, path, draw(json_values))
            nodes = list(_json_nodes(doc))
        return json.dumps(doc).encode() if is_json or draw(st.booleans()) else b""
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    data = old
    for name in [kind, *draw(st.lists(st.sampled_from(sorted(MUTATIONS)), max_size=2))]:
        data = MUTATIONS[name](rng, data)[:MAX_CONTENT]
    return data


@st.composite
def target_paths(draw: st.DrawFn, root: Path) -> str:
    """A host path some reader takes: a file, a file in a read directory, or a profile."""
    kind = draw(st.sampled_from(("file", "file", "dir", "pattern")))
    if kind == "file":
        return draw(st.sampled_from(FILES))
    if kind == "pattern":
        return draw(st.sampled_from(PATTERN_EXAMPLES))
    directory = draw(st.sampled_from(DIRS))
    present = sorted(p.name for p in (root / directory.lstrip("/")).glob("*"))
    name_strategy = st.text(
        st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)),
        min_size=1, max_size=60,
    ).filter(lambda n: n not in (".", "..") and len(n.encode()) <= 255)  # fmt: skip
    if present:
        name = draw(st.sampled_from(present) | name_strategy)
    else:
        name = draw(st.sampled_from(("nf_conntrack_max", "90-conntrack.conf", "nf_nat"))
                    | name_strategy)  # fmt: skip
    return f"{directory}/{name}"


@st.composite
def mutated_roots(draw: st.DrawFn, workdir: Path) -> tuple[Path, list[str]]:
    """A fixture root copied into ``workdir`` with one to three inputs replaced; and what was
    done, for the failure message."""
    base = draw(st.sampled_from(BASES))
    root = copy_base(base, workdir)
    done = [f"base {base.relative_to(REPO)}"]
    for _ in range(draw(st.integers(1, 3))):
        path = draw(target_paths(root))
        content = draw(contents(existing(root, path), path in JSON_FILES))
        place(root, path, content)
        shown = content if isinstance(content, str) else f"{len(content)} bytes {content[:80]!r}"
        done.append(f"{path}: {shown}")
    return root, done
