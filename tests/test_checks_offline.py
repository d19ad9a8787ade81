"""Every check through each of its outcomes, on a fake cluster (tests/fakes.py): no Docker engine,
milliseconds. The checks run for real; only the engines are fakes, answering like the real ones.
Each step, with its hints, comes from labs/*.toml exactly as learners see it. The real-cluster
tests prove the integration; these prove each branch says what it should.
"""

from __future__ import annotations

import ast
from dataclasses import replace
from datetime import timedelta
from functools import cache
from pathlib import Path

import docker.errors
import pytest

from labkit.checks import ANSWERS, CHECKS, Context, Result
from labkit.labs import Step
from labkit.runner import course
from tests.fakes import (
    CA_CERT,
    ISSUED,
    NODE_CERT,
    RAFT_DIR,
    FakeLab,
    ca_digest,
    fake_pem,
    openssl_dates,
    ping_lab,
    swarm_lab,
)

LABS_DIR = Path(__file__).resolve().parent.parent / "labs"
ALL_NODES = ("manager1", "worker1", "worker2")
# Checks that no step names (in that lab), and the step's check that runs them: a prediction step first
# checks the cluster with the check it wraps, then judges the answer. task_node_answer is registered but
# unused; it is tested on the step it used to have.
WRAPPED_BY = {"ping_service": "scale_prediction", "self_healed": "self_heal_prediction",
              "service_removed": "cleanup_prediction", "task_node_answer": "manager_runs_tasks"}


@pytest.fixture(autouse=True)
def no_real_engine(monkeypatch):
    """A real Docker client made here would be a mistake: it fails the test, whatever engine runs."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a real docker.APIClient was created in an offline test")

    monkeypatch.setattr(docker.APIClient, "__init__", refuse)


@cache
def steps() -> tuple[Step, ...]:
    return tuple(step for lab in course(LABS_DIR) for step in lab.steps)


def step_for(check: str, lab: str | None = None) -> Step:
    """The step of labs/ that uses CHECK (in LAB, when several do); for a check that a step's own check
    wraps (WRAPPED_BY), that step with CHECK in its place: same params, hints, question and explanations."""
    found = [s for s in steps() if s.check == check and lab in (None, s.lab)]
    if not found and check in WRAPPED_BY:
        found = [replace(step_for(WRAPPED_BY[check], lab), check=check)]
    assert len(found) == 1, f"{len(found)} steps use check {check!r} in lab {lab!r}"
    return found[0]


def run_check(name: str, lab: FakeLab, answer: str | None = None, in_lab: str | None = None) -> Result:
    return CHECKS[name](Context(lab.cluster, step_for(name, in_lab), answer))


def answer_of(name: str, lab: FakeLab, in_lab: str | None = None) -> str:
    return ANSWERS[name](Context(lab.cluster, step_for(name, in_lab)))


def hints(name: str, in_lab: str | None = None) -> tuple[str, ...]:
    return step_for(name, in_lab).hints


def explain(name: str, answer: str) -> str:
    """The step's (labs/*.toml) explanation of a likely wrong ANSWER."""
    return step_for(name).explain[answer]


def passed(result: Result, *words: str) -> None:
    assert result.passed and not result.pending, result
    for word in words:
        assert word in result.summary, result.summary


def failed(result: Result, summary: str, hint: str | None = None, pending: bool = False) -> None:
    """Not passed; pending as given; SUMMARY and HINT are parts of what the learner reads."""
    assert (result.passed, result.pending) == (False, pending), result
    assert summary in result.summary, result.summary
    if hint is not None:
        assert result.hint is not None and hint in result.hint, result.hint


def wrong_answer(result: Result, answer: str, why: str | None = None) -> None:
    """ANSWER judged wrong, with WHY (an explanation of a likely wrong answer), or else told to look again."""
    if why is None:
        failed(result, f"'{answer}' is not what the cluster says. Look again: ")
    else:
        failed(result, f"'{answer}' is not what the cluster says: {why}")
    assert result.evidence == (), "evidence would give the answer away"


def foreign_swarm_on_worker1(lab: FakeLab) -> None:
    """`docker swarm init` ran on worker1: it leads a swarm of its own."""
    lab.init("worker1")


# --- swarm-init:info ------------------------------------------------------------------------------


def test_swarm_state_answer_inactive_before_init():
    lab = FakeLab()
    result = run_check("swarm_state_answer", lab, "Inactive.")
    passed(result, "Right: Inactive")
    assert result.evidence == ("manager1: Swarm: inactive",)
    assert answer_of("swarm_state_answer", lab) == "inactive"


def test_swarm_state_answer_after_init_accepts_active_and_the_earlier_inactive():
    lab = swarm_lab()
    passed(run_check("swarm_state_answer", lab, "active"), "Right: active")
    passed(run_check("swarm_state_answer", lab, "inactive"), "Right: inactive")
    assert answer_of("swarm_state_answer", lab) == "active"


def test_swarm_state_answer_wrong_and_missing():
    lab = FakeLab()
    result = run_check("swarm_state_answer", lab, "yes")
    wrong_answer(result, "yes")
    assert result.hint == hints("swarm_state_answer")[0]
    failed(run_check("swarm_state_answer", lab, "  "), "Run the command(s), then answer: What does the `Swarm:`")
    failed(run_check("swarm_state_answer", lab, None), "Run the command(s), then answer")


# --- swarm-init:init ------------------------------------------------------------------------------


def test_swarm_initialised_inactive():
    result = run_check("swarm_initialised", FakeLab())
    failed(result, "Swarm mode is still inactive on manager1")
    assert result.hint == hints("swarm_initialised")[0]
    assert result.evidence == ("manager1: Swarm: inactive",)


def test_swarm_initialised_pending():
    lab = FakeLab()
    lab["manager1"].engine.local_state = "pending"
    failed(run_check("swarm_initialised", lab), "manager1 is still joining or creating a swarm", pending=True)


def test_swarm_initialised_manager1_joined_as_a_worker():
    lab = FakeLab()
    foreign_swarm_on_worker1(lab)
    lab.join("manager1", lab["worker1"].engine.swarm)  # type: ignore[arg-type]
    failed(run_check("swarm_initialised", lab), "manager1 is in a swarm, but as a worker",
           hint="On manager1 run `docker swarm leave --force`, then `docker swarm init`")


