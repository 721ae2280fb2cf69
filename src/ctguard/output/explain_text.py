"""``explain``: one catalogue entry as plain text, for terminals and tickets."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

from ctguard.catalogue import Entry, Pitfall


def _section(title: str, body: str) -> list[str]:
    return [title, *textwrap.indent(textwrap.dedent(body).strip("\n"), "  ").splitlines(), ""]


def render_explain(entry: Entry) -> str:
    lines = [f"{entry.id}: {entry.title}  ({entry.family})", ""]
    lines += _section("Cause", entry.cause)
    lines += _section("Prove it on your host", entry.proof)
    lines += _section("Fix", entry.fix)
    lines += _section("References", "\n".join(f"- {ref}" for ref in entry.refs))
    return "\n".join(line.rstrip() for line in lines).rstrip("\n") + "\n"


def render_index(pitfalls: Iterable[Pitfall]) -> str:
    rows = [f"{p.id}  {p.family:<13} {p.title}" for p in pitfalls]
    return "\n".join(rows) + "\n\nctguard explain ID prints the whole story.\n"
