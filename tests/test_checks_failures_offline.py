"""The checks of lab node-failure (labkit/checks/failures.py) through each of their outcomes, on the fake
cluster of tests/fakes.py, with the steps, hints and explanations of labs/11-node-failure.toml. The scenes
follow the lab: pinger on every node, worker2 powered off (marked Down, its task re-created elsewhere) and
on again, worker1 cut off the network (its old task still running beside the replacement) and back.
That the runner skips its node-down verdict for a step's `nodes_down` is the runner's business, not here.
"""

from __future__ import annotations

import pytest

from labkit.checks import CHECKS, Context
from tests.fakes import FakeLab, Json, swarm_lab
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

FAILURE_CHECKS = ["spread_service", "node_down", "node_back", "partitioned", "partition_healed"]
ALL_NODES = ("manager1", "worker1", "worker2")


# --- scenes, in the lab's order -------------------------------------------------------------------


def spread_lab(on: tuple[str, ...] = ALL_NODES, replicas: int = 3) -> tuple[FakeLab, Json]:
    """service done: pinger, created at 10 s, a task on each node of ON."""
    lab = swarm_lab()
    return lab, lab.service("pinger", replicas=replicas, on=on, args=("ping", "manager1"), at=10)


def lost_task(lab: FakeLab, pinger: Json, node: str) -> Json:
    """The managers gave up NODE's task (desired shutdown); nothing reached the node, so it still reports
    its last state, running."""
    task = next(t for t in lab.tasks(pinger) if lab.node_of(t).name == node and t["DesiredState"] == "running")
    task["DesiredState"] = "shutdown"
    return task


def powered_off_lab(down_at: float | None = 30, replaced_at: float | None = 35.5) -> tuple[FakeLab, Json]:
    """power-off done: worker2 stopped at 20 s, marked Down at DOWN_AT, its task re-created on worker1 at
    REPLACED_AT (None: not yet)."""
    lab, pinger = spread_lab()
    lab.stop_node("worker2")
    if down_at is not None:
        lab.mark_node("worker2", "down", at=down_at)
    if replaced_at is not None:
        old = lost_task(lab, pinger, "worker2")
        lab.task(pinger, "worker1", old["Slot"], at=replaced_at)
    return lab, pinger


def powered_on_lab(ready: bool = True) -> tuple[FakeLab, Json]:
    """power-on done: worker2 started again at 60 s (its old container gone with the reboot), Ready at 65 s."""
    lab, pinger = powered_off_lab()
    lab.start_node("worker2")
    lab["worker2"].engine.containers.clear()
    if ready:
        lab.mark_node("worker2", "ready", at=65)
    return lab, pinger


def partitioned_lab(down_at: float | None = 90, replaced_at: float | None = 96.25) -> tuple[FakeLab, Json, Json]:
    """partition done: worker1 (running a task of slot 1, by then) cut off at 80 s, marked Down at DOWN_AT,
    its task re-created on worker2 at REPLACED_AT; worker1's engine still runs its old container."""
    lab, pinger = spread_lab()
    lab["worker1"].network = "disconnected"
    if down_at is not None:
        lab.mark_node("worker1", "down", at=down_at)
    old = next(t for t in lab.tasks(pinger) if lab.node_of(t).name == "worker1")
    if replaced_at is not None:
        lost_task(lab, pinger, "worker1")
        lab.task(pinger, "worker2", old["Slot"], at=replaced_at)
    return lab, pinger, old


def healed_lab(ready: bool = True, stale_stopped: bool = True) -> tuple[FakeLab, Json]:
    """reconnect done: worker1 back on the network, Ready at 120 s; it stopped its stale copy."""
    lab, pinger, old = partitioned_lab()
    lab["worker1"].network = "connected"
    if ready:
        lab.mark_node("worker1", "ready", at=120)
    if stale_stopped:
        lab.remove_container(old)
        old["Status"] |= {"State": "shutdown", "Message": "shutdown"}
    return lab, pinger


# --- every check: a swarm, and pinger --------------------------------------------------------------


@pytest.mark.parametrize("name", FAILURE_CHECKS)
def test_no_pinger(name):
    lab = swarm_lab()
    lab.service("web", replicas=3, on=ALL_NODES, image="nginx:1.25", args=())
    result = CHECKS[name](Context(lab.cluster, step_for(name), "3"))
    failed(result, "There is no service called pinger yet.")
    assert result.hint == hints(name)[0]


# --- node-failure:service ----------------------------------------------------------------------------


def test_spread_service_passes():
    result = run_check("spread_service", spread_lab()[0])
    passed(result, "pinger runs one task on each node.")
    assert result.evidence == ("pinger tasks on: manager1, worker1, worker2",)