def test_swarm_initialised_init_ran_on_a_worker():
    lab = FakeLab()
    foreign_swarm_on_worker1(lab)
    result = run_check("swarm_initialised", lab)
    failed(result, "Swarm mode is active on worker1, but not on manager1",
           hint="`docker swarm init` ran on worker1, so worker1 leads a swarm of its own")
    assert "On worker1 run `docker swarm leave --force`" in (result.hint or "")
    assert result.evidence == ("worker1: leads its own swarm",)


def test_swarm_initialised_manager_not_leader_yet_is_pending():
    lab = swarm_lab()
    lab.swarm.set_leader(None)
    result = run_check("swarm_initialised", lab)
    failed(result, "manager1 is a manager but not the leader yet", pending=True)
    assert "manager1: Swarm: active, manager, not the leader" in result.evidence


def test_swarm_initialised_manager1_joined_another_nodes_swarm_as_a_manager():
    """Not pending: worker1 leads, and manager1 will never become leader by waiting."""
    lab = FakeLab()
    foreign_swarm_on_worker1(lab)
    lab.join("manager1", lab["worker1"].engine.swarm, role="manager")  # type: ignore[arg-type]
    result = run_check("swarm_initialised", lab)
    failed(result, "worker1 leads the swarm; manager1 joined it instead of creating it",
           hint="on every node run `docker swarm leave --force`, then `docker swarm init` on manager1")
    assert not result.pending


def test_swarm_initialised_leader_passes():
    lab = swarm_lab(joined=())
    result = run_check("swarm_initialised", lab)
    passed(result, "Swarm mode is active and manager1 is its leader")
    assert result.evidence == ("manager1: Swarm: active, manager, Leader", f"swarm id {lab.swarm.id[:12]}")


# --- nodes:node-ls --------------------------------------------------------------------------------


def test_leader_answer_not_initialised():
    failed(run_check("leader_answer", FakeLab(), "manager1"), "Swarm mode is not active on manager1 yet",
           hint="Run `docker swarm init` on manager1 first")


def test_leader_answer_right():
    lab = swarm_lab()
    result = run_check("leader_answer", lab, "Manager1.")
    passed(result, "Right: Manager1")
    assert result.evidence[0] == "3 node(s) in the swarm"
    assert "manager1: manager, ready, Leader" in result.evidence
    assert "worker1: worker, ready" in result.evidence
    assert answer_of("leader_answer", lab) == "manager1"


def test_leader_answer_wrong():
    lab = swarm_lab()
    result = run_check("leader_answer", lab, "worker1")
    wrong_answer(result, "worker1")
    assert result.hint == hints("leader_answer")[0]


def test_leader_answer_follows_the_leader():
    lab = FakeLab(managers=2)
    swarm = lab.init("manager1")
    lab.join("manager2", swarm, role="manager")
    swarm.set_leader("manager2")
    assert answer_of("leader_answer", lab) == "manager2"
    passed(run_check("leader_answer", lab, "manager2"))
    wrong_answer(run_check("leader_answer", lab, "manager1"), "manager1")


# --- nodes:join -----------------------------------------------------------------------------------


def test_workers_joined_not_initialised():
    failed(run_check("workers_joined", FakeLab()), "Swarm mode is not active on manager1 yet")


def test_workers_joined_one_missing():
    result = run_check("workers_joined", swarm_lab(joined=("worker1",)))
    failed(result, "worker2 has not joined yet.", hint=hints("workers_joined")[0])
    assert "worker1: worker, ready" in result.evidence


def test_workers_joined_both_missing():
    failed(run_check("workers_joined", swarm_lab(joined=())), "worker1 and worker2 have not joined yet.")


def test_workers_joined_as_a_manager():
    lab = swarm_lab(joined=("worker2",))
    lab.join("worker1", lab.swarm, role="manager")
    result = run_check("workers_joined", lab)
    failed(result, "worker1 joined as a manager, not as a worker.", hint="`docker node demote worker1`")
    assert "That was the manager token" in (result.hint or "")


def test_workers_joined_worker_leads_a_swarm_of_its_own():
    lab = swarm_lab(joined=("worker2",))
    foreign_swarm_on_worker1(lab)
    failed(run_check("workers_joined", lab), "worker1 leads a swarm of its own instead of joining this one.",
           hint="`docker swarm init` ran on worker1")


def test_workers_joined_not_ready_is_pending():
    lab = swarm_lab(joined=("worker1",))
    lab.join("worker2", lab.swarm, state="down")
    failed(run_check("workers_joined", lab), "worker2 joined but is not Ready yet.", pending=True)


def test_workers_joined_passes():
    result = run_check("workers_joined", swarm_lab())
    passed(result, "3 nodes are Ready: worker1, worker2 as workers.")
    assert result.evidence == ("manager1: manager, ready", "worker1: worker, ready", "worker2: worker, ready")



# --- nodes:worker-view ----------------------------------------------------------------------------


def test_worker_view_answer_an_error_is_right():
    lab = swarm_lab()
    assert answer_of("worker_view_answer", lab) == "an error"
    result = run_check("worker_view_answer", lab, "An error.")
    passed(result, "Right: An error.")
    assert result.evidence == ("worker1$ docker node ls: Error response from daemon: This node is not a swarm manager. "
                               "Worker nodes can't be used to view or modify cluster state. Please run this command "
                               "on a manager node or promote the current node to a manager.",
                               "worker1 is in the swarm (Swarm: active) but is not a manager")
    for answer in ("error", "It fails", "not a swarm manager", "This node is not a swarm manager."):
        passed(run_check("worker_view_answer", lab, answer), "Right:")


def test_worker_view_answer_the_list_is_explained():
    lab = swarm_lab()
    result = run_check("worker_view_answer", lab, "the list of nodes")
    wrong_answer(result, "the list of nodes", explain("worker_view_answer", "list"))
    assert "a worker answers `This node is not a swarm manager`" in result.summary
    assert result.hint == hints("worker_view_answer")[0]
    wrong_answer(run_check("worker_view_answer", lab, "nodes"), "nodes", explain("worker_view_answer", "nodes"))
    wrong_answer(run_check("worker_view_answer", lab, "nothing"), "nothing")
    failed(run_check("worker_view_answer", lab, ""), "Predict, run the command(s), then answer: What will `docker")


