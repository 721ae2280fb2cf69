"""``ctguard report --format html`` as a person sees it: Debian's chromium, headless, on a
phone-sized viewport, driven by playwright (its own browser download is never used).

The page is opened from a file with every request routed through the test: anything that
is not the file itself fails the test. Expected numbers and rows are counted from the
doctor documents the fleet was made of (fleet_samples.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet_samples import (
    RANK,
    RHEL6,
    Member,
    as_host,
    doctor_document,
    machine_id,
    run,
    write_fleet,
)

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
HOSTILE = '<script>alert("owned")</script>'
TIMEOUT_MS = 15_000  # each browser step; the page is local and small


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: EXTRAS=test bash scripts/install installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=60_000)
        try:
            yield browser
        finally:
            browser.close()


def _fleet(tmp_path: Path) -> tuple[Path, list[Member]]:
    dest = tmp_path / "fetched"
    members = write_fleet(dest, 9)
    document = as_host(doctor_document(RHEL6), HOSTILE, machine_id(99), "2026-11-05T00:00:00Z")
    path = dest / "evil" / "doctor.json"
    path.parent.mkdir()
    path.write_text(json.dumps(document))
    members.append(Member(path, document))
    page = tmp_path / "fleet.html"
    code, out, err = run(["report", str(dest), "--format", "html"])
    assert code == 2, err
    page.write_text(out)
    return page, members


def _rows(members: list[Member]) -> list[tuple[str, str]]:
    """(hostname, severity) of each row the table should have: one per finding, and one
    "ok" row for a host with nothing found."""
    rows = []
    for m in members:
        rows += [(m.key[0], sev) for sev in m.found.values()] or [(m.key[0], "ok")]
    return rows


def test_what_a_person_sees_on_a_phone(browser: Any, tmp_path: Path) -> None:
    page_file, members = _fleet(tmp_path)
    context = browser.new_context(viewport=PHONE, java_script_enabled=True)
    context.set_default_timeout(TIMEOUT_MS)
    outside: list[str] = []
    dialogs: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(page_file.as_uri())
    try:
        _check_page(page, members)
    finally:
        context.close()
    assert outside == [], "the page asked the network"
    assert dialogs == [], "a hostname ran as script"


def _check_page(page: Any, members: list[Member]) -> None:
    # the fleet numbers, counted from the documents
    questions = {
        "dropping": lambda f: f.get("CT102") == "critical",
        "not_persistent": lambda f: any(i in f for i in ("CT301", "CT302", "CT303", "CT304")),
        "ram": lambda f: f.get("CT201") == "critical",
    }
    for key, yes in questions.items():
        shown = page.locator(f'[data-question="{key}"] .n').inner_text()
        assert int(shown.replace(",", "")) == sum(1 for m in members if yes(m.found)), key
    assert page.locator('[data-question="hosts"] .n').inner_text() == str(len(members))

    # every row, and the hostile hostname as the text it is
    rows = _rows(members)
    visible = page.locator("#rows tbody tr:visible")
    assert visible.count() == len(rows)
    assert page.locator("#shown").inner_text() == f"{len(rows)} of {len(rows)} rows"
    hostile_cells = page.locator("#rows tbody td:first-child", has_text=HOSTILE)
    assert hostile_cells.count() == sum(1 for h, _ in rows if h == HOSTILE)
    assert hostile_cells.first.is_visible()

    # nothing wider than the phone
    overflow = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert overflow[0] <= overflow[1], overflow

    # sort by clicking a header: hosts ascending, then descending
    def first_cells(column: int) -> list[str]:
        cells = page.locator(f"#rows tbody tr:visible td:nth-child({column})")
        return [c.strip() for c in cells.all_inner_texts()]

    def severities() -> list[int]:
        """The severity column as ranks (it shows CRITICAL; a word we do not know fails)."""
        known = {**RANK, "ok": 0}
        return [known[word.lower()] for word in first_cells(2)]

    host_header = page.locator("#rows thead th", has_text="Host")
    host_header.click()
    names = [c.split(" ")[0] for c in first_cells(1)]
    assert names[0] == min(h.split(" ")[0] for h, _ in rows)
    host_header.click()
    names = [c.split(" ")[0] for c in first_cells(1)]
    assert names[0] == max(h.split(" ")[0] for h, _ in rows)
    severity_header = page.locator("#rows thead th", has_text="Severity")
    severity_header.click()
    ranks = severities()
    assert ranks == sorted(ranks) and ranks[0] < ranks[-1]
    severity_header.click()
    ranks = severities()
    assert ranks == sorted(ranks, reverse=True) and ranks[0] > ranks[-1]

    # filter: a host's name, then a severity, then both
    target = members[0]
    page.fill("#q", target.key[0])
    assert visible.count() == sum(1 for h, _ in rows if h == target.key[0])
    page.fill("#q", "")
    page.select_option("#sev", "critical")
    assert visible.count() == sum(1 for _, s in rows if s == "critical")
    assert set(severities()) == {RANK["critical"]}
    page.fill("#q", target.key[0])
    assert visible.count() == sum(1 for h, s in rows if h == target.key[0] and s == "critical")
    page.select_option("#sev", "")
    page.fill("#q", "")
    assert visible.count() == len(rows)