def test_spread_service_starting_is_pending():
    lab, pinger = spread_lab(on=("manager1", "worker1"))
    lab.task(pinger, "worker2", 3, state="starting")
    result = run_check("spread_service", lab)
    failed(result, "pinger's tasks are starting.", pending=True, hint="Wait a moment.")
    assert result.evidence == ("pinger tasks on: manager1, worker1", "pinger.3 on worker2: starting")


def test_spread_service_two_tasks_on_one_node_is_pending():
    failed(run_check("spread_service", spread_lab(on=("manager1", "worker1", "worker1"))[0]),
           "pinger's tasks are starting.", pending=True)


def test_spread_service_one_replica_is_told_not_pending():
    result = run_check("spread_service", spread_lab(on=("manager1",), replicas=1)[0])
    assert not result.pending and "3" in result.summary, result


# --- node-failure:power-off --------------------------------------------------------------------------


def test_node_down_three_tasks_run_and_how_long_it_took():
    lab, _ = powered_off_lab()
    assert answer_of("node_down", lab) == "3"
    for answer in ("3", "three", "3 tasks", "Three."):
        passed(run_check("node_down", lab, answer), "Right:")
    assert run_check("node_down", lab, "3").evidence == (
        "nodes: manager1 ready, worker1 ready, worker2 down", "pinger tasks running on: manager1, worker1, worker1",
        "worker2 marked Down at 12:00:30; its task re-created on worker1, running at 12:00:35 (5.5 s after)")


def test_node_down_two_is_explained():
    lab, _ = powered_off_lab()
    result = run_check("node_down", lab, "2")
    wrong_answer(result, "2", explain("node_down", "2"))
    assert result.hint == hints("node_down")[0]
    wrong_answer(run_check("node_down", lab, "4"), "4")
    failed(run_check("node_down", lab, None), "Predict, run the command(s), then answer: While worker2 is down")


def test_node_down_worker2_still_running():
    lab, _ = spread_lab()
    result = run_check("node_down", lab, "3")
    failed(result, "worker2 is still running.", hint=hints("node_down")[0])
    assert result.evidence == ("nodes: manager1 ready, worker1 ready, worker2 ready",
                               "pinger tasks running on: manager1, worker1, worker2")


def test_node_down_stopped_but_not_marked_down_yet_is_pending():
    lab, _ = powered_off_lab(down_at=None, replaced_at=None)
    failed(run_check("node_down", lab, "3"), "The managers have not marked worker2 Down yet (ready): they wait for "
           "missed heartbeats.", pending=True, hint="Watch `docker node ls`.")


def test_node_down_engine_not_answering_counts_as_failed():
    lab, _ = spread_lab()
    lab["worker2"].engine.answers = False  # its machine runs, its engine does not answer
    failed(run_check("node_down", lab, "3"), "The managers have not marked worker2 Down yet", pending=True)


def test_node_down_task_not_recreated_yet_is_pending():
    lab, pinger = powered_off_lab(replaced_at=None)
    failed(run_check("node_down", lab, "3"), "worker2 is Down; the orchestrator is re-creating its task elsewhere.",
           pending=True, hint="Watch the map.")
    lost_task(lab, pinger, "worker2")
    failed(run_check("node_down", lab, "3"), "worker2 is Down; the orchestrator is re-creating", pending=True)


def test_node_down_replacement_starting_is_pending():
    lab, pinger = powered_off_lab(replaced_at=None)
    old = lost_task(lab, pinger, "worker2")
    lab.task(pinger, "worker1", old["Slot"], state="starting", at=35)
    failed(run_check("node_down", lab, "3"), "the orchestrator is re-creating its task elsewhere", pending=True)


def test_node_down_the_replacement_is_the_latest_task_whatever_the_order():
    lab, _ = powered_off_lab(down_at=30, replaced_at=31.25)
    lab.swarm.tasks.reverse()
    assert "(1.2 s after)" in run_check("node_down", lab, "3").evidence[2]


# --- node-failure:power-on -----------------------------------------------------------------------------


def test_node_back_no_task_moves_back():
    lab, _ = powered_on_lab()
    assert answer_of("node_back", lab) == "no"
    for answer in ("no", "No, they stay.", "they stay"):
        passed(run_check("node_back", lab, answer), "Right:")
    assert run_check("node_back", lab, "no").evidence == (
        "nodes: manager1 ready, worker1 ready, worker2 ready", "pinger tasks running on: manager1, worker1, worker1",
        "Swarm does not move running tasks to a node that comes back")


def test_node_back_yes_is_explained():
    lab, _ = powered_on_lab()
    result = run_check("node_back", lab, "yes")
    wrong_answer(result, "yes", explain("node_back", "yes"))
    assert result.hint == hints("node_back")[0]
    failed(run_check("node_back", lab, None), "Predict, run the command(s), then answer: When worker2 is Ready")


def test_node_back_still_stopped():
    lab, _ = powered_off_lab()
    result = run_check("node_back", lab, "no")
    failed(result, "worker2 is not Ready yet.", hint=hints("node_back")[0])
    assert not result.pending


