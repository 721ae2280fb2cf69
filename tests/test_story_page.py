"""story_page: a page breaking the agreed shape is refused, naming what is wrong.

Each case breaks a real page (CT105: prose, list-free fix with code blocks, an escape)."""

from __future__ import annotations

import pytest

from ctguard.catalogue import load_story, story_page
from ctguard.errors import ParseError
from ctguard.story_page import parse_story

PAGE = story_page("CT105")
FIX_BLOCK = "```\nsysctl -w net.netfilter.nf_conntrack_buckets=<N>\n```\n"


def _without(section: str) -> str:
    """PAGE without one ``## `` section (its heading and body)."""
    start = PAGE.index(f"## {section}\n")
    end = PAGE.find("\n## ", start + 1)
    return PAGE[:start] + (PAGE[end + 1 :] if end >= 0 else "")


def test_the_page_itself_parses() -> None:
    story = parse_story(PAGE)
    assert story.id == "CT105"
    assert "\n  sysctl -w net.netfilter.nf_conntrack_buckets=<N>\n" in story.fix
    assert "(where that key is read-only: echo <N> > /sys/module" in story.fix
    assert load_story("CT105").fix == story.fix


def test_code_and_blank_lines_come_back_as_the_story_text() -> None:
    story = parse_story(PAGE)
    for text in (story.cause, story.proof, story.fix):
        assert "\n\n" not in text
        assert "```" not in text
    assert "\\" not in story.fix


BROKEN = {
    "no heading": (PAGE.replace("# CT105: ", "CT105: ", 1), "first line"),
    "heading without ID": (PAGE.replace("# CT105: ", "# ", 1), "first line"),
    "section missing": (_without("Fix"), "sections are"),
    "last section missing": (_without("References"), "sections are"),
    "sections out of order": (
        PAGE.replace("## Cause\n", "## Fix\n", 1).replace("## Fix\n\nRaise", "## Cause\n\nRaise"),
        "sections are",
    ),
    "unknown section": (PAGE.replace("## References", "## See also"), "sections are"),
    "deeper heading": (PAGE.replace("## Fix\n", "## Fix\n\n### Now\n"), "a heading other"),
    "text before the first section": (PAGE.replace("\n## Cause", "intro\n\n## Cause"), "before"),
    "empty cause": (
        PAGE[: PAGE.index("## Cause")] + "## Cause\n\n" + PAGE[PAGE.index("## Prove") :],
        "Cause is empty",
    ),
    "proof with prose": (
        PAGE.replace("## Prove it on your host\n\n", "## Prove it on your host\n\nRun:\n\n"),
        "not one fenced code block",
    ),
    "proof of two blocks": (
        PAGE.replace("  # max\n", "  # max\n```\n\n```sh\n"),
        "outside its one code block",
    ),
    "proof not fenced": (PAGE.replace("```sh\n", "", 1), "a code block is not closed"),
    "fix block not closed": (PAGE.replace(FIX_BLOCK, FIX_BLOCK[:-4]), "not closed"),
    "reference not a bullet": (
        PAGE.replace("- kernel commit", "kernel commit"),
        "not a '- item' line",
    ),
    "empty reference": (PAGE + "- \n", "not a '- item' line"),
    "no references": (PAGE[: PAGE.index("## References")] + "## References\n", "is empty"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_page_is_refused(case: str) -> None:
    page, message = BROKEN[case]
    assert page != PAGE
    with pytest.raises(ParseError, match=message):
        parse_story(page)
