"""The exporter's sampler: findings re-evaluated at most every --doctor-interval, kept in
between, and a doctor that fails or overruns shown as a source down, never a failed scrape."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import ctguard.usecases.exporter as exporter
from ctguard.facts import Facts
from ctguard.host.root import HostRoot
from ctguard.host.target import Opened, Target, open_target
from ctguard.sources.sysctl_conf import SysctlConfig
from ctguard.usecases.exporter import Sampler

ROOT = Path(__file__).parent / "roots" / "doctor" / "ct301-later-file-wins"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def opened() -> Iterator[Opened]:
    with open_target(Target(str(ROOT))) as o:
        yield o


def counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = exporter.read_facts

    def read(opened: Opened, table: bool = True) -> Facts:
        assert table is False  # the rules that need no table scan
        calls.append(1)
        return real(opened, table)

    monkeypatch.setattr(exporter, "read_facts", read)
    return calls


def test_findings_are_cached_for_the_interval(
    opened: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = counting(monkeypatch)
    clock = Clock()
    sampler = Sampler(opened, doctor_interval=300, clock=clock)
    try:
        first = sampler.sample()
        assert ("CT301", "warning") in first.findings
        clock.now += 299
        assert sampler.sample().findings == first.findings
        assert len(calls) == 1
        clock.now += 1
        assert sampler.sample().findings == first.findings
        assert len(calls) == 2
        assert sampler.sample().sources_up["doctor"] is True
    finally:
        sampler.close()


def test_a_failing_doctor_keeps_the_last_findings_and_says_so(
    opened: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    sampler = Sampler(opened, doctor_interval=60, clock=clock)
    try:
        good = sampler.sample().findings
        assert good

        def broken(opened: Opened, table: bool = True) -> Facts:
            raise RuntimeError("ps vanished")

        monkeypatch.setattr(exporter, "read_facts", broken)
        clock.now += 60
        sample = sampler.sample()
        assert sample.sources_up["doctor"] is False
        assert sample.findings == good  # the last known, not an empty all-clear
        assert sample.max == 262144  # the rest of the scrape is whole
    finally:
        sampler.close()


def test_a_slow_doctor_does_not_hold_the_scrape(
    opened: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    real = exporter.read_facts

    def slow(opened: Opened, table: bool = True) -> Facts:
        release.wait(30)
        return real(opened, table)

    monkeypatch.setattr(exporter, "read_facts", slow)
    sampler = Sampler(opened, doctor_interval=60, doctor_wait=0.2, clock=Clock())
    try:
        sample = sampler.sample()
        assert sample.sources_up["doctor"] is False
        assert sample.findings == ()
        assert sample.duration < 5
        release.set()
        for _ in range(50):  # the evaluation finishes and the next scrape serves it
            sample = sampler.sample()
            if sample.sources_up["doctor"]:
                break
        assert ("CT301", "warning") in sample.findings
    finally:
        release.set()
        sampler.close()


def test_the_sysctl_files_are_reread_with_the_findings_not_every_scrape(
    opened: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    real = exporter.read_sysctl_config

    def read(host: HostRoot) -> SysctlConfig:
        reads.append(1)
        return real(host)

    monkeypatch.setattr(exporter, "read_sysctl_config", read)
    clock = Clock()
    sampler = Sampler(opened, doctor_interval=300, clock=clock)
    try:
        first = sampler.sample()
        assert first.drift  # CT301's root: the files set a value the runtime lost
        assert first.sources_up["sysctl_files"] is True
        clock.now += 299
        assert sampler.sample().drift == first.drift  # from the files read at first
        assert len(reads) == 1
        clock.now += 1
        assert sampler.sample().drift == first.drift
        assert len(reads) == 2
    finally:
        sampler.close()
