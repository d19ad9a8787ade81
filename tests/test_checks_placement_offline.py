"""The checks of lab placement (labkit/checks/placement.py) through each of their outcomes, on the fake
cluster of tests/fakes.py, with the steps, hints and explanations of labs/09-placement.toml. The scenes
follow the lab: pinger on the workers, then on worker2 by its label, nowhere pending, worker2 drained
and active again, pinger rebalanced, agent global, worker2 rejoining as a new node.
"""

from __future__ import annotations

import pytest

from tests.fakes import FakeLab, Json, stamp, swarm_lab
from tests.test_checks_offline import (  # noqa: F401 (no_real_engine: autouse, so no real engine here either)
    answer_of,
    explain,
    failed,
    foreign_swarm_on_worker1,
    hints,
    no_real_engine,
    passed,
    run_check,
    step_for,
    wrong_answer,
)

PLACEMENT_CHECKS = ["workers_only", "label_constraint", "unsatisfiable", "drained", "no_rebalance", "rebalanced",
                    "spread_pref", "global_service", "global_join_later", "scaled_in"]
WORKERS = "node.role==worker"
SSD = "node.labels.disk==ssd"
MARS = "node.labels.zone==mars"
UNSATISFIED = "no suitable node (scheduling constraints not satisfied on 3 nodes)"


# --- scenes, in the lab's order -------------------------------------------------------------------


def pinger_lab(on: tuple[str, ...] = ("worker1", "worker1", "worker2"),
               constraints: tuple[str, ...] = (WORKERS,)) -> tuple[FakeLab, Json]:
    """workers-only: pinger, 3 replicas, created at 10 s with CONSTRAINTS, its tasks running on ON."""
    lab = swarm_lab()
    return lab, lab.service(replicas=3, on=on, constraints=constraints, at=10)


def labelled_lab() -> tuple[FakeLab, Json]:
    """labels done: worker2 labelled disk=ssd, pinger constrained to it, all its tasks there."""
    lab, pinger = pinger_lab()
    lab.label("worker2", "disk", "ssd")
    lab.update_service(pinger, at=20, constraint_add=[SSD])
    lab.move(pinger, ["worker2"] * 3, at=21)
    return lab, pinger


def nowhere_lab() -> tuple[FakeLab, Json, Json]:
    """pending done: nowhere created at 30 s, its one task pending for want of a node."""
    lab, pinger = labelled_lab()
    nowhere = lab.service("nowhere", on=(), constraints=(MARS,), at=30)
    lab.pending_task(nowhere, at=30)
    return lab, pinger, nowhere


def drained_lab() -> tuple[FakeLab, Json]:
    """drain done: nowhere removed, the ssd constraint removed, worker2 drained, its tasks on worker1."""
    lab, pinger, nowhere = nowhere_lab()
    lab.remove_service(nowhere)
    lab.update_service(pinger, at=40, constraint_rm=[SSD])
    lab.availability("worker2", "drain")
    lab.move(pinger, ["worker1"] * 3, at=41)
    return lab, pinger


def active_lab() -> tuple[FakeLab, Json]:
    """active done: worker2 active again; the tasks stay on worker1."""
    lab, pinger = drained_lab()
    lab.availability("worker2", "active")
    return lab, pinger


def rebalanced_lab() -> tuple[FakeLab, Json]:
    """rebalance done: `docker service update --force pinger` spread the new tasks over both workers."""
    lab, pinger = active_lab()
    lab.update_service(pinger, at=50, force=True)
    lab.move(pinger, ["worker1", "worker2", "worker1"], at=51)
    return lab, pinger


def agent_lab(on: tuple[str, ...] = ("manager1", "worker1", "worker2"), mode: str = "global") -> tuple[FakeLab, Json]:
    """global done: agent, global, created at 100 s (12:01:40), a task on each node of ON."""
    lab = swarm_lab()
    return lab, lab.service("agent", on=on, mode=mode, at=100)


def worker2_left(lab: FakeLab, agent: Json) -> None:
    """`docker swarm leave` on worker2: its agent task shuts down; the managers see worker2 down."""
    for task in lab.tasks(agent):
        if lab.node_of(task).name == "worker2":
            lab.remove_container(task)
            task["DesiredState"] = "shutdown"
            task["Status"] |= {"State": "shutdown", "Message": "shutdown"}
    lab.leave("worker2")


def rejoined_lab(agent_task: bool = True) -> tuple[FakeLab, Json]:
    """join-later done: worker2 left, was removed, joined again at 200 s (12:03:20) as a new node, and
    (with AGENT_TASK) the orchestrator started an agent task on it."""
    lab, agent = agent_lab()
    worker2_left(lab, agent)
    lab.remove_node("worker2")
    lab.join("worker2", lab.swarm, at=200)
    if agent_task:
        lab.task(agent, "worker2", 0, at=201)
    return lab, agent


