"""Commands: program outputs by logical name, run live or read from a snapshot.

Every program ctguard may run is named here once, as an argument list (never a shell
string) with a timeout. A snapshot stores each output under ``ctguard_commands/<name>``,
so the same reader parses a live run and a capture. A program that is absent, fails or
times out is a Missing value, never an exception. Each output is read up to its cap
(host/caps.py): ``excerpt`` says what was cut; ``output`` is for outputs read whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Protocol, cast

from ctguard.errors import CtguardError
from ctguard.host.caps import Cap, Excerpt, cap_of, excerpt, read_capped
from ctguard.host.root import HostRoot, unreadable
from ctguard.missing import Missing

CAPTURE_DIR = "/ctguard_commands"
MANIFEST = "/ctguard_manifest.json"  # also named in sources/manifest.py, which parses it


@dataclass(frozen=True)
class Spec:
    argv: tuple[str, ...]
    timeout: float = 15.0


# Logical name -> program. Names are the file names used in snapshots (docs/design.md §5).
SPECS: dict[str, Spec] = {
    "iptables-save": Spec(("iptables-save",)),
    "ip6tables-save": Spec(("ip6tables-save",)),
    "nft-json": Spec(("nft", "-j", "list", "ruleset")),
    "dmesg": Spec(("dmesg",)),
    "lsmod": Spec(("lsmod",)),
    "ps": Spec(("ps", "-eo", "pid,args")),
    "conntrack-S": Spec(("conntrack", "-S")),
    "conntrack-C": Spec(("conntrack", "-C")),
    "conntrack-L": Spec(("conntrack", "-L"), timeout=600.0),
    "uname-r": Spec(("uname", "-r")),
    "iptables-version": Spec(("iptables", "-V")),  # "iptables v1.8.9 (nf_tables)"
    "ip-addr": Spec(("ip", "-j", "addr", "show")),  # the host's own addresses
}

# Not a program: counters read over netlink (pyroute2), written in `conntrack -S` form.
NETLINK_STATS = "netlink-stats"


class Commands(Protocol):
    """Program outputs by logical name."""

    def output(self, name: str) -> str | Missing: ...

    def excerpt(self, name: str, cap: Cap | None = None) -> Excerpt | Missing: ...

    def output_to(self, name: str, dest: BinaryIO) -> Missing | None: ...

    def stream(self, name: str) -> AbstractContextManager[BinaryIO | Missing]: ...


class LiveCommands:
    """Runs programs on this machine: argument lists, timeouts, no shell."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = env if env is not None else {**os.environ, "LC_ALL": "C"}

    @staticmethod
    def _argv(name: str) -> tuple[list[str], Spec] | Missing:
        """The program's argument list, resolved on PATH, or why it cannot run."""
        spec = SPECS.get(name)
        if spec is None:
            return Missing(f"unknown command {name!r}")
        prog = shutil.which(spec.argv[0])
        if prog is None:
            return Missing(f"{spec.argv[0]} is not installed")
        return [prog, *spec.argv[1:]], spec

    def _run(
        self, name: str, stdout: int | BinaryIO
    ) -> subprocess.CompletedProcess[bytes] | Missing:
        resolved = self._argv(name)
        if isinstance(resolved, Missing):
            return resolved
        argv, spec = resolved
        shown = " ".join(spec.argv)
        try:
            done = subprocess.run(
                argv,
                stdout=stdout,
                stderr=subprocess.PIPE,
                timeout=spec.timeout,
                env=self.env,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return Missing(f"{shown} timed out after {spec.timeout:g} s")
        except OSError as exc:
            return Missing(f"{shown} could not run: {exc.strerror or exc}")
        if done.returncode != 0:
            return Missing(f"{shown} exited {done.returncode}: {_first_line(done.stderr)}")
        return done

    def output(self, name: str) -> str | Missing:
        got = self.excerpt(name)
        return got if isinstance(got, Missing) else got.text

    def excerpt(self, name: str, cap: Cap | None = None) -> Excerpt | Missing:
        """The output, read as the program writes it, up to ``cap`` (its own by default):
        the rest is counted and dropped, so memory stays the cap whatever the program says."""
        if name == NETLINK_STATS:
            text = netlink_stats_text()
            if isinstance(text, Missing):
                return text
            data = text.encode()
            return excerpt(data, len(data), cap or cap_of(name), f"{name} output")
        try:
            with self.stream(name) as out:
                if isinstance(out, Missing):
                    return out
                return read_capped(out, cap or cap_of(name), f"{name} output")
        except CommandFailed as exc:
            return Missing(str(exc).removesuffix(" (its output was incomplete)"))

    def output_to(self, name: str, dest: BinaryIO) -> Missing | None:
        """Stream a (possibly huge) output, such as ``conntrack -L``, into ``dest``."""
        done = self._run(name, dest)
        return done if isinstance(done, Missing) else None

    @contextmanager
    def stream(self, name: str) -> Iterator[BinaryIO | Missing]:
        """The output as a pipe, read while the program runs; killed at its timeout or
        when the reader stops early. A non-zero exit after the reader finished raises
        CommandFailed (the output was incomplete)."""
        resolved = self._argv(name)
        if isinstance(resolved, Missing):
            yield resolved
            return
        argv, spec = resolved
        shown = " ".join(spec.argv)
        errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed below; not a pipe: a
        # program that writes much to stderr would block while we read its stdout
        try:
            child = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=errors,
                stdin=subprocess.DEVNULL,
                env=self.env,
            )
        except OSError as exc:
            errors.close()
            yield Missing(f"{shown} could not run: {exc.strerror or exc}")
            return
        _widen_pipe(child.stdout)
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            child.kill()

        timer = threading.Timer(spec.timeout, expire)
        timer.start()
        try:
            assert child.stdout is not None
            yield cast(BinaryIO, child.stdout)
        finally:
            timer.cancel()
            if child.poll() is None:
                try:  # a reader that read to the end: the program is exiting
                    child.wait(timeout=_EXIT_GRACE)
                except subprocess.TimeoutExpired:  # a reader that stopped early
                    child.kill()
            child.wait()
            if child.stdout is not None:
                child.stdout.close()
            errors.seek(0)
            err = errors.read(4096)
            errors.close()
        if child.returncode != 0:
            why = (
                f"timed out after {spec.timeout:g} s"
                if expired.is_set()
                else f"exited {child.returncode}: {_first_line(err)}"
            )
            raise CommandFailed(f"{shown} {why} (its output was incomplete)")


