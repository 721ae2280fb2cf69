"""``ctguard top`` without a kernel: the sampler on a fake clock and fake readers, the
renderer on hand-made frames, the probe's worker with a fake probe."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field

import pytest
from rich.console import Console

from ctguard.cli import main
from ctguard.errors import CtguardError
from ctguard.host.netns_worker import NetnsWorker
from ctguard.missing import Missing
from ctguard.output.top_text import UsageBar, render_top, render_top_text, usage_style
from ctguard.table.reader import scan_stream
from ctguard.table.summary import summarize
from ctguard.usecases.top import (
    TABLE_DUTY,
    CounterSample,
    NamespaceShare,
    RemoteProbe,
    TableView,
    TopFrame,
    TopSampler,
    compute_rates,
    next_due,
    one_frame,
    table_view,
)

VIEW = TableView(
    source="/proc/net/nf_conntrack",
    entries=8,
    bad_lines=0,
    ports=(("tcp", 8983, 6), ("udp", 53, 2)),
    sources=(("127.0.0.2", 6), ("127.0.0.3", 2)),
    states=(("tcp", "ESTABLISHED", 6), ("udp", "", 2)),
)


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeHost:
    """Counters that grow by a fixed step per reading; a table read that takes ``cost``
    seconds of the fake clock."""

    clock: FakeClock
    cost: float = 0.6
    step: dict[str, int] = field(default_factory=lambda: {"drop": 10, "new": 400})
    readings: int = 0
    table_reads: int = 0
    scans: int = 0
    table_result: TableView | Missing = VIEW

    def counters(self) -> CounterSample:
        totals = {name: self.readings * step for name, step in self.step.items()}
        self.readings += 1
        return CounterSample(8, 262_144, totals, "procfs")

    def table(self) -> TableView | Missing:
        self.table_reads += 1
        self.clock.now += self.cost
        return self.table_result

    def namespaces(self) -> list[NamespaceShare]:
        self.scans += 1
        self.clock.now += 0.05
        return [NamespaceShare("initial namespace", 4026531840, 8, 0.003)]


def sampler_for(host: FakeHost, interval: float = 2.0, **kw: object) -> TopSampler:
    return TopSampler(
        counters=host.counters,
        table=host.table,
        interval=interval,
        clock=host.clock,
        wall=lambda: 1_700_000_000.0,
        **kw,  # type: ignore[arg-type]
    )


def test_first_frame_has_no_rates_but_the_table() -> None:
    host = FakeHost(FakeClock())
    frame = sampler_for(host).sample()
    assert frame.rates is None
    assert frame.count == 8 and frame.max == 262_144
    assert frame.table == VIEW and host.table_reads == 1
    assert frame.table_cost == pytest.approx(0.6)


def test_rates_are_per_second_over_the_measured_time() -> None:
    clock = FakeClock()
    host = FakeHost(clock, cost=0.0)
    sampler = sampler_for(host)
    sampler.sample()
    clock.now += 2.5
    rates = sampler.sample().rates
    assert rates is not None
    assert rates.seconds == pytest.approx(2.5)
    assert rates.values["drop"] == pytest.approx(4.0)  # 10 more over 2.5 s
    assert rates.values["new"] == pytest.approx(160.0)
    # not measured here: None, never 0
    assert rates.values["early_drop"] is None and rates.values["insert_failed"] is None


def test_a_counter_that_went_down_counts_zero() -> None:
    first = CounterSample(1, 10, {"drop": 50}, "procfs")
    last = CounterSample(1, 10, {"drop": 3}, "procfs")
    rates = compute_rates(first, last, 1.0)
    assert rates is not None and rates.values["drop"] == 0


def test_no_rates_without_counters() -> None:
    empty = CounterSample(None, None, {}, "", notes=("counters unavailable: x",))
    assert compute_rates(empty, empty, 2.0) is None


def test_event_overflow_marks_new_as_a_lower_bound() -> None:
    first = CounterSample(1, 10, {"new": 0}, "procfs", new_overflows=0)
    last = CounterSample(1, 10, {"new": 100}, "procfs", new_overflows=1)
    rates = compute_rates(first, last, 1.0)
    assert rates is not None and rates.new_lower_bound


def test_adaptive_rule() -> None:
    assert TABLE_DUTY == 0.15
    assert next_due(0.0, 0.1, 2.0) == 2.0
    assert next_due(0.0, 0.6, 2.0) == pytest.approx(4.0)
    assert next_due(10.0, 3.0, 2.0) == pytest.approx(30.0)


def test_table_is_not_reread_before_it_is_due() -> None:
    clock = FakeClock(0.0)
    host = FakeHost(clock, cost=0.6)  # next read due 0.6 / 0.15 = 4 s after the last start
    sampler = sampler_for(host)
    frame = sampler.sample()  # t=0: read
    assert host.table_reads == 1
    assert frame.table_next == pytest.approx(3.4)  # due at 4.0, frame at 0.6
    clock.now = 2.0
    frame = sampler.sample()
    assert host.table_reads == 1, "re-read before it was due"
    assert frame.table == VIEW  # the last read is still shown ...
    assert frame.table_age == pytest.approx(2.0)  # ... and how old it is
    assert frame.table_next == pytest.approx(2.0)
    clock.now = 3.99
    sampler.sample()
    assert host.table_reads == 1
    clock.now = 4.0
    sampler.sample()
    assert host.table_reads == 2, "not re-read once due"
    # over a long run table reads take at most TABLE_DUTY of the time
    for _ in range(100):
        clock.now += 2.0
        sampler.sample()
    assert host.table_reads * host.cost / clock.now <= TABLE_DUTY + 1e-9


def test_a_cheap_table_is_read_every_refresh() -> None:
    clock = FakeClock(0.0)
    host = FakeHost(clock, cost=0.05)
    sampler = sampler_for(host)
    for _ in range(5):
        sampler.sample()
        clock.now += 2.0
    assert host.table_reads == 5


def test_table_flag_forces_or_skips_the_read() -> None:
    clock = FakeClock(0.0)
    host = FakeHost(clock)
    sampler = sampler_for(host)
    frame = sampler.sample(table=False)
    assert host.table_reads == 0 and frame.table is None and frame.table_next is None
    frame = sampler.sample(table=True)
    assert host.table_reads == 1 and frame.table == VIEW
    sampler.sample(table=True)
    assert host.table_reads == 2


def test_a_failed_table_read_keeps_the_last_view_and_says_why() -> None:
    clock = FakeClock(0.0)
    host = FakeHost(clock, cost=0.1)
    sampler = sampler_for(host)
    sampler.sample()
    host.table_result = Missing("no /proc/net/nf_conntrack")
    clock.now = 2.0
    frame = sampler.sample()
    assert frame.table == VIEW
    assert "table not read: no /proc/net/nf_conntrack" in frame.notes


def test_a_table_reader_error_becomes_a_note() -> None:
    def broken() -> TableView:
        raise CtguardError("conntrack -L exited 1")

    sampler = TopSampler(counters=FakeHost(FakeClock()).counters, table=broken, interval=2.0)
    frame = sampler.sample()
    assert frame.table is None
    assert frame.notes == ("table not read: conntrack -L exited 1",)


def test_namespace_scan_has_its_own_schedule() -> None:
    clock = FakeClock(0.0)
    host = FakeHost(clock, cost=0.01)
    sampler = sampler_for(host, namespaces=host.namespaces)
    frame = sampler.sample()
    assert host.scans == 1
    assert frame.namespaces == (NamespaceShare("initial namespace", 4026531840, 8, 0.003),)
    clock.now = 1.0  # before the interval: neither is due
    sampler.sample()
    assert (host.table_reads, host.scans) == (1, 1)
    clock.now = 2.1
    sampler.sample()
    assert (host.table_reads, host.scans) == (2, 2)


def test_table_view_from_a_scanned_table() -> None:
    text = (
        b"ipv4     2 tcp      6 299 ESTABLISHED src=127.0.0.2 dst=127.0.0.1 sport=30001 "
        b"dport=8983 src=127.0.0.1 dst=127.0.0.2 sport=8983 dport=30001 [ASSURED] mark=0 "
        b"zone=0 use=2\n"
    ) * 6 + (
        b"ipv4     2 udp      17 299 src=127.0.0.3 dst=127.0.0.1 sport=40001 dport=53 "
        b"[UNREPLIED] src=127.0.0.1 dst=127.0.0.3 sport=53 dport=40001 mark=0 zone=0 use=2\n"
    ) * 2
    tally = scan_stream(io.BytesIO(text), by_sport=False, exact_timeouts=False)
    view = table_view(summarize(tally, 5), "/proc/net/nf_conntrack", 5)
    assert view == VIEW
    assert table_view(summarize(tally, 1), "x", 1).ports == (("tcp", 8983, 6),)


# -- renderer -----------------------------------------------------------------------------


def frame(**kw: object) -> TopFrame:
    values: dict[str, object] = {
        "time": 1_700_000_000.0,
        "netns": "web1",
        "count": 8,
        "max": 262_144,
        "rates": compute_rates(
            CounterSample(
                8, 262_144, {"new": 0, "drop": 0, "early_drop": 0, "insert_failed": 0}, "procfs"
            ),
            CounterSample(
                8, 262_144, {"new": 25, "drop": 4, "early_drop": 0, "insert_failed": 0}, "procfs"
            ),
            2.0,
        ),
        "counter_source": "procfs",
        "table": VIEW,
        "table_age": 0.31,
        "table_cost": 0.12,
        "table_next": 1.7,
        "namespaces": None,
    }
    values.update(kw)
    return TopFrame(**values)  # type: ignore[arg-type]


def text_of(renderable: object, width: int = 100) -> str:
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def test_render_shows_gauge_rates_tables_and_footer() -> None:
    out = text_of(render_top(frame()))
    assert "ctguard top (netns web1)" in out
    assert "entries 8 / 262,144" in out and "0.0 %" in out
    assert "new 12.5" in out and "drop 2.0" in out and "early_drop 0.0" in out
    assert "invalid n/a" in out  # the same five counters as status (model/rates.py)
    assert "over 2.0 s, from procfs" in out
    assert "table: 8 entries, from /proc/net/nf_conntrack" in out
    for needle in ("top ports", "top sources", "states", "tcp/8983", "udp/53", "127.0.0.2"):
        assert needle in out
    assert "tcp ESTABLISHED" in out and "udp (no state)" in out
    assert "table read 0.31 s ago, took 0.12 s; next in 1.7 s · q quits" in out
    assert "busiest namespaces" not in out


def test_render_once_has_no_schedule_and_no_keys() -> None:
    out = text_of(render_top(frame(rates=None), live=False))
    assert "table read 0.31 s ago, took 0.12 s" in out
    assert "next in" not in out and "q quits" not in out
    assert "not measured (--interval 0)" in out


def test_render_first_frame_before_any_table() -> None:
    out = text_of(
        render_top(frame(rates=None, table=None, table_age=None, table_cost=None, table_next=None))
    )
    assert "table: not read yet" in out
    assert "from the next refresh" in out
    assert out.rstrip().endswith("q quits")


def test_render_busiest_namespaces_and_unknown_counts() -> None:
    shares = (
        NamespaceShare("initial namespace", 1, 200_000, 76.29),
        NamespaceShare("pid 42 nginx", 2, None, None, "needs root (setns)"),
    )
    out = text_of(render_top(frame(netns=None, namespaces=shares)))
    assert "busiest namespaces" in out
    assert "initial namespace" in out and "200,000" in out and "76.3 %" in out
    assert "needs root (setns)" in out


def test_render_unlimited_and_unknown() -> None:
    out = text_of(render_top(frame(max=0, count=None, rates=None, counter_source="")))
    assert "entries ? / unlimited" in out and "n/a (no counters)" in out


def test_usage_colour_thresholds_and_ascii_bar() -> None:
    assert usage_style(None) == ""
    assert usage_style(79.9) == "green"
    assert usage_style(80.0) == "yellow"
    assert usage_style(95.0) == "bold red"
    half = text_of(render_top(frame(count=131_072)))
    assert "█" * 20 + "░" * 20 in half and "50.0 %" in half
    # a console that cannot encode block characters gets a plain bar
    raw = io.BytesIO()
    ascii_out = io.TextIOWrapper(raw, encoding="ascii")
    Console(file=ascii_out, width=100, color_system=None).print(UsageBar(100.0))
    ascii_out.flush()
    assert raw.getvalue().decode().strip() == "[" + "#" * 40 + "]"
    assert text_of(UsageBar(None)).strip() == "[" + "░" * 40 + "]"  # unknown: empty


def test_render_as_plain_text_for_a_pipe() -> None:
    out = render_top_text(frame(), live=False, color=False)
    assert "\x1b[" not in out and "q quits" not in out
    assert all(line == line.rstrip() for line in out.splitlines())
    assert "entries 8 / 262,144" in out and out.endswith("\n")


def test_render_colours_usage_by_threshold() -> None:
    console = Console(record=True, width=100, file=io.StringIO(), force_terminal=True)
    console.print(render_top(frame(count=250_000)))  # 95.4 %
    assert "\x1b[1;31m95.4 %" in console.export_text(styles=True)


# -- the probe in its worker, with a fake probe -------------------------------------------


class FakeProbe:
    def __init__(self, source: str, top: int) -> None:
        self.calls = 0
        self.top = top

    def fileno(self) -> int | None:
        return None

    def drain(self) -> None:
        pass

    def counters(self) -> CounterSample:
        self.calls += 1  # state lives in the worker, across calls
        return CounterSample(
            self.calls, None, {"new": self.calls * 10}, "procfs", 0, (str(os.getpid()),)
        )

    def table(self) -> TableView | Missing:
        if self.top == 13:
            raise CtguardError("conntrack -L failed")
        return VIEW


def test_remote_probe_answers_from_one_worker() -> None:
    with NetnsWorker(start=lambda: FakeProbe("auto", 5)) as worker:
        pid = worker.pid
        probe = RemoteProbe(worker)
        first, second = probe.counters(), probe.counters()
        assert (first.count, second.count) == (1, 2)
        assert first.notes == (str(pid),) and pid != os.getpid()
        assert probe.table() == VIEW
    assert worker.pid is None
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped


def test_remote_probe_job_error_is_a_ctguard_error() -> None:
    with NetnsWorker(start=lambda: FakeProbe("auto", 13)) as worker:
        probe = RemoteProbe(worker)
        with pytest.raises(CtguardError, match="conntrack -L failed"):
            probe.table()
        assert probe.counters().count == 1  # the worker is still serving


def test_probe_that_cannot_start_says_why() -> None:
    def refuse() -> FakeProbe:
        raise OSError("no conntrack here")

    with pytest.raises(CtguardError, match="cannot read inside this namespace: no conntrack here"):
        NetnsWorker(start=refuse)


def test_once_measures_rates_over_the_interval_then_reads_the_table() -> None:
    clock = FakeClock(0.0)
    host = FakeHost(clock, cost=0.1)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    frame = one_frame(sampler_for(host), 1.5, sleep)
    assert slept == [1.5] and host.table_reads == 1 and host.readings == 2
    assert frame.rates is not None and frame.rates.seconds == pytest.approx(1.5)
    assert frame.table == VIEW
    host = FakeHost(FakeClock(0.0))
    frame = one_frame(sampler_for(host), 0.0, sleep)
    assert frame.rates is None and host.readings == 1 and len(slept) == 1


# -- command line -------------------------------------------------------------------------


def test_top_needs_root(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["top", "--once"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ctguard: error: ctguard top needs root")


def test_interval_zero_needs_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["top", "--interval", "0"]) == 3
    err = capsys.readouterr().err
    assert "--interval 0 works only with --once" in err and len(err.splitlines()) == 1
