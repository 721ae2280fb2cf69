"""The catalogue: every docs/design.md §4 ID has its whole story, one Markdown page each,
that fits a terminal, shows the same words in a Markdown viewer, and is linked from
docs/rules.md."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import click
import pytest
from markdown_it import MarkdownIt

from ctguard.catalogue import CATALOGUE, STORIES, Entry, load_story, story_page
from ctguard.story_page import SECTIONS, parse_story

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


REPO = Path(__file__).resolve().parent.parent


def _entries() -> list[Entry]:
    return [load_story(entry_id) for entry_id in DESIGN_IDS]


def test_catalogue_holds_exactly_the_design_ids() -> None:
    assert sorted(CATALOGUE) == sorted(DESIGN_IDS)
    assert len(set(DESIGN_IDS)) == 22


@pytest.mark.parametrize("entry_id", DESIGN_IDS)
def test_entry_is_complete(entry_id: str) -> None:
    entry = load_story(entry_id)
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
    entry = load_story(entry_id)
    assert 4 <= len(entry.cause.splitlines()) <= 10
    proof = entry.proof.splitlines()
    assert 2 <= len(proof) <= 6
    # one command per line, each saying what to look for
    assert all("  # " in line and not line.startswith("#") for line in proof)
    assert 1 <= len(entry.refs) <= 4


@pytest.mark.parametrize("entry_id", DESIGN_IDS)
def test_no_line_longer_than_100(entry_id: str) -> None:
    entry = load_story(entry_id)
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


# -- the pages ------------------------------------------------------------------------------
def test_every_id_has_a_page_and_every_page_an_id() -> None:
    shipped = {item.name for item in (resources.files("ctguard") / STORIES).iterdir()}
    assert shipped == {f"{entry_id}.md" for entry_id in CATALOGUE}


@pytest.mark.parametrize("entry_id", DESIGN_IDS)
def test_page_parses_with_every_section_filled(entry_id: str) -> None:
    story = parse_story(story_page(entry_id))
    assert story.id == entry_id
    assert story.refs
    for text in (story.cause, story.proof, story.fix, *story.refs):
        assert text.strip()


@pytest.mark.parametrize("entry_id", DESIGN_IDS)
def test_page_heading_has_the_catalogue_title(entry_id: str) -> None:
    assert parse_story(story_page(entry_id)).title == CATALOGUE[entry_id].title


def _shown(markdown: str) -> str:
    """What a Markdown viewer shows of a page: its text and code, without whitespace and
    backticks. Raw HTML (``<N>`` unescaped) and emphasis markers are not shown."""
    parts: list[str] = []
    for token in MarkdownIt("commonmark").parse(markdown):
        if token.type in ("fence", "code_block"):
            parts.append(token.content)
        parts += [c.content for c in token.children or () if c.type in ("text", "code_inline")]
    return re.sub(r"[\s`]", "", "".join(parts))


def _printed(entry: Entry) -> str:
    """What ``explain`` prints of an entry, as ``_shown`` sees it (list markers dropped)."""
    cause, proof, fix = SECTIONS[:3]
    parts = [f"{entry.id}: {entry.title}", cause, entry.cause, proof, entry.proof]
    parts += [fix, entry.fix, SECTIONS[3], *entry.refs]
    return re.sub(r"[\s`]", "", re.sub(r"(?m)^\s*- ", "", "\n".join(parts)))


@pytest.mark.parametrize("entry_id", DESIGN_IDS)
def test_page_shows_in_a_markdown_viewer_what_explain_prints(entry_id: str) -> None:
    assert _shown(story_page(entry_id)) == _printed(load_story(entry_id))


# -- docs/rules.md --------------------------------------------------------------------------
def test_docs_rules_links_every_page_in_catalogue_order() -> None:
    text = (REPO / "docs" / "rules.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| [CT")]
    assert rows == [
        f"| [{p.id}](../src/ctguard/{STORIES}/{p.id}.md) | {p.family} | {p.title} |"
        for p in CATALOGUE.values()
    ]