def test_worker_view_answer_worker1_not_joined_yet():
    result = run_check("worker_view_answer", swarm_lab(joined=("worker2",)), "an error")
    failed(result, "worker1 is not in the swarm: this step looks at a worker.",
           hint="Join worker1 as a worker first (lab nodes, step join).")


def test_worker_view_answer_worker1_joined_as_a_manager():
    lab = swarm_lab(joined=("worker2",))
    lab.join("worker1", lab.swarm, role="manager")
    failed(run_check("worker_view_answer", lab, "an error"), "worker1 is a manager: this step looks at a worker.")


# --- first-service:create, scale:replicas ---------------------------------------------------------


def test_ping_service_not_initialised():
    failed(run_check("ping_service", FakeLab(), in_lab="first-service"), "Swarm mode is not active on manager1")


def test_ping_service_none_yet():
    result = run_check("ping_service", swarm_lab(), in_lab="first-service")
    failed(result, "No service runs `alpine ping` yet.")
    assert result.hint == hints("ping_service", "first-service")[0]


def test_ping_service_a_plain_docker_run_container_instead():
    lab = swarm_lab()
    lab.run_container("manager1", ["ping", "manager1"])
    result = run_check("ping_service", lab, in_lab="first-service")
    failed(result, "No service runs alpine ping, but a plain container does.",
           hint="`docker run` starts one container that Swarm does not manage")
    assert result.evidence == ("manager1: a container from `docker run`",)


def test_ping_service_ignores_task_containers_and_other_commands():
    lab, pinger = ping_lab()
    lab.run_container("worker1", ["sleep", "1000"])
    lab.remove_service(pinger, stopping=True)  # its task container is still there, labelled
    failed(run_check("ping_service", lab, in_lab="first-service"), "No service runs `alpine ping` yet.")


def test_ping_service_a_container_without_cmd_does_not_break_it():
    lab = swarm_lab()
    lab.run_container("worker1", None, name="from-entrypoint")
    failed(run_check("ping_service", lab, in_lab="first-service"), "No service runs `alpine ping` yet.")


def test_ping_service_two_ping_services():
    lab, _ = ping_lab()
    lab.service(name="eager_curie", on=("worker1",))
    failed(run_check("ping_service", lab, in_lab="first-service"),
           "There are 2 ping services (pinger, eager_curie); this lab follows one.",
           hint="remove the others with `docker service rm NAME`")


def test_ping_service_other_services_do_not_count():
    lab = swarm_lab()
    lab.service(name="web", args=("nginx", "-g", "daemon off;"), image="nginx:latest")
    lab.service(name="busy", args=("ping", "manager1"), image="busybox:latest")
    failed(run_check("ping_service", lab, in_lab="first-service"), "No service runs `alpine ping` yet.")


def test_ping_service_pings_outside_the_lab():
    lab = swarm_lab()
    lab.service(args=("ping", "outside.invalid"))
    failed(run_check("ping_service", lab, in_lab="first-service"),
           "Service pinger pings outside.invalid, which is not a lab node.",
           hint="This lab has no internet. Remove it (`docker service rm pinger`)")


def test_ping_service_wrong_replica_count():
    lab, _ = ping_lab(replicas=1)
    result = run_check("ping_service", lab, in_lab="scale")
    failed(result, "Service pinger asks for 1 replica(s); this step wants 3.",
           hint="`docker service update pinger --replicas 3` on manager1")
    assert "You asked for" not in (result.hint or "")


def test_ping_service_two_replicas_when_three_are_wanted():
    lab, _ = ping_lab(replicas=2, on=("manager1", "worker1"))
    result = run_check("ping_service", lab, in_lab="scale")
    failed(result, "Service pinger asks for 2 replica(s); this step wants 3.",
           hint="You asked for 2 replicas; this step wants 3. Your service is called pinger")


def test_ping_service_tasks_starting_is_pending():
    lab, pinger = ping_lab(replicas=3, on=("manager1",))
    lab.task(pinger, "worker1", 2, state="preparing")
    lab.task(pinger, "worker2", 3, state="starting")
    result = run_check("ping_service", lab, in_lab="scale")
    failed(result, "1 of 3 tasks of pinger run (preparing, starting).", pending=True,
           hint="`docker service ps` shows their state")
    assert result.evidence == ("service pinger: 1/3 tasks running", "task on manager1")


def test_ping_service_no_task_scheduled_is_pending():
    lab, _ = ping_lab(replicas=1, on=())
    failed(run_check("ping_service", lab, in_lab="first-service"), "0 of 1 tasks of pinger run (none scheduled).",
           pending=True)


def test_ping_service_passes_with_one_replica():
    lab, _ = ping_lab()
    result = run_check("ping_service", lab, in_lab="first-service")
    passed(result, "Service pinger runs 1 task(s).")
    assert result.evidence == ("service pinger: 1/1 tasks running", "task on manager1")


def test_ping_service_passes_with_three_replicas_pinging_an_address():
    lab = swarm_lab()
    lab.service(replicas=3, on=ALL_NODES, args=("ping", lab["manager1"].address))
    result = run_check("ping_service", lab, in_lab="scale")
    passed(result, "Service pinger runs 3 task(s).")
    assert result.evidence[1:] == ("task on manager1", "task on worker1", "task on worker2")


def test_ping_service_counts_only_tasks_meant_to_run():
    lab, pinger = ping_lab(replicas=3, on=ALL_NODES)
    lab.fail(lab.tasks(pinger)[2], at=5)  # worker2's task failed: its old entry must not count
    failed(run_check("ping_service", lab, in_lab="scale"), "2 of 3 tasks of pinger run (none scheduled).",
           pending=True)



# --- scale:replicas (scale_prediction: ping_service with 3 replicas, then where the new tasks landed) ---


def scaled_pingers(on: tuple[str, ...] = ALL_NODES) -> FakeLab:
    """pinger scaled from one task (slot 1, on ON[0]) to three; ON: the nodes of slots 1, 2, 3."""
    return ping_lab(replicas=3, on=on)[0]


