"""Rewinds' decisions that need no engine: what a state's key depends on, and when a put-back swarm
counts as back as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit import rewind
from labkit.labs import find
from labkit.runner import course, starting_lab
from labkit.settings import PROJECT

SAVED = {"nodes": {"manager1": "leader", "worker1": "worker"},
         "seen": {"manager1": ["ready", "active"], "worker1": ["ready", "active"]},
         "tasks": {"t1": "web", "t2": "web", "t3": "db"}}


def now(**changes: object) -> dict:
    return {**SAVED, **changes}


def test_the_same_tasks_are_back() -> None:
    assert rewind.same(SAVED, now(), lost=set())


def test_a_task_replaced_by_another_is_not_back_unless_its_container_was_lost() -> None:
    replaced = now(tasks={"t1": "web", "t9": "web", "t3": "db"})
    assert not rewind.same(SAVED, replaced, lost=set())
    assert rewind.same(SAVED, replaced, lost={"t2"})
    assert not rewind.same(SAVED, now(tasks={"t1": "web", "t3": "db"}), lost={"t2"})  # not replaced yet


@pytest.mark.parametrize("change", [{"nodes": {"manager1": "manager", "worker1": "worker"}},
                                    {"seen": {"manager1": ["ready", "active"], "worker1": ["down", "active"]}}])
def test_another_leader_or_node_state_is_not_back(change: dict) -> None:
    assert not rewind.same(SAVED, now(**change), lost=set())


def test_a_states_key_follows_the_step_and_every_labs_definition(tmp_path: Path, monkeypatch) -> None:
    labs = course()
    target = find("cleanup:rm", labs)[1]
    other = find("scale:replicas", labs)[1]
    assert target is not None and other is not None
    key = rewind.state_key(starting_lab(labs, target), target)
    assert key == rewind.state_key(starting_lab(labs, target), target)
    assert key != rewind.state_key(starting_lab(labs, other), other)
    copy = tmp_path / "labs"
    copy.mkdir()
    for path in (PROJECT / "labs").glob("*.toml"):
        (copy / path.name).write_bytes(path.read_bytes())
    monkeypatch.setenv("LABKIT_LABS", str(copy))  # settings() reads the environment each time
    assert rewind.state_key(starting_lab(labs, target), target) == key
    (copy / "17-stacks.toml").write_text((copy / "17-stacks.toml").read_text() + "\n# changed\n")
    assert rewind.state_key(starting_lab(labs, target), target) != key


class NoNodes:
    nodes: tuple = ()


@pytest.mark.parametrize(("roles", "why"), [({"manager1": "leader", "manager2": "manager"}, "several managers"),
                                            ({"manager1": "locked"}, "a locked manager")])
def test_states_that_would_not_come_back_fast_are_not_saved(roles: dict, why: str) -> None:
    assert rewind.unlikely_back(NoNodes(), {"nodes": roles}) == why  # type: ignore[arg-type]


def test_a_swarm_of_one_manager_would_come_back() -> None:
    assert rewind.unlikely_back(NoNodes(), {"nodes": {"manager1": "inactive", "worker1": "inactive"}}) == ""  # type: ignore[arg-type]


def test_only_a_well_formed_saved_state_is_compared() -> None:
    assert rewind._well_formed({"fingerprint": SAVED, "progress": {}})
    assert not rewind._well_formed({"fingerprint": {**SAVED, "tasks": ["t1"]}, "progress": {}})  # an older labkit's
    assert not rewind._well_formed({"progress": {}})
