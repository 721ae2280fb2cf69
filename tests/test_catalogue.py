"""The catalogue: every design §4 ID has its whole story, and it fits a terminal."""

from __future__ import annotations

import re

import click
import pytest

from ctguard.catalogue import CATALOGUE, Entry

# Design §4, listed here so the test does not depend on files outside the repository.
DESIGN_IDS = (
    "CT101",
    "CT102",
    "CT103",
    "CT104",
    "CT105",
    "CT106",
    "CT201",
    "CT301",
    "CT302",
    "CT303",
    "CT304",
    "CT305",
    "CT306",
    "CT307",
    "CT401",
    "CT402",
    "CT501",
    "CT502",
    "CT503",
    "CT504",
    "CT505",
    "CT601",
)
FAMILIES = {"usage", "memory", "persistence", "timeouts", "bypass", "observability"}
MAX_LINE = 100


def _entries() -> list[Entry]:
    return [CATALOGUE[entry_id] for entry_id in DESIGN_IDS]


def test_catalogue_holds_exactly_the_design_ids() -> None:
    assert sorted(CATALOGUE) == sorted(DESIGN_IDS)
    assert len(set(DESIGN_IDS)) == 22


@pytest.mark.parametrize("entry_id", DESIGN_IDS)
def test_entry_is_complete(entry_id: str) -> None:
    entry = CATALOGUE[entry_id]
    assert re.fullmatch(r"CT\d{3}", entry.id)
    assert entry.id == entry_id
    assert entry.title.strip()
    assert entry.family in FAMILIES
    assert entry.cause.strip()
    assert entry.proof.strip()
    assert entry.fix.strip()
    assert entry.refs
    assert all(ref.strip() for ref in entry.refs)


@pytest.mark.parametrize("entry_id", DESIGN_IDS)
def test_story_has_the_agreed_shape(entry_id: str) -> None:
    entry = CATALOGUE[entry_id]
    assert 4 <= len(entry.cause.splitlines()) <= 10
    proof = entry.proof.splitlines()
    assert 2 <= len(proof) <= 6
    # one command per line, each saying what to look for
    assert all("  # " in line and not line.startswith("#") for line in proof)
    assert 1 <= len(entry.refs) <= 4


@pytest.mark.parametrize("entry_id", DESIGN_IDS)
def test_no_line_longer_than_100(entry_id: str) -> None:
    entry = CATALOGUE[entry_id]
    for text in (entry.title, entry.cause, entry.proof, entry.fix, *entry.refs):
        for line in text.splitlines():
            assert len(line) <= MAX_LINE, f"{entry_id}: {line!r}"


def test_text_has_no_stray_indentation_or_blank_edges() -> None:
    for entry in _entries():
        for text in (entry.cause, entry.proof, entry.fix):
            assert text == text.strip("\n")
            assert not text[0].isspace()
            assert all(line == line.rstrip() for line in text.splitlines())


def test_cross_references_name_catalogue_ids() -> None:
    for entry in _entries():
        for text in (entry.cause, entry.fix):
            for ref in re.findall(r"CT\d{3}", text):
                assert ref in CATALOGUE, f"{entry.id} mentions unknown {ref}"


def _available_commands() -> set[str]:
    from ctguard.cli import cli

    return set(cli.list_commands(click.Context(cli)))


# `ctguard WORD`, also across a line break; "coming: " (and a backtick) may precede it.
_MENTION = re.compile(r"\bctguard\s+([a-z][a-z0-9-]*)")
_COMING = ("coming: ", "coming: `")


def test_stories_name_only_commands_that_exist_or_say_coming() -> None:
    available = _available_commands()
    assert {"doctor", "explain", "status", "snapshot"} <= available
    for entry in _entries():
        for text in (entry.title, entry.cause, entry.proof, entry.fix, *entry.refs):
            for match in _MENTION.finditer(text):
                word = match.group(1)
                before = text[: match.start()]
                assert word in available or before.endswith(_COMING), (
                    f"{entry.id}: `ctguard {word}` is not a command yet;"
                    f" write it as (coming: `ctguard {word}` ...)"
                )