def test_scale_prediction_not_scaled_yet_says_what_ping_service_says():
    lab, _ = ping_lab(replicas=1)
    failed(run_check("scale_prediction", lab, "worker1 and worker2"),
           "Service pinger asks for 1 replica(s); this step wants 3.", hint="--replicas 3` on manager1")
    lab, pinger = ping_lab(replicas=3)
    lab.task(pinger, "worker1", 2, state="preparing")
    failed(run_check("scale_prediction", lab, "worker1 and worker2"), "1 of 3 tasks of pinger run (preparing).",
           pending=True)
    failed(run_check("scale_prediction", swarm_lab(), "worker1"), "No service runs `alpine ping` yet.")


def test_scale_prediction_scaled_without_an_answer():
    result = run_check("scale_prediction", scaled_pingers(), None)
    failed(result, "Predict, run the command(s), then answer: Your service runs one task. When you scale it to 3",
           hint=hints("scale_prediction")[0])
    assert result.evidence == ()


def test_scale_prediction_right_in_any_order_and_form():
    lab = scaled_pingers()
    assert answer_of("scale_prediction", lab) == "worker1 and worker2"
    for answer in ("worker1 and worker2", "worker2, worker1", "Worker2 & WORKER1.", "on worker1 and on worker2"):
        result = run_check("scale_prediction", lab, answer)
        passed(result, "Right: worker1 and worker2.")
    assert result.evidence == ("service pinger: 3/3 tasks running", "slot 1 (the task you had) on manager1",
                               "slots 2 and 3 (the new tasks) on worker1 and worker2")


def test_scale_prediction_follows_where_the_first_task_was():
    lab = scaled_pingers(on=("worker1", "manager1", "worker2"))
    assert answer_of("scale_prediction", lab) == "manager1 and worker2"
    passed(run_check("scale_prediction", lab, "worker2 and manager1"), "Right: manager1 and worker2.")


def test_scale_prediction_naming_the_node_of_the_first_task():
    lab = scaled_pingers(on=("worker1", "manager1", "worker2"))
    result = run_check("scale_prediction", lab, "worker1 and worker2")
    failed(result, "'worker1 and worker2' is not where they landed. worker1 already ran the first task: the "
           "scheduler spreads a service's tasks", hint=hints("scale_prediction")[0])
    assert result.evidence == ()


def test_scale_prediction_other_wrong_nodes():
    lab = FakeLab(workers=3)
    swarm = lab.init()
    for name in ("worker1", "worker2", "worker3"):
        lab.join(name, swarm)
    lab.service(replicas=3, on=ALL_NODES)
    for answer in ("worker2 and worker3", "worker3", "the workers"):
        result = run_check("scale_prediction", lab, answer)
        failed(result, f"'{answer}' is not where they landed. The new tasks landed on worker1 and worker2: look at "
               "`docker service ps`.")
        assert "already ran the first task" not in result.summary and result.evidence == ()


# --- first-service:find (manager_runs_tasks; task_node_answer, which no step uses now, on its step) ----


def test_manager_runs_tasks_yes_while_manager1_is_active():
    lab, _ = ping_lab(on=("worker2",))
    assert answer_of("manager_runs_tasks", lab) == "yes"
    result = run_check("manager_runs_tasks", lab, "Yes.")
    passed(result, "Right: Yes.")
    assert result.evidence == ("pinger has a task on worker2",
                               "manager1: manager, availability active: it runs tasks like any node")
    passed(run_check("manager_runs_tasks", lab, "it can"))


def test_manager_runs_tasks_no_is_explained_while_manager1_is_active():
    lab, _ = ping_lab()
    result = run_check("manager_runs_tasks", lab, "no")
    wrong_answer(result, "no", explain("manager_runs_tasks", "no"))
    assert "manager1 is Active" in result.summary
    assert result.hint == hints("manager_runs_tasks")[0]
    failed(run_check("manager_runs_tasks", lab, None), "Predict, run the command(s), then answer: Before you look")


def test_manager_runs_tasks_no_once_manager1_is_drained():
    lab, _ = ping_lab(on=("worker1",))
    lab.availability("manager1", "drain")
    assert answer_of("manager_runs_tasks", lab) == "no"
    result = run_check("manager_runs_tasks", lab, "No")
    passed(result, "Right: No.")
    assert result.evidence[1] == "manager1: manager, availability drain: it runs no tasks"
    wrong_answer(run_check("manager_runs_tasks", lab, "yes"), "yes")


def test_manager_runs_tasks_needs_a_running_task():
    failed(run_check("manager_runs_tasks", swarm_lab(), "yes"), "No service runs `alpine ping` yet.")
    lab, _ = ping_lab(state="preparing")
    failed(run_check("manager_runs_tasks", lab, "yes"), "The service has no running task yet.", pending=True)


def test_task_node_answer_right_and_wrong():
    lab, _ = ping_lab(on=("worker2",))
    assert answer_of("task_node_answer", lab) == "worker2"
    result = run_check("task_node_answer", lab, "worker2")
    passed(result, "Right: worker2")
    assert result.evidence == ("pinger has a task on worker2",)
    wrong = run_check("task_node_answer", lab, "manager1")
    wrong_answer(wrong, "manager1")
    assert wrong.hint == hints("task_node_answer")[0]


def test_task_node_answer_no_running_task_is_pending():
    lab, _ = ping_lab(on=("worker1",), state="preparing")
    failed(run_check("task_node_answer", lab, "worker1"), "The service has no running task yet.", pending=True)
    assert answer_of("task_node_answer", lab) == ""


def test_task_node_answer_without_a_service():
    lab = swarm_lab()
    failed(run_check("task_node_answer", lab, "worker1"), "No service runs `alpine ping` yet.")
    assert answer_of("task_node_answer", lab) == ""


# --- self-heal:kill (self_healed, which self_heal_prediction runs first) ------------------------------


def three_pingers() -> tuple[FakeLab, dict]:
    return ping_lab(replicas=3, on=ALL_NODES)


def test_self_healed_service_removed():
    lab, pinger = three_pingers()
    lab.remove_service(pinger)
    failed(run_check("self_healed", lab), "The service is gone: it was removed, not one of its containers.",
           hint="`docker service rm` removes the whole service")


def test_self_healed_no_failure_yet():
    result = run_check("self_healed", three_pingers()[0])
    failed(result, "No task of pinger has failed yet.",
           hint=hints("self_healed")[1] + " Find the node with `docker service ps` on manager1.")
    assert result.evidence == ("3 tasks running, on manager1, worker1, worker2",)