def scaled_in_lab(stopped: int = 2) -> tuple[FakeLab, Json]:
    """scale-in done: after the rebalance (2 tasks on worker1, 1 on worker2) and agent, `docker service scale
    pinger=1` at 300 s; STOPPED of the two extra tasks (worker2's first) stopped at 301 s."""
    lab, pinger = rebalanced_lab()
    lab.service("agent", on=("manager1", "worker1", "worker2"), mode="global", at=100)
    lab.scale(pinger, 1, at=300)
    running = [t for t in lab.tasks(pinger) if t["DesiredState"] == "running"]
    for task in sorted(running, key=lambda t: lab.node_of(t).name, reverse=True)[:stopped]:
        lab.shutdown(task, at=301)
    return lab, pinger


# --- every check needs a swarm --------------------------------------------------------------------


@pytest.mark.parametrize(("name", "service"), [
    ("workers_only", "pinger"), ("label_constraint", "pinger"), ("unsatisfiable", "nowhere"), ("drained", "pinger"),
    ("no_rebalance", "pinger"), ("rebalanced", "pinger"), ("global_service", "agent"),
    ("global_join_later", "agent"), ("scaled_in", "pinger")])
def test_missing_service(name, service):
    result = run_check(name, swarm_lab(), "an answer")
    failed(result, f"There is no service called {service} yet.", hint=hints(name)[0])
    assert result.evidence == ()


# --- workers-only ---------------------------------------------------------------------------------


def test_workers_only_right_answer():
    lab, _ = pinger_lab()
    assert answer_of("workers_only", lab) == "no"
    result = run_check("workers_only", lab, "No.")
    passed(result, "Right: No")
    assert result.evidence == ("constraint: node.role==worker", "3/3 tasks running: 2 on worker1, 1 on worker2")
    for answer in ("no", "none", "0", "zero", "No, it won't"):
        passed(run_check("workers_only", lab, answer), "Right:")


def test_workers_only_not_a_manager_and_spaces_in_the_constraint_also_count():
    for constraint in ("node.role!=manager", "node.role == worker", "node.role != manager"):
        lab, _ = pinger_lab(constraints=(constraint,))
        passed(run_check("workers_only", lab, "no"))


def test_workers_only_yes_is_explained():
    lab, _ = pinger_lab()
    result = run_check("workers_only", lab, "yes")
    wrong_answer(result, "yes", explain("workers_only", "yes"))
    assert result.hint == hints("workers_only")[0]
    wrong_answer(run_check("workers_only", lab, "Yes, one"), "Yes, one", explain("workers_only", "yes"))
    wrong_answer(run_check("workers_only", lab, "maybe"), "maybe")
    failed(run_check("workers_only", lab, None), "Predict, run the command(s), then answer: With `--constraint")


def test_workers_only_constrained_to_managers():
    for constraint in ("node.role==manager", "node.role == manager"):
        lab, _ = pinger_lab(on=("manager1",) * 3, constraints=(constraint,))
        result = run_check("workers_only", lab, "no")
        failed(result, "pinger is constrained to managers, not workers.",
               hint="Recreate it with `--constraint node.role==worker` (or `node.role!=manager`).")
        assert result.evidence == ("constraints: ['node.role==manager']",)


def test_workers_only_no_constraint():
    lab, _ = pinger_lab(on=("manager1", "worker1", "worker2"), constraints=())
    result = run_check("workers_only", lab, "no")
    failed(result, "pinger has no constraint that keeps it off the managers.",
           hint="`docker service update --constraint-add node.role==worker pinger` on manager1.")
    assert result.evidence == ("constraints: none",)


def test_workers_only_another_constraint_is_not_one_that_keeps_it_off_the_managers():
    lab, _ = pinger_lab(on=("manager1", "worker1", "worker2"), constraints=("node.hostname!=worker1",))
    result = run_check("workers_only", lab, "no")
    failed(result, "pinger has no constraint that keeps it off the managers.")
    assert result.evidence == ("constraints: ['node.hostname!=worker1']",)


def test_workers_only_tasks_still_placed_is_pending_whatever_the_answer():
    lab, pinger = pinger_lab(on=("worker1", "worker2"))
    lab.task(pinger, "worker1", 3, state="starting")
    for answer in ("no", "yes", None):
        result = run_check("workers_only", lab, answer)
        failed(result, "The tasks are still being placed.", hint="`docker service ps pinger`", pending=True)
        assert result.evidence == ("constraint: node.role==worker", "2/3 tasks running: 1 on worker1, 1 on worker2")


