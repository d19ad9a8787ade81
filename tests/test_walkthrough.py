"""Every lab on a fresh real cluster: each check fails before its solution and passes after it,
in course order, and each common mistake, staged for real, gets its own hint."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

import labkit
from labkit import rewind
from labkit.backends.dind_states import LABEL_STATE, DindStates
from labkit.checks import Result
from labkit.labs import Lab, all_steps, find, segments
from labkit.progress import Progress
from labkit.runner import apply_solution, course, reset, run_check, starting_lab
from tests.conftest import labkit_cli
from tests.test_rewind import OWN_STEPS

pytestmark = [pytest.mark.cluster, pytest.mark.destructive]


@pytest.fixture(scope="module")
def lab(own_lab: labkit.Cluster) -> labkit.Cluster:
    """This module changes its lab: a lab of its own (see conftest.own_lab), not the shared test lab."""
    return own_lab
LABS = course()
STEPS = all_steps(LABS)
PARTS = segments(LABS)  # the chained labs from swarm-init, then each lab that begins on a fresh swarm


def quiet(_: str) -> None:
    pass


WALKED: dict[str, dict] = {}  # the start of each step after a part's first: its fingerprint when saved there


@pytest.mark.parametrize("part", PARTS, ids=[part[0].id for part in PARTS])
def test_every_step_fails_before_its_solution_and_passes_after(lab: labkit.Cluster, part: list[Lab]) -> None:
    """PART from its start (bare engines, or a fresh swarm of its first lab's nodes), step by step; the
    start of each later step of PART is saved on the way, as a reset saves it (rewound to below)."""
    walk(lab, part, saves=WALKED)


@pytest.mark.root
def test_a_reset_to_the_start_of_each_step_puts_back_what_the_walk_left(lab: labkit.Cluster) -> None:
    """Issue 17: a reset to a step reached before puts its saved state back (no replay), and it is what the
    walk left there: the same nodes, roles, leader, node states and services' running tasks; the learner's
    progress up to it; the step before passes and the step itself is still to do."""
    walked = sorted(s.ref for part in PARTS for s in all_steps(part)[1:] if s.ref not in OWN_STEPS)
    assert sorted(WALKED) == walked, "the walk did not end"
    unsaved = {ref: walked["not saved"] for ref, walked in WALKED.items() if "not saved" in walked}
    assert all(unsaved.values()), f"states a reset would save were not saved: {unsaved}"
    for ref, walked in WALKED.items():
        if ref in unsaved:  # a lost quorum, a node cut off, a worker not yet back: a reset replays there
            continue
        _, target = find(ref, LABS)
        assert target is not None
        said: list[str] = []
        reset(lab, LABS, target, said.append)
        replayed = [s for s in said if "Fresh cluster" in s or "did not come back" in s or "replaying" in s]
        assert any("Putting back" in s for s in said) and not replayed, (ref, said)
        now = rewind.fingerprint(lab)
        assert (now["nodes"], now["seen"]) == (walked["nodes"], walked["seen"]), ref
        assert Counter(now["tasks"].values()) == Counter(walked["tasks"].values()), ref  # overlay tasks: new IDs
        steps = all_steps(next(part for part in PARTS if target in all_steps(part)))
        earlier = steps[: steps.index(target)]
        progress = Progress(lab.lab)
        assert all(progress.passed(s.ref) for s in earlier), ref
        previous = earlier[-1]
        assert run_check(lab, previous, answer=progress.answer(previous.ref), wait=False).passed, previous.ref
        assert not run_check(lab, target, wait=False).passed, ref
        if target is find(ref, LABS)[0].steps[-1]:  # a lab's last step (often: remove what it made) can be done
            after = apply_solution(lab, target, quiet)
            assert after.passed, f"{ref} after a rewind: {after.summary}"


def walk(lab: labkit.Cluster, part: list[Lab], fresh: bool = False, saves: dict[str, dict] | None = None) -> None:
    """Reset LAB to the start of PART (unless FRESH: it was just made so), then each step: its check fails
    before its solution and passes after it, and each likely wrong answer gets its own explanation. Any
    backend. SAVES: save the start of each later step of PART as a reset would, its fingerprint kept there."""
    began = time.monotonic()  # a replay's time to each step, as a reset measures it: a fresh cluster first
    if not fresh:
        reset(lab, LABS, part[0].steps[0], quiet)
    progress = Progress(lab.lab)
    steps = all_steps(part)
    starts = {step.ref for step in steps[1:]} - OWN_STEPS  # test_rewind's steps: it saves and forgets them
    for i, step in enumerate(steps):
        if saves is not None and step.ref in starts:
            key = rewind.state_key(starting_lab(LABS, step), step)
            rewind.wait_settled(lab)  # as a save does before it takes its fingerprint
            fingerprint = rewind.fingerprint(lab)
            why = rewind.unlikely_back(lab, fingerprint)  # not saved, as a reset would not save it
            if not why:
                forget_verdicts(lab, key)
            said: list[str] = []
            saved = not why and rewind.save(lab, key, steps[:i], time.monotonic() - began, said.append)
            if not saved and not why:  # save looks again once the swarm settled, and once it is copied
                why = (next((s for s in said if s.startswith((rewind.CHANGED_WHILE_SAVED, rewind.NOT_SETTLED))), "")
                       or rewind.unlikely_back(lab, rewind.fingerprint(lab)))
            # what was saved: save waits again for the swarm to settle (a worker that a new leader had not
            # heard from yet at the walk's look was ready at the save's)
            saves[step.ref] = lab.backend.saved_state(key)["fingerprint"] if saved else {"not saved": why}
        before = run_check(lab, step, wait=False)
        assert not before.passed, f"{step.ref} passed before its solution: {before.summary}"
        assert before.hint, f"{step.ref} failed without a hint"
        after = apply_solution(lab, step, quiet)
        assert after.passed, (f"{step.ref} still fails after its solution: {after.summary} ({after.hint}); "
                              f"seen: {'; '.join(after.evidence)}")
        assert progress.passed(step.ref)
        if step.question:  # each likely wrong answer, given on the live cluster, gets its own explanation
            right = progress.answer(step.ref)
            for wrong, why in step.explain.items():
                judged = run_check(lab, step, answer=wrong, wait=False)
                assert not judged.passed and why in judged.summary, f"{step.ref} {wrong!r}: {judged.summary}"
            assert run_check(lab, step, answer=right, wait=False).passed


def forget_verdicts(lab: labkit.Cluster, key: str) -> None:
    """No earlier state under KEY, on any lab of this machine: a state marked unfit by an earlier run (a
    put-back slow under load) would make every later reset there replay, and this test fail for good.
    No other test saves these steps (test_rewind's own are left out), so no other test's state goes."""
    states = DindStates(lab.backend)  # type: ignore[arg-type]
    for volume in lab.backend.host.volumes.list(  # type: ignore[attr-defined]
            filters={"label": f"{LABEL_STATE}={states.full_key(key)}"}):
        volume.remove(force=True)


def stage(cluster: labkit.Cluster, ref: str) -> None:
    """Rewind the test lab to the start of REF."""
    _, step = find(ref, LABS)
    assert step is not None
    reset(cluster, LABS, step, quiet)


def check(cluster: labkit.Cluster, ref: str, **kw: object) -> Result:
    _, step = find(ref, LABS)
    assert step is not None
    return run_check(cluster, step, **kw)


def test_init_on_a_worker_says_so(lab: labkit.Cluster) -> None:
    stage(lab, "swarm-init:init")
    assert lab["worker1"].run("docker swarm init").ok
    result = check(lab, "swarm-init:init")
    assert not result.passed
    assert "worker1" in result.summary and "docker swarm leave --force" in result.hint


def test_steps_that_need_a_swarm_say_init_comes_first(lab: labkit.Cluster) -> None:
    stage(lab, "swarm-init:init")
    for ref in ("swarm-init:root-ca", "nodes:join", "first-service:create"):
        result = check(lab, ref, wait=False)
        assert not result.passed and "docker swarm init" in result.hint, ref


def test_a_worker_joined_as_a_manager_is_told_to_demote(lab: labkit.Cluster) -> None:
    stage(lab, "nodes:join")
    token = lab["manager1"].run("docker swarm join-token -q manager").stdout.strip()
    assert lab["worker1"].run(f"docker swarm join --token {token} manager1:2377").ok
    result = check(lab, "nodes:join", wait=False)
    assert not result.passed
    assert "worker1 joined as a manager" in result.summary and "docker node demote worker1" in result.hint


def test_a_plain_container_is_not_a_service(lab: labkit.Cluster) -> None:
    stage(lab, "first-service:create")
    assert lab["worker1"].run("docker run -d alpine ping manager1").ok
    result = check(lab, "first-service:create", wait=False)
    assert not result.passed and "docker service create" in result.hint


def test_pinging_outside_the_lab_is_pointed_back_to_a_lab_node(lab: labkit.Cluster) -> None:
    stage(lab, "first-service:create")
    assert lab["manager1"].run("docker service create -d alpine ping nosuchhost.invalid").ok
    result = check(lab, "first-service:create", wait=False)
    assert not result.passed and "not a lab node" in result.summary and "ping manager1" in result.hint


def test_a_service_with_another_name_gets_its_real_name(lab: labkit.Cluster) -> None:
    stage(lab, "first-service:create")
    assert lab["manager1"].run("docker service create -d alpine ping manager1").ok  # no --name, as on the slide
    name = lab["manager1"].run("docker service ls --format '{{.Name}}'").stdout.strip()
    assert not lab["manager1"].run("docker service update pinger --replicas 3").ok
    result = check(lab, "scale:replicas", wait=False)
    assert not result.passed
    assert f"docker service update {name} --replicas 3" in result.hint


def test_scaled_to_two_instead_of_three(lab: labkit.Cluster) -> None:
    stage(lab, "scale:replicas")
    assert lab["manager1"].run("docker service update -d pinger --replicas 2").ok
    result = check(lab, "scale:replicas", wait=False)
    assert not result.passed and "You asked for 2 replicas" in result.hint


def test_predicting_the_node_that_already_had_a_task_is_explained(lab: labkit.Cluster) -> None:
    stage(lab, "scale:replicas")
    manager = lab["manager1"]
    hosts = {n["ID"]: n["Description"]["Hostname"] for n in manager.docker.api.nodes()}
    first = hosts[manager.docker.api.tasks(filters={"service": "pinger"})[0]["NodeID"]]
    others = sorted({"manager1", "worker1", "worker2"} - {first})
    assert manager.run("docker service update -d pinger --replicas 3").ok
    wrong = check(lab, "scale:replicas", answer=f"{first} and {others[0]}")
    assert not wrong.passed and f"{first} already ran the first task" in wrong.summary, wrong.summary
    right = check(lab, "scale:replicas", answer=" and ".join(others))
    assert right.passed, right.summary


def test_removing_the_service_instead_of_a_container(lab: labkit.Cluster) -> None:
    stage(lab, "self-heal:kill")
    assert lab["manager1"].run("docker service rm pinger").ok
    result = check(lab, "self-heal:kill", wait=False)
    assert not result.passed
    assert "removed, not one of its containers" in result.summary and "docker container rm -f" in result.hint


def test_self_heal_reports_the_failed_task_and_the_healing_time(lab: labkit.Cluster) -> None:
    stage(lab, "self-heal:kill")
    victim = lab["worker2"].run("docker container ls -q --filter label=com.docker.swarm.service.name=pinger")
    assert victim.stdout.strip()
    Progress(lab.lab).record("self-heal:kill", answer="the same one")  # the learner's prediction, made first
    assert lab["worker2"].run(f"docker container rm -f {victim.stdout.split()[0]}").ok
    wrong = check(lab, "self-heal:kill")  # judged once the slot has healed, with an explanation
    assert not wrong.passed and "Swarm never restarts a task" in wrong.summary, wrong.summary
    result = check(lab, "self-heal:kill", answer="a new one")
    assert result.passed, result.summary
    assert any("failed" in line and "worker2" in line for line in result.evidence)
    assert "s after the container was removed" in result.summary


def test_cli_check_solve_and_labs_from_a_terminal(lab: labkit.Cluster) -> None:
    stage(lab, "swarm-init:info")
    wrong = labkit_cli("check", "swarm-init:info", "--answer", "active", lab=lab.lab)
    assert wrong.returncode == 1 and "FAIL swarm-init:info" in wrong.stdout and "Look again" in wrong.stdout
    right = labkit_cli("check", "swarm-init:info", "--answer", "inactive", lab=lab.lab)
    assert right.returncode == 0 and "PASS swarm-init:info" in right.stdout
    solved = labkit_cli("solve", "swarm-init:init", lab=lab.lab)
    assert solved.returncode == 0 and "PASS swarm-init:init" in solved.stdout, solved.stderr
    listed = labkit_cli("labs", lab=lab.lab)
    line = next(x for x in listed.stdout.splitlines() if x.startswith("│ swarm-init"))
    assert "2/7" in line
    shown = labkit_cli("show", "nodes:join", lab=lab.lab)
    assert "worker1$ docker swarm join --token SWMTKN-1-" in shown.stdout
    # The same, as one JSON document each, for scripts and instructors' tools.
    labs = json.loads(labkit_cli("labs", "--json", lab=lab.lab).stdout)["labs"]
    first = next(item for item in labs if item["id"] == "swarm-init")
    assert [s["passed"] for s in first["steps"]][:3] == [True, True, False]
    step = json.loads(labkit_cli("show", "nodes:join", "--json", lab=lab.lab).stdout)["steps"][0]
    assert step["node"] == "worker1" and step["commands"][1]["node"] == "worker1"
    assert step["commands"][1]["run"].startswith("docker swarm join --token SWMTKN-1-")
    checked = labkit_cli("check", "swarm-init", "--json", lab=lab.lab)
    results = json.loads(checked.stdout)["results"]
    assert checked.returncode == 1 and [r["ref"] for r in results][:2] == ["swarm-init:info", "swarm-init:init"]
    assert set(results[0]) == {"ref", "passed", "summary", "evidence", "hint", "pending", "seconds"}
    bad = labkit_cli("check", "nodes:nosuch", lab=lab.lab)
    assert bad.returncode == 1 and "no step 'nosuch'" in bad.stderr and "Traceback" not in bad.stderr


def test_a_check_on_a_stopped_manager_explains_instead_of_crashing(lab: labkit.Cluster, host) -> None:
    from labkit.topology import Names

    stage(lab, "nodes:join")
    host.containers.get(Names(lab.lab).container("manager1")).stop(timeout=1)
    try:
        result = check(lab, "nodes:join", wait=False)
        assert not result.passed
        assert result.summary == "Node manager1 is stopped, so this step cannot be checked."
        assert f"`labkit up --lab {lab.lab}`" in result.hint
    finally:
        assert labkit_cli("up", lab=lab.lab).returncode == 0  # starts the stopped node again
    assert lab["manager1"].engine_answers()


def test_reset_brings_back_a_swarm_without_quorum_and_a_locked_manager(lab: labkit.Cluster) -> None:
    """Breaking quorum or locking a manager never leaves a lab that `labkit reset` cannot rewind."""
    stage(lab, "managers:recover")  # manager1 and manager2 off: no leader, every change refused
    assert [n.name for n in lab.managers if n.health() != "running"] == ["manager1", "manager2"]
    stage(lab, "autolock:unlock-manager")  # manager1 restarted with autolock on: locked
    assert lab["manager1"].docker.info()["Swarm"]["LocalNodeState"] == "locked"
    stage(lab, "managers:demote")  # from either state: a fresh swarm of 3 managers, replayed to demote
    assert check(lab, "managers:promote", wait=False).passed
    assert [n.name for n in lab.nodes] == ["manager1", "manager2", "manager3", "worker1", "worker2"]