def test_self_healed_container_gone_but_not_noticed_yet_is_pending():
    lab, pinger = three_pingers()
    lab.remove_container(lab.tasks(pinger)[1])
    failed(run_check("self_healed", lab), "The container of a task on worker1 is gone; the orchestrator is noticing.",
           pending=True)


def test_self_healed_failed_without_replacement_yet_is_pending():
    lab, pinger = three_pingers()
    killed = lab.tasks(pinger)[1]
    lab.fail(killed, at=10)
    result = run_check("self_healed", lab)
    failed(result, "The orchestrator saw the task fail and is starting a replacement.", pending=True,
           hint="Swarm waits 5 s")
    assert result.evidence == (f"task {killed['ID'][:12]} on worker1 failed: task: non-zero exit (137)",)


def test_self_healed_a_failure_the_orchestrator_has_not_shut_down_yet_is_pending():
    """The agent has reported the failure, the orchestrator not yet set it to shutdown: a CI run's check
    looked at that moment and said no task had failed."""
    lab, pinger = three_pingers()
    killed = lab.tasks(pinger)[1]
    lab.fail(killed, at=10)
    killed["DesiredState"] = "running"
    failed(run_check("self_healed", lab), "The orchestrator saw the task fail and is starting a replacement.",
           pending=True)


def test_self_healed_replacement_still_starting_is_pending():
    lab, pinger = three_pingers()
    killed = lab.tasks(pinger)[1]
    lab.fail(killed, at=10)
    lab.task(pinger, "worker1", killed["Slot"], state="starting", at=15)
    failed(run_check("self_healed", lab), "is starting a replacement", pending=True)


def test_self_healed_passes_with_the_seconds_it_took():
    lab, pinger = three_pingers()
    killed = lab.tasks(pinger)[1]
    lab.fail(killed, at=10)
    replacement = lab.replace(killed, at=15.2)
    result = run_check("self_healed", lab)
    passed(result, "Healed: a replacement task was running 5.2 s after the container was removed.")
    assert f"replacement {replacement['ID'][:12]} running on worker1" in result.evidence
    assert result.evidence[-1] == "3/3 tasks running"


def test_self_healed_judges_the_latest_failure():
    lab, pinger = three_pingers()
    first, _, third = lab.tasks(pinger)
    lab.fail(third, at=10)  # the engine lists tasks in no time order: the later failure comes first here
    lab.replace(third, at=15)
    lab.fail(first, at=30)
    failed(run_check("self_healed", lab), "is starting a replacement", pending=True)
    lab.replace(first, at=36.5, node="worker1")
    passed(run_check("self_healed", lab), "running 6.5 s after")


def test_self_healed_replacement_is_in_the_failed_tasks_slot():
    lab, pinger = three_pingers()
    pinger["Spec"]["Mode"]["Replicated"]["Replicas"] = 4  # scaled up meanwhile: a new task in slot 4
    killed = lab.tasks(pinger)[1]
    lab.fail(killed, at=10)
    lab.task(pinger, "worker1", 4, at=12)
    failed(run_check("self_healed", lab), "is starting a replacement", pending=True)


def test_self_healed_waits_for_every_replica():
    lab, pinger = ping_lab(replicas=3, on=("manager1", "worker1"))
    lab.task(pinger, "worker2", 3, state="starting")
    killed = lab.tasks(pinger)[1]
    lab.fail(killed, at=10)
    lab.replace(killed, at=15)
    failed(run_check("self_healed", lab), "is starting a replacement", pending=True)



def test_self_heal_prediction_not_healed_yet_says_what_self_healed_says():
    lab, pinger = three_pingers()
    failed(run_check("self_heal_prediction", lab, "a new one"), "No task of pinger has failed yet.")
    lab.fail(lab.tasks(pinger)[1], at=10)
    failed(run_check("self_heal_prediction", lab, "a new one"),
           "The orchestrator saw the task fail and is starting a replacement.", pending=True)


def healed_pingers() -> FakeLab:
    lab, pinger = three_pingers()
    killed = lab.tasks(pinger)[1]
    lab.fail(killed, at=10)
    lab.replace(killed, at=15.2)
    return lab


def test_self_heal_prediction_a_new_one_is_right_and_says_how_it_healed():
    lab = healed_pingers()
    assert answer_of("self_heal_prediction", lab) == "a new one"
    result = run_check("self_heal_prediction", lab, "A new one.")
    passed(result, "Right: A new one.", "Healed: a replacement task was running 5.2 s after the container was removed.")
    assert result.evidence == run_check("self_healed", lab).evidence
    passed(run_check("self_heal_prediction", lab, "a new ID"), "Healed")


def test_self_heal_prediction_the_same_one_is_explained():
    lab = healed_pingers()
    for answer in ("same", "The same ID"):
        result = run_check("self_heal_prediction", lab, answer)
        wrong_answer(result, answer, explain("self_heal_prediction", "same"))
        assert "Healed" not in result.summary
    failed(run_check("self_heal_prediction", lab, " "), "Predict, run the command(s), then answer: After you remove")


# --- cleanup:rm (service_removed, which cleanup_prediction runs first) --------------------------------


def test_service_removed_not_initialised():
    failed(run_check("service_removed", FakeLab(), in_lab="cleanup"), "Swarm mode is not active on manager1 yet")


def test_service_removed_still_there():
    lab, _ = three_pingers()
    failed(run_check("service_removed", lab, in_lab="cleanup"), "Service pinger is still there.",
           hint="On manager1: `docker service rm pinger`.")


def test_service_removed_containers_stopping_is_pending():
    lab, pinger = three_pingers()
    lab.remove_service(pinger, stopping=True)
    result = run_check("service_removed", lab, in_lab="cleanup")
    failed(result, "The service is gone; its containers are still stopping.", pending=True)
    assert len(result.evidence) == 3 and result.evidence[0].startswith("manager1: pinger.1.")


def test_service_removed_sees_stopped_task_containers_too():
    lab, pinger = three_pingers()
    lab.remove_service(pinger, stopping=True)
    for container in lab["worker1"].engine.containers:
        container.status = "exited"
    assert len(run_check("service_removed", lab, in_lab="cleanup").evidence) == 3


