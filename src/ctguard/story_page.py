r"""One catalogue story as a Markdown page (``ctguard/stories/CT101.md``), and its parser.

A page is one heading and four sections, in this order and nothing else::

    # CT101: conntrack table usage is high
    ## Cause
    ## Prove it on your host     one fenced code block: the commands, as ``explain`` prints them
    ## Fix
    ## References                a bullet list, one reference per item

The story is plain text (what ``explain`` prints); the page writes it in Markdown, so that
a Markdown viewer shows the same words. Three rules turn the page back into the story:

- Blank lines only separate Markdown blocks (paragraphs, lists, code blocks): the story
  text has none.
- In Cause and Fix, a fenced code block stands for lines indented by two spaces (a fix's
  commands and file lines), so that Markdown keeps them one per line.
- Outside code blocks a backslash before punctuation is Markdown's escape and is dropped:
  ``\<N>`` would otherwise be read as an HTML tag and vanish, ``\*`` as emphasis.

A page that breaks this shape is a bug in the package, caught by tests/test_catalogue.py
before a release; the parser still refuses it rather than print half a story.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ctguard.errors import ParseError

SECTIONS = ("Cause", "Prove it on your host", "Fix", "References")
FENCE = "```"
_HEADING = re.compile(r"# (CT[0-9]{3}): (\S.*)")
_SECTION = re.compile(r"## (.*)")
# CommonMark: a backslash escapes any ASCII punctuation character
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_CODE_INDENT = "  "


@dataclass(frozen=True)
class Story:
    id: str
    title: str
    cause: str
    proof: str  # the commands, one per line with "# what to look for"
    fix: str
    refs: tuple[str, ...]


def parse_story(text: str) -> Story:
    r"""Parse one story page; ``ParseError`` names the section that is wrong and why.

    >>> story = parse_story(
    ...     "# CT105: hash chains are long (too few buckets)\n"
    ...     "\n"
    ...     "## Cause\n"
    ...     "\n"
    ...     "Entries live in a hash table of nf_conntrack_buckets slots.\n"
    ...     "\n"
    ...     "## Prove it on your host\n"
    ...     "\n"
    ...     "```sh\n"
    ...     "sysctl -n net.netfilter.nf_conntrack_buckets  # max/buckets > 4 is CT105\n"
    ...     "```\n"
    ...     "\n"
    ...     "## Fix\n"
    ...     "\n"
    ...     "short stall) and costs 8 B per bucket:\n"
    ...     "\n"
    ...     "```\n"
    ...     "sysctl -w net.netfilter.nf_conntrack_buckets=<N>\n"
    ...     "```\n"
    ...     "\n"
    ...     "(where that key is read-only: echo \\<N> > /sys/module/nf_conntrack/...)\n"
    ...     "\n"
    ...     "## References\n"
    ...     "\n"
    ...     "- kernel commit d7e7747ac5c2 (refuse insertion if chain has grown too large)\n"
    ... )
    >>> story.id, story.title
    ('CT105', 'hash chains are long (too few buckets)')
    >>> print(story.fix)
    short stall) and costs 8 B per bucket:
      sysctl -w net.netfilter.nf_conntrack_buckets=<N>
    (where that key is read-only: echo <N> > /sys/module/nf_conntrack/...)
    >>> story.refs
    ('kernel commit d7e7747ac5c2 (refuse insertion if chain has grown too large)',)
    """
    lines = text.splitlines()
    heading = _HEADING.fullmatch(lines[0]) if lines else None
    if heading is None:
        raise ParseError("story page: the first line is not '# CTnnn: title'")
    sections = _sections(lines[1:])
    return Story(
        id=heading[1],
        title=_unescape(heading[2]),
        cause=_prose(sections["Cause"], "Cause"),
        proof=_code(sections["Prove it on your host"], "Prove it on your host"),
        fix=_prose(sections["Fix"], "Fix"),
        refs=_bullets(sections["References"], "References"),
    )


def _sections(lines: list[str]) -> dict[str, list[str]]:
    """The body lines under each ``## `` heading; the headings must be SECTIONS, in order."""
    names: list[str] = []
    bodies: dict[str, list[str]] = {}
    fenced = False
    for line in lines:
        if not fenced and line.startswith("#"):
            section = _SECTION.fullmatch(line)
            if section is None:
                raise ParseError(f"story page: a heading other than '## Section': {line!r}")
            names.append(section[1])
            bodies[section[1]] = []
            continue
        fenced = _inside_code(line, fenced)
        if names:
            bodies[names[-1]].append(line)
        elif line.strip():
            raise ParseError(f"story page: text before the first section: {line!r}")
    if fenced:
        raise ParseError(f"story page: {names[-1]}: a code block is not closed")
    if tuple(names) != SECTIONS:
        raise ParseError(f"story page: sections are {names}, expected {list(SECTIONS)}")
    return bodies


def _inside_code(line: str, fenced: bool) -> bool:
    """Whether the line after ``line`` is inside a code block (a closing fence is bare)."""
    if fenced:
        return line.rstrip() != FENCE
    return line.startswith(FENCE)


def _prose(lines: list[str], section: str) -> str:
    """Markdown text back to story text: blank lines dropped, code blocks indented by two
    spaces, escapes undone outside code."""
    out: list[str] = []
    fenced = False
    for line in lines:
        was_fenced, fenced = fenced, _inside_code(line, fenced)
        if was_fenced and fenced:
            out.append(_CODE_INDENT + line)
        elif not (was_fenced or fenced) and line.strip():
            out.append(_unescape(line))
    if fenced:
        raise ParseError(f"story page: {section}: a code block is not closed")
    if not out:
        raise ParseError(f"story page: {section} is empty")
    return "\n".join(out)


def _code(lines: list[str], section: str) -> str:
    """The lines of the section's one fenced code block, verbatim; nothing else may be there."""
    body = _without_blank_edges(lines)
    if len(body) < 2 or not body[0].startswith(FENCE) or body[-1].rstrip() != FENCE:
        raise ParseError(f"story page: {section} is not one fenced code block")
    inner = body[1:-1]
    if any(line.rstrip() == FENCE for line in inner):
        raise ParseError(f"story page: {section} has text outside its one code block")
    if not any(line.strip() for line in inner):
        raise ParseError(f"story page: {section} is empty")
    return "\n".join(inner)


def _bullets(lines: list[str], section: str) -> tuple[str, ...]:
    items: list[str] = []
    for line in lines:
        if not line.strip():
            continue
        if not line.startswith("- ") or not line[2:].strip():
            raise ParseError(f"story page: {section}: not a '- item' line: {line!r}")
        items.append(_unescape(line[2:]))
    if not items:
        raise ParseError(f"story page: {section} is empty")
    return tuple(items)


def _without_blank_edges(lines: list[str]) -> list[str]:
    filled = [i for i, line in enumerate(lines) if line.strip()]
    return lines[filled[0] : filled[-1] + 1] if filled else []


def _unescape(line: str) -> str:
    return _ESCAPE.sub(r"\1", line)
