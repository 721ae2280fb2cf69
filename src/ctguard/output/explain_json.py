"""``explain --format json`` (``ctguard.explain/1``): the index rows, or one story."""

from __future__ import annotations

import json
from typing import Any

from ctguard.schemas import EXPLAIN
from ctguard.usecases.explain import ExplainReport


def render_explain_json(report: ExplainReport) -> str:
    document: dict[str, Any] = {"schema": EXPLAIN}
    if report.story is None:
        document["index"] = [
            {"id": p.id, "family": p.family, "title": p.title} for p in report.index
        ]
    else:
        story = report.story
        document["story"] = {
            "id": story.id,
            "title": story.title,
            "family": story.family,
            "cause": story.cause,
            "proof": story.proof,
            "fix": story.fix,
            "refs": list(story.refs),
        }
    return json.dumps(document, indent=2) + "\n"