def test_service_removed_leaves_out_a_container_removed_while_it_looks():
    lab, pinger = three_pingers()
    lab.remove_service(pinger, stopping=True)
    lab["worker1"].engine.vanishing = {c.id for c in lab["worker1"].engine.containers}  # gone mid-listing
    result = run_check("service_removed", lab, in_lab="cleanup")
    failed(result, "The service is gone; its containers are still stopping.", pending=True)
    assert [e.split(":")[0] for e in result.evidence] == ["manager1", "worker2"]


def test_service_removed_passes():
    lab, pinger = three_pingers()
    lab.run_container("worker1", ["ping", "manager1"])  # not a task: the step does not care
    lab.remove_service(pinger)
    result = run_check("service_removed", lab, in_lab="cleanup")
    passed(result, "No service is left, and no task container remains on any node.")
    assert result.evidence == ("docker service ls: empty", "checked 3 nodes")


def test_cleanup_prediction_yes_is_right_once_everything_is_gone():
    lab, pinger = three_pingers()
    lab.remove_service(pinger)
    assert answer_of("cleanup_prediction", lab) == "yes"
    result = run_check("cleanup_prediction", lab, "Yes")
    passed(result, "Right: Yes.")
    assert result.evidence == ("docker service ls: empty", "checked 3 nodes")


def test_cleanup_prediction_no_is_explained():
    lab, pinger = three_pingers()
    lab.remove_service(pinger)
    for answer in ("no", "No, they stay"):
        wrong_answer(run_check("cleanup_prediction", lab, answer), answer, explain("cleanup_prediction", "no"))
    failed(run_check("cleanup_prediction", lab, None), "Predict, run the command(s), then answer: When you remove")


def test_cleanup_prediction_before_the_containers_are_gone_says_what_service_removed_says():
    lab, pinger = three_pingers()
    failed(run_check("cleanup_prediction", lab, "yes"), "Service pinger is still there.")
    lab.remove_service(pinger, stopping=True)
    failed(run_check("cleanup_prediction", lab, "yes"), "The service is gone; its containers are still stopping.",
           pending=True)


# --- swarm-init: root-ca, node-cert, join-tokens, raft ---------------------------------------------


def test_root_ca_right_and_wrong():
    lab = swarm_lab(joined=())
    assert answer_of("root_ca", lab) == "swarm-ca"
    result = run_check("root_ca", lab, "swarm-ca")
    passed(result, "Right: swarm-ca")
    assert result.evidence == (f"{CA_CERT} exists and equals what `docker swarm ca` prints", "subject CN=swarm-ca")
    wrong = run_check("root_ca", lab, "swarm-root-ca")
    wrong_answer(wrong, "swarm-root-ca")
    assert wrong.hint == hints("root_ca")[0]


def test_root_ca_missing_on_disk():
    lab = swarm_lab(joined=())
    del lab["manager1"].files[CA_CERT]
    failed(run_check("root_ca", lab, "swarm-ca"), f"{CA_CERT} is missing on manager1.",
           hint="Was the swarm created here?")


def test_root_ca_differs_from_docker_swarm_ca():
    lab = swarm_lab(joined=())
    lab["manager1"].outputs["docker swarm ca"] = "-----BEGIN CERTIFICATE-----\nrotated\n-----END CERTIFICATE-----\n"
    failed(run_check("root_ca", lab, "swarm-ca"), "`docker swarm ca` prints another certificate than the one on disk.",
           hint="The root CA was rotated")


def test_node_certificate_right_and_wrong():
    lab = swarm_lab(joined=())
    node_id = lab["manager1"].engine.node_id
    assert answer_of("node_certificate", lab) == "swarm-manager"
    result = run_check("node_certificate", lab, "swarm-manager")
    passed(result, "Right: swarm-manager")
    assert result.evidence == ("issuer CN=swarm-ca (the root CA), verified: OK",
                               f"subject OU=swarm-manager, CN={node_id} (manager1's node id: {node_id})")
    wrong = run_check("node_certificate", lab, "swarm-worker")
    wrong_answer(wrong, "swarm-worker")
    assert wrong.hint == hints("node_certificate")[0]


def test_node_certificate_not_signed_by_the_root_ca():
    lab = swarm_lab(joined=())
    verify = (f"CN = abc\nerror 20 at 0 depth lookup: unable to get local issuer certificate\n"
              f"error {NODE_CERT}: verification failed\n")
    lab["manager1"].outputs[f"openssl verify -CAfile {CA_CERT} {NODE_CERT}"] = verify
    result = run_check("node_certificate", lab, "swarm-manager")
    failed(result, "manager1's node certificate is not signed by the swarm's root CA.",
           hint="Run the openssl verify command.")
    assert result.evidence == (verify.strip(),)


def test_node_certificate_of_another_node():
    lab = swarm_lab(joined=())
    lab["manager1"].outputs[f"openssl x509 -in {NODE_CERT} -noout -subject"] = \
        f"subject=CN=someothernodeid,OU=swarm-manager,O={lab.swarm.id}\n"
    failed(run_check("node_certificate", lab, "swarm-manager"), "The node certificate names another node id.",
           hint="Re-run init.")


def test_cert_days_node_certificate_lasts_90_days():
    lab = swarm_lab(joined=())
    assert answer_of("cert_days", lab) == "90"
    result = run_check("cert_days", lab, "90")
    passed(result, "Right: 90.")
    assert result.evidence == ("node certificate: valid 90 days, renewed automatically before it expires",
                               "root CA: valid 7300 days (about 20 years)")
    for answer in ("90 days", "90d", " 90 Days. "):
        passed(run_check("cert_days", lab, answer))


def test_cert_days_a_backdated_or_shorter_node_certificate():
    """swarmkit backdates a certificate's notBefore by an hour; `--cert-expiry 720h` makes them 30 days."""
    lab = swarm_lab(joined=())
    dates = f"openssl x509 -in {NODE_CERT} -noout -startdate -enddate"
    lab["manager1"].outputs[dates] = openssl_dates(90 + 1 / 24, start=ISSUED - timedelta(hours=1))
    passed(run_check("cert_days", lab, "90"))
    lab["manager1"].outputs[dates] = openssl_dates(30)
    assert answer_of("cert_days", lab) == "30"
    wrong_answer(run_check("cert_days", lab, "90"), "90")


