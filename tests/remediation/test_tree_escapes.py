"""Issue 14, items 2 and 3: no link, whether in the tree from the start, swapped in at any
step of an apply or a rollback, or raced in by a thread, and no hard link, makes a write
land outside the ``--root`` tree; the state directory of a tree is resolved inside it.

Every attack below is made against a tree whose every file also exists, with the same
names, in a directory beside it ("outside"): a write that followed the link would succeed
there, so the only thing that keeps outside unchanged is ctguard refusing to follow."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import threading
import time
from pathlib import Path

import pytest

from ctguard.errors import CtguardError
from ctguard.remediation.apply import Tree, TreeRuntime, apply_changes, rollback
from ctguard.remediation.journal import list_entries
from ctguard.remediation.state_dir import StateDir
from remediation.conftest import (
    apply_tree,
    make_tree,
    plan_files,
    roll_back_tree,
    tree_state,
    tree_sysctls,
)

# What an attacker swaps for a link: every directory an apply or its rollback walks.
TARGETS = (
    "etc",
    "etc/sysctl.d",
    "etc/modprobe.d",
    "etc/udev",
    "var/lib/ctguard",
    "var/lib/ctguard/journal",
    "proc/sys/net/netfilter",
    "sys/module/nf_conntrack",
)


def swap_for_link(root: Path, rel: str, outside: Path) -> None:
    """Replace ``root/rel`` with an absolute link to the same path outside."""
    path = root / rel
    if path.is_symlink() or not path.parent.is_dir() or path.parent.is_symlink():
        return
    if path.exists():
        path.rename(path.with_name(path.name + ".moved"))
    path.symlink_to(outside / rel)


def steps_of(base: Path) -> list[str]:
    root, _ = make_tree(base)
    steps: list[str] = []
    apply_tree(root, steps.append)
    return steps


def test_a_good_apply_into_the_tree_changes_only_the_tree(tmp_path):
    root, outside = make_tree(tmp_path)
    before = tree_state(outside)
    apply_tree(root)
    assert (root / "etc/udev/rules.d/90-ctguard.rules").exists()
    assert (root / "var/lib/ctguard/journal").is_dir()
    # /var and /var/lib made in an image tree stay usable; only ctguard's own are private
    assert (root / "var/lib").stat().st_mode & 0o777 == 0o755
    assert (root / "var/lib/ctguard").stat().st_mode & 0o777 == 0o700
    assert (root / "sys/module/nf_conntrack/parameters/hashsize").read_text() == "65536\n"
    assert (root / "proc/sys/net/netfilter/nf_conntrack_buckets").read_text() == "65536\n"
    roll_back_tree(root)
    assert tree_state(outside) == before


@pytest.mark.parametrize("target", TARGETS)
def test_a_link_swapped_in_at_any_step_never_leads_a_write_out(tmp_path, target):
    steps = steps_of(tmp_path / "count")
    assert len(steps) > 40
    for k, name in enumerate(steps):
        base = tmp_path / str(k)
        root, outside = make_tree(base)
        before = tree_state(outside)

        def hook(step: str, k: int = k, root: Path = root, outside: Path = outside) -> None:
            if step == steps[k]:
                swap_for_link(root, target, outside)

        # refused, or failed and undone: both fine, as long as outside is untouched
        with contextlib.suppress(CtguardError):
            apply_tree(root, hook)
        assert tree_state(outside) == before, (target, k, name)
        with contextlib.suppress(CtguardError):
            roll_back_tree(root)
        assert tree_state(outside) == before, (target, k, name, "rollback")
        shutil.rmtree(base)


@pytest.mark.parametrize("target", TARGETS)
def test_links_already_in_the_tree_resolve_inside_it(tmp_path, target):
    """A link present from the start, absolute or climbing with '..', is followed as the
    audited host would follow it: inside the tree."""
    for kind in ("absolute", "relative"):
        base = tmp_path / kind
        root, outside = make_tree(base)
        before = tree_state(outside)
        path = root / target
        if path.exists():
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        climb = "../" * (target.count("/") + 8)
        path.symlink_to(
            outside / target if kind == "absolute" else f"{climb}{outside.relative_to('/')}"
        )
        try:
            apply_tree(root)
            roll_back_tree(root)
        except CtguardError:
            pass
        assert tree_state(outside) == before, (target, kind)


def test_a_racing_thread_never_gets_a_write_out(tmp_path):
    """The issue's attack, as a racer would make it: a thread swaps etc/ and the state
    directory for links and back, as fast as it can, during 20 applies and rollbacks."""
    outcomes: list[str] = []
    for attempt in range(20):
        base = tmp_path / str(attempt)
        root, outside = make_tree(base)
        (root / "var/lib/ctguard").mkdir()
        before = tree_state(outside)
        stop = threading.Event()

        def race(
            root: Path = root,
            outside: Path = outside,
            stop: threading.Event = stop,
            seed: int = attempt,
        ) -> None:
            rng = random.Random(seed)
            deadline = time.monotonic() + 10
            while not stop.is_set() and time.monotonic() < deadline:
                time.sleep(rng.uniform(0, 0.004))  # links come and go: some runs finish
                for rel in ("etc", "var/lib/ctguard"):
                    real, moved = root / rel, root / f"{rel}.real"
                    try:
                        real.rename(moved)
                        real.symlink_to(outside / rel)
                        time.sleep(0.0005)
                        real.unlink()
                        moved.rename(real)
                    except OSError:
                        pass

        racer = threading.Thread(target=race)
        racer.start()
        try:
            for action in (apply_tree, roll_back_tree):
                try:
                    action(root)
                    outcomes.append("ok")
                except CtguardError:
                    outcomes.append("refused")
        finally:
            stop.set()
            racer.join(15)
        assert not racer.is_alive()
        assert tree_state(outside) == before, attempt
    assert len(outcomes) == 40


def test_a_hard_link_in_the_tree_is_replaced_not_written_through(tmp_path):
    root, outside = make_tree(tmp_path)
    inside = root / "proc/sys/net/netfilter/nf_conntrack_max"
    inside.unlink()
    os.link(outside / "proc/sys/net/netfilter/nf_conntrack_max", inside)
    conf = root / "etc/sysctl.d/60-x.conf"
    conf.unlink()
    os.link(outside / "etc/sysctl.d/60-x.conf", conf)
    before = tree_state(outside)
    apply_tree(root)
    assert inside.read_text() == "262144\n"
    assert tree_state(outside) == before
    roll_back_tree(root)
    assert tree_state(outside) == before


def test_the_state_dir_of_a_tree_is_resolved_inside_it(tmp_path):
    """`ln -s /tmp/V T/var/lib/ctguard`: the state directory is T/tmp/V."""
    root, outside = make_tree(tmp_path)
    (root / "var/lib/ctguard").symlink_to(outside / "V")
    before = tree_state(outside)
    apply_tree(root)
    assert tree_state(outside) == before
    inside = root / str(outside.relative_to("/")) / "V" / "journal"
    assert len(list(inside.iterdir())) == 1
    assert [e.state for e in list_entries(StateDir.in_tree(root))] == ["applied"]
    roll_back_tree(root)
    assert [e.state for e in list_entries(StateDir.in_tree(root))] == ["rolled-back"]
    assert tree_state(outside) == before


def test_a_link_inside_the_state_dir_is_refused(tmp_path):
    """`ln -s /tmp/V T/var/lib/ctguard/journal`: ctguard's own directories are never links
    (a journal behind one is not where ctguard keeps it); nothing is written anywhere."""
    root, outside = make_tree(tmp_path)
    (root / "var/lib/ctguard").mkdir()
    (root / "var/lib/ctguard/journal").symlink_to(outside / "V")
    before, tree_before = tree_state(outside), tree_state(root)
    with pytest.raises(CtguardError) as err:
        apply_tree(root)
    assert "var/lib/ctguard/journal: a symbolic link where ctguard expects a directory" in str(
        err.value
    )
    assert tree_state(outside) == before
    assert tree_state(root) == tree_before


def test_a_root_path_swapped_after_it_was_opened_changes_nothing(tmp_path):
    """`--root link`, and link re-pointed at another tree (or at /) once ctguard checked
    it: the journal, the runtime values and the files all stay in the tree first opened."""

    root, outside = make_tree(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(root)
    tree = Tree(link)
    link.unlink()
    link.symlink_to(outside)  # the victim: the same layout, so a write would succeed there
    before = tree_state(outside)
    apply_changes(
        plan_files(), tree_sysctls(), root=tree, runtime=TreeRuntime(tree),
        state_dir=StateDir.in_tree(tree), meta={},
    )  # fmt: skip
    assert tree_state(outside) == before
    assert (root / "etc/udev/rules.d/90-ctguard.rules").exists()
    assert (root / "var/lib/ctguard/journal").is_dir()
    rollback(None, root=tree, runtime=TreeRuntime(tree), state_dir=StateDir.in_tree(tree))
    assert tree_state(outside) == before


def test_this_hosts_root_is_recognised_however_it_is_named(tmp_path):

    link = tmp_path / "slash"
    link.symlink_to("/")
    assert Tree(link).is_live and Tree("/").is_live and Tree("/tmp/..").is_live
    assert not Tree(tmp_path).is_live