def test_workers_only_a_task_still_on_a_manager_is_pending():
    """Just after `--constraint-add node.role==worker`: one task still runs on manager1."""
    lab, _ = pinger_lab(on=("manager1", "worker1", "worker2"))
    result = run_check("workers_only", lab, "no")
    failed(result, "The tasks are still being placed.", pending=True)
    assert result.evidence[1] == "3/3 tasks running: 1 on manager1, 1 on worker1, 1 on worker2"


# --- labels ---------------------------------------------------------------------------------------


def test_label_constraint_passes():
    lab, _ = labelled_lab()
    result = run_check("label_constraint", lab)
    passed(result, "Every task of pinger runs on worker2, the only node labelled disk=ssd.")
    assert result.evidence == ("nodes labelled disk=ssd: worker2", f"constraints: {WORKERS}, {SSD}",
                               "tasks: 3 on worker2")


def test_label_constraint_no_label_yet():
    lab, _ = pinger_lab()
    result = run_check("label_constraint", lab)
    failed(result, "worker2 has no label disk=ssd.", hint="`docker node update --label-add disk=ssd worker2`")
    assert "It is on" not in result.summary
    assert result.evidence == ("nodes labelled disk=ssd: none", f"constraints: {WORKERS}",
                               "tasks: 2 on worker1, 1 on worker2")


def test_label_constraint_label_on_the_wrong_node():
    lab, pinger = pinger_lab()
    lab.label("worker1", "disk", "ssd")
    lab.update_service(pinger, at=20, constraint_add=[SSD])
    lab.move(pinger, ["worker1"] * 3, at=21)
    result = run_check("label_constraint", lab)
    failed(result, "worker2 has no label disk=ssd. It is on worker1.",
           hint="On manager1: `docker node update --label-add disk=ssd worker2`.")
    assert result.evidence[0] == "nodes labelled disk=ssd: worker1"


def test_label_constraint_another_label_on_worker2():
    lab, _ = pinger_lab()
    lab.label("worker2", "disk", "hdd")
    lab.label("worker2", "ssd", "true")
    failed(run_check("label_constraint", lab), "worker2 has no label disk=ssd.")


@pytest.mark.parametrize("constraints", [(), ("node.label.disk==ssd",), ("node.labels.disk==hdd",)])
def test_label_constraint_node_labels_constraint_missing(constraints):
    lab, pinger = pinger_lab()
    lab.label("worker2", "disk", "ssd")
    lab.update_service(pinger, at=20, constraint_add=constraints)
    result = run_check("label_constraint", lab)
    failed(result, "pinger is not constrained to nodes labelled disk=ssd.",
           hint="`docker service update --constraint-add node.labels.disk==ssd pinger` "
           "(note `node.labels`, with an s).")
    assert result.evidence[1] == f"constraints: {', '.join((WORKERS, *constraints))}"


def test_label_constraint_spaces_in_the_constraint_also_count():
    lab, pinger = pinger_lab()
    lab.label("worker2", "disk", "ssd")
    lab.update_service(pinger, at=20, constraint_add=["node.labels.disk == ssd"])
    lab.move(pinger, ["worker2"] * 3, at=21)
    passed(run_check("label_constraint", lab))


def test_label_constraint_tasks_moving_is_pending():
    lab, pinger = pinger_lab()
    lab.label("worker2", "disk", "ssd")
    lab.update_service(pinger, at=20, constraint_add=[SSD])
    result = run_check("label_constraint", lab)
    failed(result, "The tasks are moving to worker2.", pending=True,
           hint="A constraint change is a service update: tasks are replaced one by one.")
    assert result.evidence[2] == "tasks: 2 on worker1, 1 on worker2"
    lab.move(pinger, ["worker2", "worker2"], at=21)  # the third one is still being replaced
    failed(run_check("label_constraint", lab), "The tasks are moving to worker2.", pending=True)


def test_label_constraint_label_also_on_worker1_is_not_pending():
    lab, pinger = pinger_lab()
    lab.label("worker1", "disk", "ssd")
    lab.label("worker2", "disk", "ssd")
    lab.update_service(pinger, at=20, constraint_add=[SSD])
    lab.move(pinger, ["worker1", "worker2", "worker1"], at=21)
    result = run_check("label_constraint", lab)
    assert not result.pending, result


# --- pending --------------------------------------------------------------------------------------