def test_cert_days_the_root_cas_lifetime_is_explained():
    lab = swarm_lab(joined=())
    for answer in ("7300", "7300 days"):
        result = run_check("cert_days", lab, answer)
        wrong_answer(result, answer, "7300 days is the root CA's lifetime. Node certificates are short-lived")
        assert result.hint == hints("cert_days")[0]
    wrong_answer(run_check("cert_days", lab, "20 years"), "20 years",
                 "That is the root CA's lifetime; the node certificate's is 90 days.")


def test_cert_days_a_year_is_explained():
    lab = swarm_lab(joined=())
    wrong_answer(run_check("cert_days", lab, "365"), "365", explain("cert_days", "365"))
    wrong_answer(run_check("cert_days", lab, "1 year"), "1 year", explain("cert_days", "1 year"))
    wrong_answer(run_check("cert_days", lab, "30"), "30")
    failed(run_check("cert_days", lab, None), "Predict, run the command(s), then answer: How many days")


@pytest.mark.parametrize("cert", [NODE_CERT, CA_CERT])
def test_cert_days_unreadable_dates(cert):
    lab = swarm_lab(joined=())
    del lab["manager1"].outputs[f"openssl x509 -in {cert} -noout -startdate -enddate"]
    failed(run_check("cert_days", lab, "90"), "Could not read the certificates' dates on manager1.",
           hint="it prints notBefore and notAfter")


def test_join_tokens_the_shared_part_is_the_ca_digest():
    lab = swarm_lab(joined=())
    digest = ca_digest(lab.swarm.ca_pem)
    worker, manager = lab.swarm.tokens["Worker"], lab.swarm.tokens["Manager"]
    assert answer_of("join_tokens", lab) == "the digest"
    result = run_check("join_tokens", lab, "The second.")
    passed(result, "Right: The second.")
    assert result.evidence[:2] == (
        f"both tokens: SWMTKN-1-{digest[:10]}…: the sha256 digest of the root CA, the same in both",
        f"worker secret …{worker[-6:]}, manager secret …{manager[-6:]}: different")
    assert "a joining node checks the digest" in result.evidence[2]
    for answer in ("second", "2nd", "the digest", "the CA digest", digest, digest[:8].upper(), f"SWMTKN-1-{digest}"):
        passed(run_check("join_tokens", lab, answer), "Right:")


def test_join_tokens_likely_wrong_answers_are_explained():
    lab = swarm_lab(joined=())
    wrong_answer(run_check("join_tokens", lab, "third"), "third", explain("join_tokens", "third"))
    wrong_answer(run_check("join_tokens", lab, "The third part"), "The third part", "The third part differs")
    wrong_answer(run_check("join_tokens", lab, "the secret"), "the secret", explain("join_tokens", "secret"))
    wrong_answer(run_check("join_tokens", lab, "SWMTKN-1"), "SWMTKN-1", "That prefix is in every swarm's tokens")
    wrong = run_check("join_tokens", lab, "the first")
    wrong_answer(wrong, "the first")
    assert wrong.hint == hints("join_tokens")[0]
    failed(run_check("join_tokens", lab, None), "Run the command(s), then answer: Apart from the SWMTKN-1 prefix")


def test_join_tokens_carry_a_digest_with_leading_zeros():
    pem = next(p for p in (fake_pem(str(i)) for i in range(10_000)) if ca_digest(p).startswith("0"))
    lab = swarm_lab(joined=(), ca_pem=pem)
    assert lab.swarm.tokens["Worker"].startswith("SWMTKN-1-0")
    passed(run_check("join_tokens", lab, ca_digest(pem)))
    passed(run_check("join_tokens", lab, "second"))


@pytest.mark.parametrize(("role", "token"), [("Worker", "SWMTKN-1-short-secret"), ("Manager", "")])
def test_join_tokens_missing_or_malformed(role, token):
    lab = swarm_lab(joined=())
    lab.swarm.tokens[role] = token
    failed(run_check("join_tokens", lab, "second"), f"The {role.lower()} join token is missing or malformed.",
           hint="Re-run init.")


def test_join_tokens_without_the_root_ca_digest():
    lab = swarm_lab(joined=())
    lab.swarm.tokens["Manager"] = f"SWMTKN-1-{ca_digest('another CA')}-{lab.new_id()}"
    failed(run_check("join_tokens", lab, "second"), "The manager token does not carry the root CA's digest.",
           hint="print the tokens again")


def test_join_tokens_the_same_for_both_roles():
    lab = swarm_lab(joined=())
    lab.swarm.tokens["Manager"] = lab.swarm.tokens["Worker"]
    failed(run_check("join_tokens", lab, "second"), "Worker and manager tokens are the same.", hint="Rotate them.")


def test_raft_encrypted_right_and_wrong():
    lab = swarm_lab(joined=())
    assert answer_of("raft_encrypted", lab) == "yes"
    result = run_check("raft_encrypted", lab, "Yes")
    passed(result, "Right: Yes")
    assert result.evidence == (f"{RAFT_DIR}: wal-v3-encrypted/ and snap-v3-encrypted/",
                               "the join tokens stored in Raft are not found in clear text")
    wrong = run_check("raft_encrypted", lab, "no")
    wrong_answer(wrong, "no")
    assert wrong.hint == hints("raft_encrypted")[0]


def test_raft_encrypted_not_encrypted_dirs():
    lab = swarm_lab(joined=())
    lab["manager1"].outputs[f"ls {RAFT_DIR}"] = "snap\nwal\n"
    result = run_check("raft_encrypted", lab, "yes")
    failed(result, f"No encrypted Raft data under {RAFT_DIR}.", hint="Is this node a manager?")
    assert result.evidence == ("found: snap wal",)


def test_raft_encrypted_tokens_in_clear_text():
    lab = swarm_lab(joined=())
    lab["manager1"].outputs[f"grep -rl SWMTKN {RAFT_DIR}"] = f"{RAFT_DIR}/wal-v3-encrypted/0-0.wal\n"
    result = run_check("raft_encrypted", lab, "yes")
    failed(result, "The Raft data holds join tokens in clear text.", hint="This engine does not encrypt Raft data.")
    assert f"found in clear text in {RAFT_DIR}/wal-v3-encrypted/0-0.wal" in result.evidence


# --- every check that needs a swarm ---------------------------------------------------------------

