"""tuned keeps the hash size and the max itself (issue 16 item 5): on a host whose active
profile sets ``[net] nf_conntrack_hashsize``, ``plan`` writes no modprobe option beside it,
and a size it wants differently is a note pointing to a profile under /etc/tuned."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctguard.host.target import Target
from ctguard.remediation.plan import PlanOptions
from ctguard.usecases.plan import Planning, plan

ROOTS = Path(__file__).parent.parent / "roots" / "doctor"
TUNED_ROOTS = ("ct303-near-tuned-openshift", "ct306-tuned-openshift-modprobe-clash")


@pytest.mark.parametrize("scenario", TUNED_ROOTS)
def test_no_duplicate_hashsize_option(scenario: str) -> None:
    made = plan(Target(str(ROOTS / scenario)), Planning()).plan
    assert not [f.path for f in made.files if "/modprobe.d/" in f.path]
    assert not [f.path for f in made.files if b"nf_conntrack_max" in f.after]
    assert not made.sysctls  # tuned runs 1048576 / 1048576, which fits this host


@pytest.mark.parametrize("scenario", TUNED_ROOTS)
def test_another_size_goes_to_a_custom_profile(scenario: str) -> None:
    options = PlanOptions(target_max=2097152, force=True)
    made = plan(Target(str(ROOTS / scenario)), Planning(sizing=options)).plan
    assert not [f.path for f in made.files if "/modprobe.d/" in f.path]
    notes = "\n".join(n.text for n in made.notes)
    assert "[net] nf_conntrack_hashsize=" in notes
    assert "/etc/tuned/openshift-node-conntrack/tuned.conf" in notes
    assert "do not edit it" in notes  # the stock file under /usr/lib/tuned is the package's