def test_unsatisfiable_pending_right_answer():
    lab, _, nowhere = nowhere_lab()
    task = lab.tasks(nowhere)[0]
    assert answer_of("unsatisfiable", lab) == "pending"
    result = run_check("unsatisfiable", lab, "Pending.")
    passed(result, "Right: Pending.")
    assert result.evidence == (f"constraints: {MARS}", f"task {task['ID'][:12]}: pending", f"why: {UNSATISFIED}",
                               "no node has the label zone=mars, so the scheduler cannot place it")
    for answer in ("pending", "it stays pending", "Pending forever", "PENDING, since no node fits"):
        passed(run_check("unsatisfiable", lab, answer), "Right:")


@pytest.mark.parametrize("answer", ["running", "failed"])
def test_unsatisfiable_likely_wrong_answers_are_explained(answer):
    lab, _, _ = nowhere_lab()
    result = run_check("unsatisfiable", lab, answer)
    wrong_answer(result, answer, explain("unsatisfiable", answer))
    assert result.hint == hints("unsatisfiable")[0]
    sentence = f"It is {answer}"
    wrong_answer(run_check("unsatisfiable", lab, sentence), sentence, explain("unsatisfiable", answer))


def test_unsatisfiable_other_and_missing_answers():
    lab, _, _ = nowhere_lab()
    wrong_answer(run_check("unsatisfiable", lab, "rejected"), "rejected")
    failed(run_check("unsatisfiable", lab, None), "Predict, run the command(s), then answer: In which state")


def test_unsatisfiable_why_falls_back_on_the_message():
    lab, _, nowhere = nowhere_lab()
    del lab.tasks(nowhere)[0]["Status"]["Err"]
    assert "why: pending task scheduling" in run_check("unsatisfiable", lab, "pending").evidence


def test_unsatisfiable_no_task_yet_is_pending():
    lab, _ = labelled_lab()
    lab.service("nowhere", on=(), constraints=(MARS,), at=30)
    failed(run_check("unsatisfiable", lab, "pending"), "The orchestrator has not created nowhere's task yet.",
           hint="Wait.", pending=True)


def test_unsatisfiable_task_placed_somewhere():
    """nowhere created with a constraint some node satisfies: its task runs."""
    lab, _ = labelled_lab()
    nowhere = lab.service("nowhere", on=("worker2",), constraints=(SSD,), at=30)
    result = run_check("unsatisfiable", lab, "pending")
    failed(result, "nowhere's task is running, not waiting for a node.",
           hint="Its constraint must be one no node satisfies: `--constraint node.labels.zone==mars`.")
    assert result.evidence[:2] == (f"constraints: {SSD}", f"task {lab.tasks(nowhere)[0]['ID'][:12]}: running")


@pytest.mark.parametrize("old_first", [True, False])
def test_unsatisfiable_judges_the_newest_task(old_first):
    """nowhere first ran on worker2 (labelled zone=mars), then the label went: the newest task is pending."""
    lab, _ = labelled_lab()
    nowhere = lab.service("nowhere", on=(), constraints=(MARS,), at=30)
    old = lab.task(nowhere, "worker2", 1, at=30)
    old["DesiredState"] = "shutdown"
    old["Status"] |= {"State": "shutdown", "Message": "shutdown"}
    new = lab.pending_task(nowhere, at=35)
    if not old_first:
        lab.swarm.tasks.remove(new)
        lab.swarm.tasks.insert(0, new)
    result = run_check("unsatisfiable", lab, "pending")
    passed(result)
    assert f"task {new['ID'][:12]}: pending" in result.evidence


def test_unsatisfiable_a_task_not_yet_scheduled_is_pending():
    lab, _ = labelled_lab()
    nowhere = lab.service("nowhere", on=(), constraints=(MARS,), at=30)
    task = lab.pending_task(nowhere, at=30)
    task["Status"] |= {"State": "new", "Message": "created"}
    del task["Status"]["Err"]
    result = run_check("unsatisfiable", lab, "pending")
    assert result.pending, result


# --- drain ----------------------------------------------------------------------------------------


def test_drained_passes():
    lab, _ = drained_lab()
    result = run_check("drained", lab)
    passed(result, "worker2 is drained; pinger runs on 3 on worker1.")
    assert result.evidence == ("availability: manager1 active, worker1 active, worker2 drain", "tasks: 3 on worker1")


def test_drained_nowhere_still_there():
    lab, pinger, _ = nowhere_lab()
    lab.update_service(pinger, at=40, constraint_rm=[SSD])
    lab.availability("worker2", "drain")
    result = run_check("drained", lab)
    failed(result, "The service nowhere is still there.", hint="Remove it first: `docker service rm nowhere`.")
    assert result.evidence == ("availability: manager1 active, worker1 active, worker2 drain", "tasks: 3 on worker2")