def test_node_back_started_not_ready_yet_is_pending():
    lab, _ = powered_on_lab(ready=False)
    failed(run_check("node_back", lab, "no"), "worker2 is not Ready yet.", pending=True)


# --- node-failure:partition ------------------------------------------------------------------------------


def test_partitioned_four_containers_across_the_engines():
    lab, _, _ = partitioned_lab()
    assert answer_of("partitioned", lab) == "4"
    for answer in ("4", "4 containers", "4."):
        passed(run_check("partitioned", lab, answer), "Right:")
    assert run_check("partitioned", lab, "4").evidence == (
        "nodes: manager1 ready, worker1 down, worker2 ready", "pinger tasks running on: manager1, worker2, worker2",
        "worker1 marked Down at 12:01:30; its task re-created on worker2, running at 12:01:36 (6.2 s after)",
        "containers of pinger, as each engine reports: manager1 1, worker1 1, worker2 2",
        "worker1 cannot hear the managers, so it keeps its task running: two copies of one slot")


def test_partitioned_three_is_explained():
    lab, _, _ = partitioned_lab()
    result = run_check("partitioned", lab, "3")
    wrong_answer(result, "3", explain("partitioned", "3"))
    assert result.hint == hints("partitioned")[0]
    wrong_answer(run_check("partitioned", lab, "2"), "2")


def test_partitioned_still_on_the_network():
    lab, _ = spread_lab()
    failed(run_check("partitioned", lab, "4"), "worker1 is still on the lab network.", hint=hints("partitioned")[0])


def test_partitioned_stopped_instead_of_disconnected_is_still_on_the_network():
    """The partition step looks at the network: a stopped worker1 is no partition."""
    lab, _ = spread_lab()
    lab.stop_node("worker1")
    failed(run_check("partitioned", lab, "4"), "worker1 is still on the lab network.")


def test_partitioned_cut_off_not_marked_down_yet_is_pending():
    lab, _, _ = partitioned_lab(down_at=None, replaced_at=None)
    failed(run_check("partitioned", lab, "4"), "The managers have not marked worker1 Down yet (ready)", pending=True)


def test_partitioned_not_replaced_yet_is_pending():
    lab, _, _ = partitioned_lab(replaced_at=None)
    failed(run_check("partitioned", lab, "4"), "worker1 is Down; the orchestrator is re-creating its task elsewhere.",
           pending=True)


def test_partitioned_old_task_gone_from_worker1():
    lab, _, old = partitioned_lab()
    lab.remove_container(old)
    result = run_check("partitioned", lab, "3")
    failed(result, "worker1 no longer runs its old task.",
           hint="Was worker1 stopped instead of disconnected? `labkit node disconnect worker1`.")
    assert "containers of pinger, as each engine reports: manager1 1, worker1 0, worker2 2" in result.evidence
    assert answer_of("partitioned", lab) == "3"


def test_partitioned_counts_only_running_containers_of_pinger():
    lab, _, _ = partitioned_lab()
    lab.run_container("worker2", ["ping", "manager1"], name="plain-pinger")  # no service label: not pinger's
    lab.service("other", on=("manager1",))
    assert answer_of("partitioned", lab) == "4"


# --- node-failure:reconnect -------------------------------------------------------------------------------


def test_partition_healed_passes():
    lab, _ = healed_lab()
    result = run_check("partition_healed", lab)
    passed(result, "worker1 is back and its stale copy is gone: 3 containers for 3 replicas.")
    assert result.evidence == ("nodes: manager1 ready, worker1 ready, worker2 ready",
                               "containers of pinger: manager1 1, worker1 0, worker2 2")


def test_partition_healed_not_ready_yet_is_pending():
    lab, _ = healed_lab(ready=False, stale_stopped=False)
    failed(run_check("partition_healed", lab), "worker1 is not Ready yet.", pending=True,
           hint=hints("partition_healed")[0])


def test_partition_healed_stale_copy_still_running_is_pending():
    lab, _ = healed_lab(stale_stopped=False)
    result = run_check("partition_healed", lab)
    failed(result, "worker1 is back; the managers are stopping its stale task.", pending=True,
           hint="Wait a moment: the old copy is shut down")
    assert result.evidence[1] == "containers of pinger: manager1 1, worker1 1, worker2 2"


def test_the_fake_node_fails_as_labkit_sees_it():
    lab, _ = spread_lab()
    worker2 = lab["worker2"]
    assert (worker2.health(), worker2.network_state()) == ("running", "connected")
    lab.stop_node("worker2")
    assert worker2.health() == "stopped"
    lab.start_node("worker2")
    worker2.engine.answers = False
    assert worker2.health() == "not answering"
    lab["worker1"].network = "disconnected"
    assert (lab["worker1"].health(), lab["worker1"].network_state()) == ("running", "disconnected")