# Every step's check (and each check a step's check wraps) says the same two things when there is no swarm
# to look at, or manager1 is only a worker in one: except these, whose words are their own (tested in their
# module's file), and why.
OWN_WORDS = {
    "swarm_initialised": "its step is the one that makes the swarm",
    "swarm_state_answer": "asks what the swarm state is, before there is one",
    "autolock_enabled": "a manager out of its swarm has thrown its Raft key away: the autolock lab says so",
    "autolock_disabled": "(the same)", "key_rotated": "(the same)", "manager_locked": "(the same)",
    "manager_unlocked": "(the same; a manager1 that is a worker is unlocked already)",
    "leader_elected": "the managers lab powers managers off on purpose: it first asks which are off",
    "quorum_lost": "(the same)", "leader_back": "(the same)", "new_cluster": "(the same)",
}
EVERY_CHECK = [(s.check, s) for s in steps()] + [(w, step_for(w)) for w in sorted(set(WRAPPED_BY) - {
    s.check for s in steps()})]
NEEDS_A_SWARM = [pytest.param(name, step, id=f"{name}@{step.ref}") for name, step in EVERY_CHECK
                 if name not in OWN_WORDS]


def test_needs_a_swarm_covers_every_check():
    assert {name for name, _ in EVERY_CHECK} == set(CHECKS)
    assert set(OWN_WORDS) <= set(CHECKS)


@pytest.mark.parametrize(("name", "step"), NEEDS_A_SWARM)
def test_not_initialised(name, step):
    result = CHECKS[name](Context(FakeLab().cluster, step, "an answer"))
    failed(result, "Swarm mode is not active on manager1 yet.",
           hint="Run `docker swarm init` on manager1 first (lab swarm-init, step init).")
    assert result.evidence == ("manager1: Swarm: inactive",)


@pytest.mark.parametrize(("name", "step"), NEEDS_A_SWARM)
def test_manager1_in_a_swarm_as_a_worker(name, step):
    lab = FakeLab()
    foreign_swarm_on_worker1(lab)
    lab.join("manager1", lab["worker1"].engine.swarm)  # type: ignore[arg-type]
    result = CHECKS[name](Context(lab.cluster, step, "an answer"))
    failed(result, "manager1 is in a swarm, but as a worker: it cannot manage it.",
           hint="On manager1 run `docker swarm leave --force` (and on any node that ran init instead), then "
           "`docker swarm init` on manager1 and join the others to it.")
    assert result.evidence == ("manager1: Swarm: active, worker",)


def test_wrapped_checks_are_tested_on_the_step_that_runs_them():
    """WRAPPED_BY stays true: each wrapped check is registered, and no step of its wrapper's lab names it
    (else step_for would test it on that step instead)."""
    for wrapped, wrapper in WRAPPED_BY.items():
        step = step_for(wrapper)
        assert wrapped in CHECKS and wrapper in CHECKS
        assert [s.ref for s in steps() if s.lab == step.lab and s.check == wrapped] == []
        assert step_for(wrapped, step.lab) == replace(step, check=wrapped)


# --- answers in everyday words ---------------------------------------------------------------------


def test_manager_runs_tasks_drained_no_it_cannot_is_not_told_manager1_is_active():
    lab, _ = ping_lab(on=("worker1",))
    lab.availability("manager1", "drain")
    result = run_check("manager_runs_tasks", lab, "No, it cannot.")
    assert "manager1 is Active" not in result.summary, result.summary


def _active_manager() -> FakeLab:
    return ping_lab(on=("worker2",))[0]


def _removed_service() -> FakeLab:
    lab, pinger = three_pingers()
    lab.remove_service(pinger)
    return lab


@pytest.mark.parametrize(("name", "scene", "answer"), [
    ("manager_runs_tasks", _active_manager, "Yes, it can."),
    ("cleanup_prediction", _removed_service, "Yes, they are removed."),
    ("self_heal_prediction", healed_pingers, "a new task ID"),
    ("join_tokens", lambda: swarm_lab(joined=()), "second part"),
    ("worker_view_answer", swarm_lab, "an error, not the list of nodes"),
])
def test_right_answers_in_natural_words_are_accepted(name, scene, answer):
    passed(run_check(name, scene(), answer))


def test_the_fake_engines_tell_labkit_their_swarm_state():
    """The fake answers the way labkit's own reading of an engine (labkit status) expects."""
    assert [s.swarm for s in FakeLab().cluster.status()] == ["inactive"] * 3
    lab = swarm_lab(joined=("worker2",))
    lab.init("worker1")
    assert [s.swarm for s in lab.cluster.status()] == ["leader", "leader", "worker"]
    lab.swarm.set_leader(None)
    assert lab.cluster.status()[0].swarm == "manager"


def test_every_check_and_answer_is_driven_here():
    """Each registered check runs in a test through `run_check("name", ...)`, each answer through
    `answer_of("name", ...)`, in this file or another offline check file (tests/test_checks_*offline.py,
    which import these helpers); read from the files, so it holds whatever tests are selected."""
    files = sorted(Path(__file__).parent.glob("test_checks*offline.py"))
    calls = [n for f in files for n in ast.walk(ast.parse(f.read_text())) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Name) and n.args and isinstance(n.args[0], ast.Constant)]
    driven = {c.args[0].value for c in calls if c.func.id == "run_check"}  # type: ignore[attr-defined]
    answered = {c.args[0].value for c in calls if c.func.id == "answer_of"}  # type: ignore[attr-defined]
    assert set(CHECKS) - driven == set()
    assert set(ANSWERS) - answered == set()
    assert {s.check for s in steps()} <= set(CHECKS)
    assert set(CHECKS) - {s.check for s in steps()} <= set(WRAPPED_BY), "a check no step runs, nor wraps"


def test_a_node_not_described_yet_is_left_out_until_it_is():
    """A node that has just joined lists no hostname until its engine describes itself (a CI check met one
    and raised KeyError): the checks see it once it has one."""
    lab = swarm_lab()
    entry = lab.swarm.nodes[-1]
    hostname = entry["Description"].pop("Hostname")
    ctx = Context(lab.cluster, step_for("global_service"))
    assert hostname not in ctx.nodes_by_hostname() and len(ctx.nodes_by_hostname()) == len(lab.swarm.nodes) - 1
    assert ctx.hostnames()[entry["ID"]] == "?"