def test_drained_ssd_constraint_still_on():
    lab, _, nowhere = nowhere_lab()
    lab.remove_service(nowhere)
    lab.availability("worker2", "drain")  # the tasks have nowhere to go: they would be pending
    failed(run_check("drained", lab), "pinger is still constrained to disk=ssd nodes.",
           hint="`docker service update --constraint-rm node.labels.disk==ssd pinger` first")


def test_drained_not_drained_yet():
    lab, pinger, nowhere = nowhere_lab()
    lab.remove_service(nowhere)
    lab.update_service(pinger, at=40, constraint_rm=[SSD])
    result = run_check("drained", lab)
    failed(result, "worker2 is not drained.", hint="`docker node update --availability drain worker2` on manager1.")
    assert "instead" not in result.summary


def test_drained_the_wrong_node():
    lab, pinger, nowhere = nowhere_lab()
    lab.remove_service(nowhere)
    lab.update_service(pinger, at=40, constraint_rm=[SSD])
    lab.availability("worker1", "drain")
    result = run_check("drained", lab)
    failed(result, "worker2 is not drained (worker1 is drained instead).",
           hint="`docker node update --availability drain worker2` on manager1.")
    assert result.evidence[0] == "availability: manager1 active, worker1 drain, worker2 active"


def test_drained_worker2_paused_is_not_drained():
    lab, pinger, nowhere = nowhere_lab()
    lab.remove_service(nowhere)
    lab.update_service(pinger, at=40, constraint_rm=[SSD])
    lab.availability("worker2", "pause")
    failed(run_check("drained", lab), "worker2 is not drained.")


def test_drained_tasks_leaving_worker2_is_pending():
    lab, pinger, nowhere = nowhere_lab()
    lab.remove_service(nowhere)
    lab.update_service(pinger, at=40, constraint_rm=[SSD])
    lab.availability("worker2", "drain")
    result = run_check("drained", lab)
    failed(result, "Tasks are leaving worker2.", pending=True,
           hint="Draining stops a node's tasks and the orchestrator starts them elsewhere.")
    assert result.evidence[1] == "tasks: 3 on worker2"
    lab.move(pinger, ["worker1", "worker1"], at=41)  # the third one is not running yet
    result = run_check("drained", lab)
    failed(result, "Tasks are leaving worker2.", pending=True)
    assert result.evidence[1] == "tasks: 2 on worker1"


# --- active ---------------------------------------------------------------------------------------


def test_no_rebalance_right_answer():
    lab, _ = active_lab()
    assert answer_of("no_rebalance", lab) == "no"
    result = run_check("no_rebalance", lab, "No")
    passed(result, "Right: No")
    assert result.evidence == ("worker2: active", "tasks: 3 on worker1", "Swarm does not move running tasks to a "
                               "node that becomes available: it only places new ones")
    for answer in ("no", "n", "they stay", "No, they stay.", "no, they stay on worker1"):
        passed(run_check("no_rebalance", lab, answer), "Right:")


def test_no_rebalance_yes_is_explained():
    lab, _ = active_lab()
    result = run_check("no_rebalance", lab, "yes")
    wrong_answer(result, "yes", explain("no_rebalance", "yes"))
    assert result.hint == hints("no_rebalance")[0]
    wrong_answer(run_check("no_rebalance", lab, "Yes, they move back"), "Yes, they move back",
                 explain("no_rebalance", "yes"))
    wrong_answer(run_check("no_rebalance", lab, "some"), "some")
    failed(run_check("no_rebalance", lab, None), "Predict, run the command(s), then answer: When worker2 is active")


@pytest.mark.parametrize("availability", ["drain", "pause"])
def test_no_rebalance_worker2_not_active_again(availability):
    lab, _ = drained_lab()
    lab.availability("worker2", availability)
    result = run_check("no_rebalance", lab, "no")
    failed(result, "worker2 is still", hint="`docker node update --availability active worker2` on manager1.")
    assert result.evidence[0] == f"worker2: {availability}"


def test_no_rebalance_worker2_still_drained_in_plain_words():
    lab, _ = drained_lab()
    failed(run_check("no_rebalance", lab, "no"), "worker2 is still drained.")


# --- rebalance ------------------------------------------------------------------------------------


def test_rebalanced_passes():
    lab, _ = rebalanced_lab()
    result = run_check("rebalanced", lab)
    passed(result, "pinger is spread over both workers again.")
    assert result.evidence == ("tasks: 2 on worker1, 1 on worker2", "forced updates: 1")


