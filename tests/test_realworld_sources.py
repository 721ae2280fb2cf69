"""Every real-world input keeps its provenance: each file under tests/realworld has a row in
tests/realworld/SOURCES.md (repository, path, commit), and each row names a file that is here."""

from __future__ import annotations

import re
from pathlib import Path

REALWORLD = Path(__file__).parent / "realworld"


def rows() -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}
    for line in (REALWORLD / "SOURCES.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) >= 4:
            table[cells[0].strip("`")] = cells
    return table


def test_every_file_has_its_provenance() -> None:
    files = {
        str(p.relative_to(REALWORLD))
        for p in REALWORLD.rglob("*")
        if p.is_file() and p.name != "SOURCES.md"
    }
    listed = rows()
    assert files, "no real-world inputs"
    assert sorted(files - listed.keys()) == [], "files without a SOURCES.md row"
    assert sorted(listed.keys() - files) == [], "rows naming files that are not here"
    for here, (_, repository, path, commit, *_) in listed.items():
        assert "/" in repository and path and re.fullmatch(r"`?[0-9a-f]{7,40}`?", commit), here
