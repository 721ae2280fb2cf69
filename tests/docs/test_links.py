"""The README, docs/*.md and the story pages stand alone: they link only to files of this
repository (and to headings that exist), name no URL and no path outside the checkout, and
the README stays short enough to read at 3 a.m."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [
    REPO / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    *sorted((REPO / "src" / "ctguard" / "stories").glob("*.md")),
]
README_MAX_LINES = 260
_LINK = re.compile(r"\]\(([^)\s]*)\)")
# where the project's notes live outside the checkout, named even without a link
_OUTSIDE = re.compile(r"\.\./shared\b|/work/|shared folder")


def _names(doc: Path) -> str:
    return str(doc.relative_to(REPO))


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", markdown, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_there_are_docs_to_check() -> None:
    assert len(DOCS) > 20
    assert REPO / "docs" / "design.md" in DOCS


@pytest.mark.parametrize("doc", DOCS, ids=_names)
def test_links_point_at_files_and_headings_inside_the_repository(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    assert "://" not in text, f"{_names(doc)} names a URL"
    for target in _LINK.findall(text):
        path_part, _, anchor = target.partition("#")
        path = (doc.parent / path_part).resolve()
        assert path.is_relative_to(REPO) and path.exists(), f"{_names(doc)}: ({target})"
        if anchor and path.suffix == ".md":
            assert anchor in _anchors(path.read_text(encoding="utf-8")), (
                f"{_names(doc)}: ({target}) names no heading of {path.name}"
            )


@pytest.mark.parametrize("doc", DOCS, ids=_names)
def test_no_path_outside_the_repository_is_named(doc: Path) -> None:
    for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        assert not _OUTSIDE.search(line), f"{_names(doc)}:{number}: {line.strip()}"


def test_readme_is_short() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/"


def test_readme_links_every_doc_page() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    linked = {target.partition("#")[0] for target in _LINK.findall(readme)}
    for page in sorted((REPO / "docs").glob("*.md")):
        assert f"docs/{page.name}" in linked, f"README.md does not link docs/{page.name}"
