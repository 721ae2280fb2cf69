"""The pitfall catalogue (docs/design.md §4): stable IDs, their titles and families, and the long
story ``explain`` prints, one Markdown page per ID in ``ctguard/stories/`` (package data).

Each story says what goes wrong (Cause), how to prove it on the reader's host with
read-only commands (Prove it on your host: one command per line with ``# what to look
for``), the exact manual fix, complete on its own (Fix), and where the facts come from
(References). A ctguard command that does not exist yet is named only as "(coming:
`ctguard exporter` ...)". Kernel facts were checked against the kernel sources named in the
references. ``story_page`` says how a page is written; docs/rules.md links every page.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ctguard.errors import ParseError
from ctguard.findings import Severity
from ctguard.story_page import parse_story

STORIES = "stories"  # the pages' directory inside the ctguard package


@dataclass(frozen=True)
class Pitfall:
    id: str
    title: str
    family: str  # usage, memory, persistence, timeouts, bypass, observability


@dataclass(frozen=True)
class Entry:
    """One pitfall with its whole story: what ``explain`` prints."""

    id: str
    title: str
    family: str
    cause: str
    proof: str  # how to prove it on your host (commands)
    fix: str
    refs: tuple[str, ...]


_PITFALLS = (
    Pitfall("CT101", "conntrack table usage is high", "usage"),
    Pitfall("CT102", "packets dropped because the table was full", "usage"),
    Pitfall("CT103", "entries early-dropped to make room", "usage"),
    Pitfall("CT104", "conntrack insert failures (clashes)", "usage"),
    Pitfall("CT105", "hash chains are long (too few buckets)", "usage"),
    Pitfall("CT106", "table is unlimited (nf_conntrack_max = 0)", "usage"),
    Pitfall("CT201", "nf_conntrack_max is unsafe for this machine's memory", "memory"),
    Pitfall("CT301", "runtime value differs from the configured one", "persistence"),
    Pitfall("CT302", "settings are applied before the conntrack module loads", "persistence"),
    Pitfall("CT303", "hash table size is not persistent", "persistence"),
    Pitfall("CT304", "firewall service restart resets conntrack settings", "persistence"),
    Pitfall("CT305", "firewall stop can no longer relieve a full table", "persistence"),
    Pitfall("CT306", "another agent owns these conntrack settings", "persistence"),
    Pitfall("CT307", "namespaces run with different conntrack timeouts", "timeouts"),
    Pitfall("CT401", "TCP established timeout is very long", "timeouts"),
    Pitfall("CT402", "table composition is unhealthy", "timeouts"),
    Pitfall("CT501", "NOTRACK without an accept for untracked packets", "bypass"),
    Pitfall("CT502", "NOTRACK on traffic that is NATed", "bypass"),
    Pitfall("CT503", "blacklist does not keep nf_conntrack out", "bypass"),
    Pitfall("CT504", "conntrack is loaded but no rule needs it", "bypass"),
    Pitfall("CT505", "one port dominates the table", "bypass"),
    Pitfall("CT601", "conntrack counters are not in procfs", "observability"),
)

CATALOGUE: dict[str, Pitfall] = {pitfall.id: pitfall for pitfall in _PITFALLS}


@dataclass(frozen=True)
class FleetQuestion:
    """A question a fleet owner asks of every host, answered by catalogue findings."""

    key: str  # stable, for JSON and CSV
    label: str  # how a person reads it: "hosts dropping packets now"
    ids: tuple[str, ...]  # the findings that answer yes
    least: Severity  # found at this severity or worse


# Which findings answer the three questions of a fleet (``ctguard report``), and why these:
# - dropping: CT102 critical is a drop counted since nf_conntrack loaded, or a 'table full'
#   line in this boot's log; CT102 warning is an older log file only (it happened, not
#   now). CT103 is not here: early drop evicts an unassured entry and the new packet is
#   kept (stories/CT103.md), packets are dropped only once that fails (CT102).
# - not persistent: the values running now are lost at the next module load, boot or
#   firewall restart: CT301 (the files say otherwise), CT302 (applied before the module
#   loads), CT303 (hashsize only set at runtime), CT304 (the RHEL iptables service
#   unloads the module). Not CT305 (the settings survive; the emergency stop no longer
#   helps) nor CT306 (another agent re-applies its own values: they survive, edits do not).
# - RAM: CT201 critical: a full table takes memory_critical % of RAM or more than
#   MemAvailable; its warning is a costly max the RAM still holds.
FLEET_QUESTIONS = (
    FleetQuestion("dropping", "dropping packets now", ("CT102",), Severity.CRITICAL),
    FleetQuestion(
        "not_persistent",
        "settings will not survive a reload or reboot",
        ("CT301", "CT302", "CT303", "CT304"),
        Severity.INFO,
    ),
    FleetQuestion("ram", "max the RAM cannot hold", ("CT201",), Severity.CRITICAL),
)


def fleet_answers(finding_id: str, severity: Severity) -> tuple[str, ...]:
    """The keys of the fleet questions a finding found at ``severity`` answers yes to.

    >>> fleet_answers("CT102", Severity.CRITICAL)
    ('dropping',)
    >>> fleet_answers("CT102", Severity.WARNING)
    ()
    >>> fleet_answers("CT304", Severity.WARNING)
    ('not_persistent',)
    >>> fleet_answers("CT103", Severity.WARNING)
    ()
    """
    return tuple(
        q.key for q in FLEET_QUESTIONS if finding_id in q.ids and severity.rank >= q.least.rank
    )


def story_page(pitfall_id: str) -> str:
    """The Markdown page of one catalogue ID, as the package ships it."""
    # imported here: importlib.resources pulls in tempfile and random (about 3 ms), which
    # `doctor`, importing the catalogue only for its titles, never needs
    from importlib import resources

    page = resources.files("ctguard") / STORIES / f"{pitfall_id}.md"
    return page.read_text(encoding="utf-8")


@functools.cache
def load_story(pitfall_id: str) -> Entry:
    """The whole story of one catalogue ID, read from its page once per process.

    >>> load_story("CT304").refs[0]
    'RHEL iptables-config comments: IPTABLES_MODULES_UNLOAD, IPTABLES_SYSCTL_LOAD_LIST'
    """
    pitfall = CATALOGUE[pitfall_id]
    story = parse_story(story_page(pitfall_id))
    if (story.id, story.title) != (pitfall.id, pitfall.title):
        raise ParseError(
            f"{STORIES}/{pitfall_id}.md is headed {story.id}: {story.title!r},"
            f" the catalogue says {pitfall.id}: {pitfall.title!r}"
        )
    return Entry(
        pitfall.id, pitfall.title, pitfall.family, story.cause, story.proof, story.fix, story.refs
    )