def test_rebalanced_not_spread_without_a_forced_update_is_not_pending():
    lab, _ = active_lab()
    result = run_check("rebalanced", lab)
    failed(result, "pinger's tasks are not on both workers yet.", hint="`docker service update --force pinger`")
    assert result.evidence == ("tasks: 3 on worker1", "forced updates: 0")


def test_rebalanced_not_spread_after_a_forced_update_is_pending():
    lab, pinger = active_lab()
    lab.update_service(pinger, at=50, force=True)
    result = run_check("rebalanced", lab)
    failed(result, "pinger's tasks are not on both workers yet.", pending=True,
           hint="`docker service update --force pinger` replaces every task: new tasks are spread.")
    assert result.evidence == ("tasks: 3 on worker1", "forced updates: 1")


def test_rebalanced_spread_but_a_task_still_replaced_is_pending():
    lab, pinger = active_lab()
    lab.update_service(pinger, at=50, force=True)
    lab.move(pinger, ["worker1", "worker2"], at=51)
    result = run_check("rebalanced", lab)
    failed(result, "pinger's tasks are not on both workers yet.", pending=True)
    assert result.evidence == ("tasks: 1 on worker1, 1 on worker2", "forced updates: 1")


def test_rebalanced_pending_only_while_forced():
    """Without --force nothing will change by waiting; a later forced update makes it worth waiting."""
    lab, pinger = active_lab()
    lab.move(pinger, ["worker1", "worker2"], at=45)
    assert not run_check("rebalanced", lab).pending
    lab.update_service(pinger, at=50, force=True)
    assert run_check("rebalanced", lab).pending


# --- global ---------------------------------------------------------------------------------------


def test_global_service_right_answer():
    lab, _ = agent_lab()
    assert answer_of("global_service", lab) == "3"
    result = run_check("global_service", lab, "3")
    passed(result, "Right: 3.")
    assert result.evidence == ("active, ready nodes: manager1, worker1, worker2",
                               "agent tasks: 1 on manager1, 1 on worker1, 1 on worker2")
    for answer in ("3 tasks", "One per node.", " 3 "):
        passed(run_check("global_service", lab, answer), "Right:")


@pytest.mark.parametrize("answer", ["1", "2"])
def test_global_service_likely_wrong_answers_are_explained(answer):
    lab, _ = agent_lab()
    result = run_check("global_service", lab, answer)
    wrong_answer(result, answer, explain("global_service", answer))
    assert result.hint == hints("global_service")[0]
    sentence = f"{answer} tasks"
    wrong_answer(run_check("global_service", lab, sentence), sentence, explain("global_service", answer))


def test_global_service_other_and_missing_answers():
    lab, _ = agent_lab()
    wrong_answer(run_check("global_service", lab, "4"), "4")
    failed(run_check("global_service", lab, None), "Predict, run the command(s), then answer: How many tasks")


def test_global_service_counts_only_active_ready_nodes():
    """worker2 drained: the right answer is 2, not the explanation of 2."""
    lab, _ = agent_lab(on=("manager1", "worker1"))
    lab.availability("worker2", "drain")
    assert answer_of("global_service", lab) == "2"
    result = run_check("global_service", lab, "2")
    passed(result, "Right: 2.")
    assert result.evidence[0] == "active, ready nodes: manager1, worker1"
    wrong_answer(run_check("global_service", lab, "3"), "3")


def test_global_service_node_down_is_not_eligible():
    lab = swarm_lab(joined=("worker1",))
    lab.join("worker2", lab.swarm, state="down")
    lab.service("agent", on=("manager1", "worker1"), mode="global", at=100)
    assert answer_of("global_service", lab) == "2"
    passed(run_check("global_service", lab, "2"))


def test_global_service_replicated_instead_of_global():
    lab, _ = agent_lab(on=("worker1",), mode="replicated")
    result = run_check("global_service", lab, "3")
    failed(result, "agent is a replicated service, not a global one.",
           hint="Remove it and create it with `--mode global`.")
    assert result.evidence == ()


def test_global_service_starting_its_tasks_is_pending_whatever_the_answer():
    lab, agent = agent_lab(on=("manager1", "worker1"))
    lab.task(agent, "worker2", 0, state="preparing", at=101)
    for answer in ("3", "1", None):
        result = run_check("global_service", lab, answer)
        failed(result, "agent is starting its tasks.", hint="Wait a moment.", pending=True)
        assert result.evidence[1] == "agent tasks: 1 on manager1, 1 on worker1"


# --- join-later -----------------------------------------------------------------------------------