def capture_failures(root: HostRoot) -> dict[str, str]:
    """What a snapshot's capture could not store and why ("failed" in its manifest), by
    host path (``/proc/net/nf_conntrack``, ``/ctguard_commands/<name>``); empty when
    the manifest is absent or unreadable."""
    text = root.try_read_text(MANIFEST, 1 << 20)
    try:
        failed = json.loads(text).get("failed", []) if isinstance(text, str) else []
    except (ValueError, AttributeError, RecursionError):
        failed = []
    failures: dict[str, str] = {}
    for item in failed if isinstance(failed, list) else []:
        if isinstance(item, dict) and isinstance(item.get("what"), str):
            failures[item["what"]] = str(item.get("why", ""))
    return failures


class CapturedCommands:
    """Reads outputs a snapshot captured under ``ctguard_commands/<name>``."""

    def __init__(self, root: HostRoot) -> None:
        self.root = root
        self._failures: dict[str, str] | None = None

    def _why_absent(self, name: str) -> str:
        """What the snapshot's manifest says about a missing output (the capture's error)."""
        if self._failures is None:
            self._failures = capture_failures(self.root)
        why = self._failures.get(f"{CAPTURE_DIR}/{name}")
        return f"not captured: {why}" if why else f"the snapshot has no {name} output"

    def output(self, name: str) -> str | Missing:
        got = self.excerpt(name)
        return got if isinstance(got, Missing) else got.text

    def excerpt(self, name: str, cap: Cap | None = None) -> Excerpt | Missing:
        """The capture, up to ``cap`` (its own by default): its head or tail is read
        from the file, whatever its size."""
        cap = cap or cap_of(name)
        path = f"{CAPTURE_DIR}/{name}"
        try:
            with self.root.open_binary(path) as src:
                total = os.fstat(src.fileno()).st_size
                if cap.keep == "tail":
                    src.seek(max(0, total - cap.max_bytes))
                data = src.read(cap.max_bytes + 1)
        except FileNotFoundError:
            return Missing(self._why_absent(name))
        except OSError as exc:
            return unreadable(path, exc)
        return excerpt(data, max(total, len(data)), cap, f"{name} output")

    def output_to(self, name: str, dest: BinaryIO) -> Missing | None:
        try:
            with self.root.open_binary(f"{CAPTURE_DIR}/{name}") as src:
                shutil.copyfileobj(src, dest)
        except OSError:
            return Missing(f"the snapshot has no {name} output")
        return None

    @contextmanager
    def stream(self, name: str) -> Iterator[BinaryIO | Missing]:
        path = f"{CAPTURE_DIR}/{name}"
        if not self.root.is_file(path):
            yield Missing(self._why_absent(name))
            return
        with self.root.open_binary(path) as src:
            yield src


def _first_line(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[0] if lines else "no message"


PIPE_BYTES = 1 << 20  # fs.pipe-max-size's default
_EXIT_GRACE = 0.5  # seconds a program that wrote all its output may take to exit


def _widen_pipe(stream: object) -> None:
    """A 1 MiB pipe instead of 64 KiB: a producer like conntrack -L then blocks 16 times
    less often waiting for the reader (measured in bench/analyze.py, --source netlink)."""
    fileno = getattr(stream, "fileno", None)
    if fileno is None or not hasattr(fcntl, "F_SETPIPE_SZ"):
        return
    with contextlib.suppress(OSError):  # above fs.pipe-max-size for non-root: keep 64 KiB
        fcntl.fcntl(fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


class CommandFailed(CtguardError):
    """A streamed program failed after its output was read: the output is incomplete."""


def netlink_stats_text() -> str | Missing:
    """Per-CPU conntrack counters over ctnetlink, printed like ``conntrack -S``.

    One line per CPU, names from the CTA_STATS_* attributes, e.g.
    ``cpu=0\tfound=0 invalid=3 insert=0 insert_failed=0 drop=0 early_drop=0 error=0
    search_restart=0 clash_resolve=0 chain_toolong=0``.
    """
    try:
        from pyroute2.netlink.nfnetlink.nfctsocket import NFCTSocket
    except ImportError:
        return Missing("pyroute2 is not installed")
    try:
        sock = NFCTSocket()
        try:
            replies = sock.stat()
        finally:
            sock.close()
    except OSError as exc:
        return Missing(f"ctnetlink stats: {exc.strerror or exc}")
    lines: list[str] = []
    for reply in replies:
        fields = " ".join(
            f"{key.removeprefix('CTA_STATS_').lower()}={value}"
            for key, value in reply.get("attrs", [])
        )
        lines.append(f"cpu={reply.get('res_id', len(lines))}\t{fields}")
    return "\n".join(lines) + "\n"
