"""Fuzzed snapshot roots never crash a command that reads them.

Each example copies a fixture root and replaces one to three of its inputs (any file the
snapshot layout names, a file in a directory read whole, a tuned profile) with garbage,
truncated or mutated real content (huge and negative numbers, NULs, invalid UTF-8, very
long lines, dropped and doubled fields, JSON nodes of another type), or a FIFO, a
directory, a link loop or a link out of the root. Then doctor, status, plan, analyze,
disable and notrack read it in this process: each must print a report (its JSON valid
against the schema) or stop with one of ctguard's own one-line errors (snapshot_fuzz.py).

Fast profile in the normal suite (CTGUARD_FUZZ_EXAMPLES unset: 120 examples, derandomized
so CI is repeatable); a longer, random one with ``CTGUARD_FUZZ_EXAMPLES=5000 pytest
tests/fuzz/test_snapshot_readers.py``.
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snapshot_fuzz import BASES, COMMANDS, REPO, check_root, copy_base, mutated_roots, place
from snapshot_inputs import DIRS, FILES, PATTERN_EXAMPLES, covered

from ctguard.cli import main
from ctguard.snapshot import layout

EXAMPLES = os.environ.get("CTGUARD_FUZZ_EXAMPLES")
HANG_SECONDS = 60  # one example, every command: a FIFO read as a file would block forever
# Memory one example may add: every fuzzed file is under 2 MB, so a reader that needs more
# than this builds something out of proportion to its input (it then fails with MemoryError
# instead of taking the shared machine's memory).
EXTRA_BYTES = 1 << 30


def _virtual_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize in /proc/self/status")


@contextlib.contextmanager
def no_hang(seconds: int) -> Iterator[None]:
    """Fail a run that takes over ``seconds`` or more than EXTRA_BYTES of address space."""

    def expire(_signum: int, _frame: object) -> None:
        raise TimeoutError(f"the commands took over {seconds} s: a read that never ends?")

    previous = signal.signal(signal.SIGALRM, expire)
    limits = resource.getrlimit(resource.RLIMIT_AS)
    cap = _virtual_size() + EXTRA_BYTES
    if limits[1] != resource.RLIM_INFINITY:
        cap = min(cap, limits[1])
    resource.setrlimit(resource.RLIMIT_AS, (cap, limits[1]))
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        resource.setrlimit(resource.RLIMIT_AS, limits)
        signal.signal(signal.SIGALRM, previous)


# -- the inputs are every input -------------------------------------------------------------
def test_every_layout_entry_is_fuzzed() -> None:
    for path in (*layout.KERNEL_FILES, layout.TABLE_FILE, *layout.CONFIG_FILES,
                 *layout.PRESENCE_MARKERS, *layout.LOG_FILES):  # fmt: skip
        assert path in FILES, path
    for directory in (*layout.KERNEL_DIRS, layout.HOLDERS_DIR, *layout.CONFIG_DIRS):
        assert directory in DIRS, directory
    for name in layout.COMMANDS:
        assert f"/ctguard_commands/{name}" in FILES, name
    assert all(covered(p) for p in PATTERN_EXAMPLES)


_TRACED: list[tuple[Path, set[tuple[str, bool]]]] = []  # (root, {(host path, listed)})


def _audit(event: str, args: tuple[object, ...]) -> None:
    if not _TRACED or event not in ("open", "os.listdir", "os.scandir") or not args:
        return
    path = args[0]
    if not isinstance(path, str | bytes | os.PathLike):
        return
    text = os.fsdecode(path)
    root, seen = _TRACED[-1]
    base = str(root)
    if text == base or text.startswith(base + "/"):
        seen.add((text[len(base) :] or "/", event != "open" or os.path.isdir(text)))


def _fixture_roots() -> list[Path]:
    manifests = [*REPO.joinpath("tests", "roots").rglob("ctguard_manifest.json"),
                 *REPO.joinpath("examples").rglob("ctguard_manifest.json")]  # fmt: skip
    return sorted(m.parent.resolve() for m in manifests)


def test_every_file_a_command_reads_is_fuzzed() -> None:
    """Run every command on every fixture root, recording each file opened and directory
    listed under the root (audit events): each must be one the fuzz cases can write."""
    sys.addaudithook(_audit)  # stays for the session; inert while _TRACED is empty
    missed: dict[str, str] = {}
    try:
        for root in _fixture_roots():
            _TRACED.append((root, set()))
            for name in COMMANDS:
                args = COMMANDS[name][0]
                with (
                    contextlib.redirect_stdout(io.StringIO()),
                    contextlib.redirect_stderr(io.StringIO()),
                ):
                    main([*args, "--root", str(root)])
            seen = _TRACED[-1][1]
            assert ("/ctguard_manifest.json", False) in seen, (root, sorted(seen)[:5])
            for path, listed in seen:
                if not covered(path, listed):
                    missed.setdefault(path, root.name)
    finally:
        _TRACED.clear()
    assert not missed, f"read but never fuzzed (add to snapshot_inputs.py): {missed}"


# -- the fuzz -------------------------------------------------------------------------------
@settings(
    max_examples=int(EXAMPLES or 120),
    derandomize=EXAMPLES is None,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
@given(data=st.data())
def test_fuzzed_snapshot_roots(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory(prefix="ctguard-fuzz-") as tmp:
        root, done = data.draw(mutated_roots(Path(tmp)), label="root")
        note = "\n".join(done)
        try:
            with no_hang(HANG_SECONDS):
                check_root(root)
        except BaseException as exc:
            exc.add_note(note)
            raise


# -- numbers: each value file of a root, negative and past 64 bits --------------------------
MODERN = REPO / "tests" / "roots" / "modern-builtin"
VALUE_FILES = sorted(
    "/" + p.relative_to(MODERN).as_posix()
    for top in ("proc/sys", "sys/module", "sys/kernel")
    for p in MODERN.joinpath(top).rglob("*")
    if p.is_file()
)
JSON_COMMANDS = tuple(name for name, (_, schema_id) in COMMANDS.items() if schema_id)


@pytest.mark.parametrize("path", VALUE_FILES)
def test_each_value_file_with_extreme_numbers(tmp_path: Path, path: str) -> None:
    for number in (b"-1\n", b"18446744073709551616\n"):
        root = copy_base(MODERN, tmp_path / number.decode().strip())
        place(root, path, number)
        try:
            with no_hang(HANG_SECONDS):
                check_root(root, JSON_COMMANDS)
        except BaseException as exc:
            exc.add_note(f"{path} = {number!r}")
            raise


# -- the harness can fail -------------------------------------------------------------------
def test_a_raising_reader_fails_the_harness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that raises something other than a CtguardError must fail the check: the
    injected fault below is what an unguarded int() on a fuzzed line looks like."""
    import ctguard.sources.meminfo as meminfo

    def broken(_text: str) -> object:
        raise ValueError("invalid literal for int() with base 10: 'x'")

    monkeypatch.setattr(meminfo, "parse_meminfo", broken)
    root = copy_base(BASES[0], tmp_path)
    with pytest.raises(ValueError, match="invalid literal"):
        check_root(root, ("doctor",))