def test_global_join_later_passes():
    lab, _ = rejoined_lab()
    result = run_check("global_join_later", lab)
    passed(result, "The new worker2 got its agent task without anyone asking.")
    assert result.evidence == ("worker2 joined at 12:03:20, after agent was created (12:01:40)",
                               "agent tasks: 1 on manager1, 1 on worker1, 1 on worker2")


def test_global_join_later_timestamps_as_the_engine_trims_them():
    """Go's RFC 3339 drops trailing zeros of the nanoseconds (all of them, and the dot, when they are 0)."""
    lab, agent = rejoined_lab()
    agent["CreatedAt"] = "2024-05-01T12:01:40.5Z"
    lab.swarm.node("worker2")["CreatedAt"] = "2024-05-01T12:03:20Z"
    passed(run_check("global_join_later", lab))
    lab.swarm.node("worker2")["CreatedAt"] = "2024-05-01T12:01:40.46Z"  # 40 ms before agent
    failed(run_check("global_join_later", lab), "worker2 joined before agent was created")


def test_global_join_later_worker2_never_left():
    lab, _ = agent_lab()
    result = run_check("global_join_later", lab)
    failed(result, "worker2 joined before agent was created: it is not a node that joined later.",
           hint=hints("global_join_later")[0])
    assert result.evidence == ("worker2 joined 2024-05-01T12:00:00", "agent created 2024-05-01T12:01:40")


def test_global_join_later_worker2_left_and_removed_not_rejoined():
    lab, agent = agent_lab()
    worker2_left(lab, agent)
    lab.remove_node("worker2")
    result = run_check("global_join_later", lab)
    failed(result, "worker2 is not a Ready member of the swarm.", hint=hints("global_join_later")[0])
    assert result.evidence == ()


def test_global_join_later_worker2_left_is_down_is_pending():
    lab, agent = agent_lab()
    worker2_left(lab, agent)
    failed(run_check("global_join_later", lab), "worker2 is not a Ready member of the swarm.",
           hint=hints("global_join_later")[0], pending=True)


def test_global_join_later_no_agent_task_on_the_new_worker2_yet_is_pending():
    lab, agent = rejoined_lab(agent_task=False)
    result = run_check("global_join_later", lab)
    failed(result, "agent has no task on the new worker2 yet.", hint="Wait.", pending=True)
    assert result.evidence[1] == "agent tasks: 1 on manager1, 1 on worker1"
    lab.task(agent, "worker2", 0, state="starting", at=201)
    failed(run_check("global_join_later", lab), "agent has no task on the new worker2 yet.", pending=True)


def test_global_join_later_missing_or_replicated_agent():
    lab, _ = agent_lab(on=("worker1",), mode="replicated")
    failed(run_check("global_join_later", lab), "agent is a replicated service, not a global one.",
           hint="`--mode global`")


def test_global_join_later_old_worker2_entry_still_listed():
    lab, agent = agent_lab()
    worker2_left(lab, agent)
    old = lab.swarm.node("worker2")
    lab.join("worker2", lab.swarm, at=200)
    lab.task(agent, "worker2", 0, at=201)
    lab.swarm.nodes.remove(old)
    lab.swarm.nodes.append(old)  # the engine lists nodes in id order, not in joining order
    result = run_check("global_join_later", lab)
    assert "not a Ready member" not in result.summary, result


# --- the fake follows the engine --------------------------------------------------------------------


def test_the_fake_records_placement_as_the_engine_shows_it():
    lab, pinger = labelled_lab()
    spec = pinger["Spec"]["TaskTemplate"]
    assert spec["Placement"]["Constraints"] == [WORKERS, SSD] and spec["ForceUpdate"] == 0
    assert lab.swarm.node("worker2")["Spec"]["Labels"] == {"disk": "ssd"}
    assert pinger["CreatedAt"] == stamp(10) and stamp(10).endswith(".000000123Z")
    lab.update_service(pinger, at=40, constraint_rm=[WORKERS, SSD])
    assert "Constraints" not in spec["Placement"]
    _, agent = agent_lab()
    assert agent["Spec"]["Mode"] == {"Global": {}}


# --- scale-in -------------------------------------------------------------------------------------


def test_scaled_in_passes():
    lab, _ = scaled_in_lab()
    result = run_check("scaled_in", lab)
    passed(result, "pinger scaled in to one task.")
    assert result.evidence == ("pinger asks for 1 replica(s); running: 1 on worker1",)


