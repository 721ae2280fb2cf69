"""The doctor's rules: one small function per catalogue ID, registered with ``@rule``.

A rule takes ``Facts`` and ``Thresholds`` and returns an ``Outcome``: ``found`` (with
evidence and the exact fix), ``passed`` or ``skipped`` (naming the input that was missing;
a rule never guesses). ``run_rules`` wraps each in a ``Finding`` with its catalogue title.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ctguard.catalogue import CATALOGUE
from ctguard.errors import CtguardError
from ctguard.facts import Facts
from ctguard.findings import Finding, Severity, Status
from ctguard.model.thresholds import Thresholds


@dataclass(frozen=True)
class Outcome:
    status: Status
    severity: Severity = Severity.OK
    evidence: tuple[str, ...] = ()
    fix: str = ""
    reason: str = ""


def found(severity: Severity, evidence: Iterable[str], fix: str) -> Outcome:
    return Outcome(Status.FOUND, severity, tuple(evidence), fix)


def passed(reason: str, evidence: Iterable[str] = ()) -> Outcome:
    return Outcome(Status.PASSED, Severity.OK, tuple(evidence), reason=reason)


def skipped(reason: str) -> Outcome:
    return Outcome(Status.SKIPPED, Severity.OK, reason=reason)


RuleFunc = Callable[[Facts, Thresholds], Outcome]
RULES: dict[str, RuleFunc] = {}


def rule(rule_id: str) -> Callable[[RuleFunc], RuleFunc]:
    if rule_id not in CATALOGUE:
        raise ValueError(f"{rule_id} is not in the catalogue")

    def register(func: RuleFunc) -> RuleFunc:
        RULES[rule_id] = func
        return func

    return register


def _load_families() -> None:
    # imported for their @rule registrations
    from ctguard.rules import (  # noqa: F401
        bypass,
        composition,
        memory,
        observability,
        persistence,
        timeouts,
        usage,
    )


def selected(patterns: Iterable[str]) -> list[str]:
    """Rule IDs matching any ``--only`` pattern (shell style, ``CT3*``), in ID order."""
    _load_families()
    wanted = [p.upper() for p in patterns]
    ids = sorted(RULES)
    return [i for i in ids if not wanted or any(fnmatch.fnmatchcase(i, p) for p in wanted)]


def run_rules(
    facts: Facts,
    thresholds: Thresholds | None = None,
    only: Iterable[str] = (),
    debug: bool = False,
) -> list[Finding]:
    """Every selected rule, in ID order. One rule failing never hides the others' results:
    it is reported as skipped with the error (``debug`` raises it instead)."""
    limits = thresholds or Thresholds()
    results: list[Finding] = []
    for rule_id in selected(only):
        try:
            outcome = RULES[rule_id](facts, limits)
        except CtguardError as exc:
            outcome = skipped(f"input unusable: {exc}")
        except Exception as exc:
            if debug:
                raise
            outcome = skipped(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug)")
        title = CATALOGUE[rule_id].title
        results.append(
            Finding(
                rule_id,
                outcome.status,
                outcome.severity,
                title,
                outcome.evidence,
                outcome.fix,
                outcome.reason,
            )
        )
    return results