def test_an_invalid_document_fails_the_harness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ctguard.output.status_json as status_json

    real = status_json.status_dict

    def broken(*args: object, **kwargs: object) -> object:
        doc = real(*args, **kwargs)  # type: ignore[arg-type]
        doc["table"]["count"] = "lots"
        return doc

    monkeypatch.setattr(status_json, "status_dict", broken)
    root = copy_base(BASES[0], tmp_path)
    with pytest.raises(AssertionError, match="status"):
        check_root(root, ("status",))


def test_a_fifo_where_a_file_is_meant_is_refused_not_read(tmp_path: Path) -> None:
    """Every file input as a FIFO at once: no reader may block on it (the alarm fails it)."""
    root = copy_base(BASES[0], tmp_path)
    for path in FILES:
        place(root, path, "fifo")
    with no_hang(HANG_SECONDS):
        check_root(root)


@pytest.mark.parametrize("directory", DIRS)
def test_each_read_directory_with_junk_names(tmp_path: Path, directory: str) -> None:
    root = copy_base(BASES[0], tmp_path)
    for name in ("-", " ", "\u202e.conf", "a" * 255, "x.conf\n", "nf_conntrack_max\t"):
        place(root, f"{directory}/{name}", b"\xff\x00 = 99999999999999999999999\n")
    with no_hang(HANG_SECONDS):
        check_root(root)