@pytest.mark.parametrize("replicas", [3, 2, 0])
def test_scaled_in_not_to_one_replica(replicas):
    lab, pinger = rebalanced_lab()
    if replicas != 3:
        lab.scale(pinger, replicas, at=300)
    result = run_check("scaled_in", lab)
    failed(result, f"pinger asks for {replicas} replica(s); this step scales it in to 1.",
           hint=hints("scaled_in")[0])
    assert result.evidence == (f"pinger asks for {replicas} replica(s); running: 2 on worker1, 1 on worker2",)


@pytest.mark.parametrize(("stopped", "spread"), [(0, "2 on worker1, 1 on worker2"), (1, "2 on worker1")])
def test_scaled_in_extra_tasks_stopping_is_pending(stopped, spread):
    lab, _ = scaled_in_lab(stopped=stopped)
    result = run_check("scaled_in", lab)
    failed(result, "pinger's extra tasks are stopping.", pending=True, hint="Wait a moment.")
    assert result.evidence == (f"pinger asks for 1 replica(s); running: {spread}",)


def test_scaled_in_the_last_task_not_running_is_pending():
    """Scaled in, and the one task left is being replaced (its node failed): none running for a moment."""
    lab, pinger = scaled_in_lab()
    last = next(t for t in lab.tasks(pinger) if t["DesiredState"] == "running")
    lab.fail(last, at=310)
    lab.task(pinger, "worker2", last["Slot"], state="preparing", at=311)
    result = run_check("scaled_in", lab)
    failed(result, "pinger's extra tasks are stopping.", pending=True)
    assert result.evidence == ("pinger asks for 1 replica(s); running: none",)


# --- spread --------------------------------------------------------------------------------------


def spread_lab(zones: tuple[str | None, str | None] = ("east", "west"), pref: bool = True, replicas: int = 4,
               on: tuple[str, ...] = ("worker1", "worker2", "worker1", "worker2")) -> tuple[FakeLab, Json]:
    """spread: worker1 and worker2 labelled with ZONES, pinger with a spread preference on node.labels.zone
    (when PREF), REPLICAS replicas, its tasks running on ON."""
    lab, pinger = rebalanced_lab()
    for node, zone in zip(("worker1", "worker2"), zones, strict=True):
        if zone:
            lab.label(node, "zone", zone)
    if pref:
        pinger["Spec"]["TaskTemplate"]["Placement"]["Preferences"] = [
            {"Spread": {"SpreadDescriptor": "node.labels.zone"}}]
    lab.scale(pinger, replicas, at=60)
    lab.move(pinger, list(on), at=61)
    return lab, pinger


def test_spread_pref_passes_with_two_tasks_in_each_zone():
    lab, _ = spread_lab()
    result = run_check("spread_pref", lab)
    passed(result, "pinger's 4 tasks are spread evenly over the two zones: 2 in each.")
    assert result.evidence == ("zones: worker1 east, worker2 west", "placement preferences: spread node.labels.zone",
                               "tasks: 2 on worker1, 2 on worker2")


@pytest.mark.parametrize("zones", [(None, None), ("east", None), ("east", "east")])
def test_spread_pref_needs_two_different_zones(zones):
    lab, _ = spread_lab(zones=zones)
    failed(run_check("spread_pref", lab), "worker1 and worker2 are not in two different zones.",
           hint="`docker node update --label-add zone=east worker1`")


def test_spread_pref_without_the_preference():
    lab, _ = spread_lab(pref=False, replicas=3, on=("worker1", "worker2", "worker1"))
    failed(run_check("spread_pref", lab), "pinger has no preference to spread its tasks over the zones.",
           hint="--placement-pref-add spread=node.labels.zone")


def test_spread_pref_with_another_replica_count():
    lab, _ = spread_lab(replicas=3, on=("worker1", "worker2", "worker1"))
    failed(run_check("spread_pref", lab), "pinger asks for 3 replica(s); this step uses 4.",
           hint="`docker service update --replicas 4 pinger`.")


def test_spread_pref_uneven_while_tasks_move_is_pending():
    lab, _ = spread_lab(on=("worker1", "worker1", "worker1", "worker2"))
    failed(run_check("spread_pref", lab), "pinger's tasks are being spread over the zones.", pending=True)


def test_label_constraint_waits_for_the_update_to_finish_before_the_next_one_races_it():
    """Every task on worker2, but Swarm still watching the last one: the learner's next `service update`
    would race the updater's own writes ("update out of sequence"), so the step is not done yet."""
    lab, pinger = labelled_lab()
    pinger["UpdateStatus"] = {"State": "updating", "Message": "update in progress"}
    failed(run_check("label_constraint", lab), "Every task runs on worker2; Swarm is finishing the update.",
           pending=True)
    pinger["UpdateStatus"] = {"State": "completed", "Message": "update completed"}
    passed(run_check("label_constraint", lab))
