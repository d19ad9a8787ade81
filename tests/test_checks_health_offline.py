"""The checks of lab healthcheck (labkit/checks/health.py) through each of their outcomes, on the fake cluster
of tests/fakes.py, with the steps, hints and explanations of labs/08-healthcheck.toml. The scenes follow the
lab: web (3 tasks of nginx:1.25 with a health check, each container's health as its node's engine reports
it), an update to nginx:1.26-broken that Swarm rolls back by itself, and a task that turns unhealthy and is
replaced.
"""

from __future__ import annotations

import copy

import pytest

from labkit.checks import CHECKS, Context
from tests.fakes import FakeLab, Json, pinned, stamp, swarm_lab
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

HEALTH_CHECKS = ["health_checked", "auto_rollback", "unhealthy_replaced"]
ALL_NODES = ("manager1", "worker1", "worker2")
HEALTH_CMD = "wget -q -O /dev/null http://127.0.0.1/health"
# What `--health-cmd ... --health-interval 2s --health-retries 2` keeps in the spec.
HEALTHCHECK: Json = {"Test": ["CMD-SHELL", HEALTH_CMD], "Interval": 2_000_000_000, "Retries": 2}
# What the CLI's `docker service create` sets without --update-* flags.
UPDATE_CONFIG: Json = {"Parallelism": 1, "FailureAction": "pause", "Monitor": 5_000_000_000, "MaxFailureRatio": 0,
                       "Order": "stop-first"}
BROKEN = "nginx:1.26-broken"
UNHEALTHY_ERR = "task: non-zero exit (1): dockerexec: unhealthy container"


# --- scenes, in the lab's order -------------------------------------------------------------------


def web_task(lab: FakeLab, web: Json, node: str, slot: int, state: str = "running", health: str | None = "healthy",
             at: float = 10.0) -> Json:
    """A task of web on NODE in STATE; its container (from `starting` on) reports HEALTH (None: no health check)."""
    task = lab.task(web, node, slot, state, at)
    if state in ("starting", "running"):
        lab.container_of(task).health = health
    return task


def health_lab(healthcheck: Json | None = HEALTHCHECK, on: tuple[str, ...] = ALL_NODES, replicas: int = 3,
               health: str = "healthy") -> tuple[FakeLab, Json]:
    """healthy done: web (nginx:1.25, created at 10 s with HEALTHCHECK) runs a task on each node of ON, each
    container reporting HEALTH."""
    lab = swarm_lab()
    web = lab.service("web", replicas=replicas, on=(), image="nginx:1.25", args=(), at=10)
    web["Spec"]["UpdateConfig"] = copy.deepcopy(UPDATE_CONFIG)
    if healthcheck is not None:
        web["Spec"]["TaskTemplate"]["ContainerSpec"]["Healthcheck"] = copy.deepcopy(healthcheck)
    checked = bool((healthcheck or {}).get("Test")) and healthcheck["Test"] != ["NONE"]  # type: ignore[index]
    for slot, node in enumerate(on, 1):
        web_task(lab, web, node, slot, health=health if checked else None)
    return lab, web


def running_task(lab: FakeLab, web: Json, slot: int) -> Json:
    return next(t for t in lab.tasks(web) if t["Slot"] == slot and t["DesiredState"] == "running")


def end_task(lab: FakeLab, task: Json, at: float, state: str, message: str, err: str | None = None) -> None:
    """TASK's container stopped and removed, and the managers noticed at AT: STATE, desired shutdown."""
    lab.remove_container(task)
    task["DesiredState"] = "shutdown"
    task["Status"] |= {"State": state, "Message": message, "Timestamp": stamp(at)}
    if err:
        task["Status"]["Err"] = err


def broken_update(lab: FakeLab, web: Json, failure_action: str = "rollback", state: str = "updating",
                  at: float = 40.0) -> Json:
    """`docker service update --image nginx:1.26-broken --update-failure-action FAILURE_ACTION
    --update-monitor 15s web` at AT (stop-first, parallelism 1): slot 1's task shut down, a task of the broken
    release starting in its place (its health check never passes); the update in STATE."""
    web["PreviousSpec"] = copy.deepcopy(web["Spec"])
    web["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] = pinned(BROKEN)
    web["Spec"]["UpdateConfig"] |= {"FailureAction": failure_action, "Monitor": 15_000_000_000}
    web["Version"]["Index"] += 1
    web["UpdatedAt"] = stamp(at)
    old = running_task(lab, web, 1)
    end_task(lab, old, at, "shutdown", "shutdown")
    new = web_task(lab, web, "manager1", 1, state="starting", health="starting", at=at)
    messages = {"updating": "update in progress",
                "paused": f"update paused due to failure or early termination of task {new['ID']}"}
    web["UpdateStatus"] = {"State": state, "StartedAt": stamp(at), "Message": messages.get(state, state)}
    return new


def broken_failed(lab: FakeLab, task: Json, at: float = 50.0) -> None:
    """The broken task's health check failed: Swarm stopped it, failed."""
    end_task(lab, task, at, "failed", "started", UNHEALTHY_ERR)


def rolling_back_lab() -> tuple[FakeLab, Json]:
    """auto-rollback under way: the broken task failed at 50 s and Swarm started rolling back by itself (its
    spec back to the one before, no previous spec left); the replacement is not there yet."""
    lab, web = health_lab()
    broken = broken_update(lab, web)
    broken_failed(lab, broken)
    web["Spec"] = web.pop("PreviousSpec")
    web["UpdateStatus"] = {"State": "rollback_started", "StartedAt": stamp(50),
                           "Message": f"update rolled back due to failure or early termination of task {broken['ID']}"}
    return lab, web


def rolled_back_lab() -> tuple[FakeLab, Json]:
    """auto-rollback done: slot 1 runs nginx:1.25 again, healthy, since 55 s; rollback completed at 56 s."""
    lab, web = rolling_back_lab()
    web_task(lab, web, "manager1", 1, at=55)
    web["UpdateStatus"] |= {"State": "rollback_completed", "CompletedAt": stamp(56), "Message": "rollback completed"}
    return lab, web


def container_key(lab: FakeLab, task: Json) -> str:
    """How the checks name TASK's container: 'node/abc123456789'."""
    return f"{lab.node_of(task).name}/{task['Status']['ContainerStatus']['ContainerID'][:12]}"


# --- every check: a swarm, and web -----------------------------------------------------------------


@pytest.mark.parametrize("name", HEALTH_CHECKS)
def test_no_web_service(name):
    lab = swarm_lab()
    lab.service("pinger", replicas=1)
    result = CHECKS[name](Context(lab.cluster, step_for(name), "1.25"))
    failed(result, "There is no service called web yet.")
    assert result.hint == hints(name)[0]


def test_each_check_not_initialised_by_name():
    failed(run_check("health_checked", FakeLab()), "Swarm mode is not active on manager1 yet.")
    failed(run_check("auto_rollback", FakeLab(), "1.25"), "Swarm mode is not active on manager1 yet.")
    failed(run_check("unhealthy_replaced", FakeLab()), "Swarm mode is not active on manager1 yet.")


# --- healthcheck:healthy ---------------------------------------------------------------------------


def test_health_checked_passes():
    lab, web = health_lab()
    result = run_check("health_checked", lab)
    passed(result, "web runs 3 healthy tasks.")
    keys = sorted(container_key(lab, t) for t in lab.tasks(web))
    assert result.evidence == (f"health check: {HEALTH_CMD}", "3/3 tasks running",
                               "health: " + ", ".join(f"{k} healthy" for k in keys))


@pytest.mark.parametrize("healthcheck", [None, {"Test": ["NONE"]}, {"Interval": 2_000_000_000}, {"Test": []}],
                         ids=["absent", "NONE", "no-test", "empty-test"])
def test_health_checked_without_a_health_check(healthcheck):
    lab, _ = health_lab(healthcheck=healthcheck)
    failed(run_check("health_checked", lab), "web has no health check.",
           hint="Create it with `--health-cmd` as shown.")


def test_health_checked_a_task_starting_is_pending():
    lab, web = health_lab(on=("manager1", "worker1"))
    starting = web_task(lab, web, "worker2", 3, state="starting", health="starting")
    result = run_check("health_checked", lab)
    failed(result, "web's tasks are starting: a task counts as running once its health check passes.",
           pending=True, hint="Watch `docker service ps web`: starting, then running.")
    assert result.evidence[1] == "2/3 tasks running"
    assert f"{container_key(lab, starting)} starting" in result.evidence[2]


def test_health_checked_a_task_preparing_has_no_container_yet_and_is_pending():
    lab, web = health_lab(on=("manager1", "worker1"))
    lab.task(web, "worker2", 3, state="preparing")
    result = run_check("health_checked", lab)
    failed(result, "web's tasks are starting", pending=True)
    assert result.evidence[2].count("healthy") == 2


def test_health_checked_running_but_an_engine_not_yet_reporting_healthy_is_pending():
    lab, web = health_lab()
    lab.container_of(running_task(lab, web, 2)).health = "starting"
    result = run_check("health_checked", lab)
    failed(result, "web's tasks are starting", pending=True)
    assert result.evidence[1] == "3/3 tasks running"


def test_health_checked_counts_only_web_containers():
    lab, _ = health_lab()
    lab.service("pinger", replicas=1)  # a container of another service, on manager1, without a health check
    passed(run_check("health_checked", lab))


def test_health_checked_too_few_replicas_is_told_not_pending():
    lab, _ = health_lab(on=("manager1",), replicas=1)
    result = run_check("health_checked", lab)
    assert not result.passed and not result.pending and "3" in result.summary, result


# --- healthcheck:auto-rollback ---------------------------------------------------------------------


def test_auto_rollback_right_answers():
    lab, _ = rolled_back_lab()
    assert answer_of("auto_rollback", lab) == "1.25"
    for answer in ("1.25", "nginx:1.25", "nginx/1.25", "1.25."):
        passed(run_check("auto_rollback", lab, answer), "Right:")
    result = run_check("auto_rollback", lab, "1.25")
    assert result.evidence == ("update state: rollback_completed", "web: nginx:1.25 (previous spec: -)",
                               f"tasks of {BROKEN}: 1; failed: {UNHEALTHY_ERR}",
                               "Swarm rolled back by itself: rollback completed")


@pytest.mark.parametrize("answer", ["1.26-broken", "1.26"])
def test_auto_rollback_explains_the_broken_release(answer):
    lab, _ = rolled_back_lab()
    result = run_check("auto_rollback", lab, answer)
    wrong_answer(result, answer, explain("auto_rollback", answer))
    assert result.hint == hints("auto_rollback")[0]


def test_auto_rollback_other_and_missing_answers():
    lab, _ = rolled_back_lab()
    wrong_answer(run_check("auto_rollback", lab, "nginx:1.26-broken"), "nginx:1.26-broken",
                 explain("auto_rollback", "1.26-broken"))
    wrong_answer(run_check("auto_rollback", lab, "1.24"), "1.24")
    failed(run_check("auto_rollback", lab, None), "Predict, run the command(s), then answer: When Swarm is done")
    failed(run_check("auto_rollback", lab, "  "), "Predict, run the command(s), then answer")


def test_auto_rollback_not_tried_yet():
    lab, _ = health_lab()
    result = run_check("auto_rollback", lab, "1.25")
    failed(result, "web has not tried nginx:1.26-broken yet.", hint=hints("auto_rollback")[0])
    assert result.evidence == ("update state: none", "web: nginx:1.25 (previous spec: -)",
                               f"tasks of {BROKEN}: 0")
    assert answer_of("auto_rollback", lab) == "1.25"


def test_auto_rollback_failure_action_not_rollback():
    lab, web = health_lab()
    broken_update(lab, web, failure_action="pause")
    result = run_check("auto_rollback", lab, "1.25")
    failed(result, "The update does not roll back by itself.", hint="Update with `--update-failure-action rollback`")
    assert "paused" not in result.summary
    assert result.evidence[:2] == ("update state: updating", f"web: {BROKEN} (previous spec: nginx:1.25)")
    assert result.evidence[2] == f"tasks of {BROKEN}: 1; starting: "


def test_auto_rollback_paused_says_swarm_paused():
    lab, web = health_lab()
    broken = broken_update(lab, web, failure_action="pause", state="paused")
    broken_failed(lab, broken)
    result = run_check("auto_rollback", lab, "1.25")
    failed(result, "The update does not roll back by itself. Swarm paused the update instead (its default failure "
           "action).", hint="`docker service rollback web` first if the update is paused.")
    assert result.evidence[0] == "update state: paused"
    assert result.evidence[2] == f"tasks of {BROKEN}: 1; failed: {UNHEALTHY_ERR}"


def test_auto_rollback_updating_is_pending():
    lab, web = health_lab()
    broken_update(lab, web)
    failed(run_check("auto_rollback", lab, "1.25"), "The update is rolling, or rolling back.", pending=True,
           hint="Watch `docker service ps web`: the new task never turns healthy.")


def test_auto_rollback_rolling_back_is_pending():
    """The spec is nginx:1.25 again (and its failure action pause): rolling back, not a missing flag."""
    lab, _ = rolling_back_lab()
    result = run_check("auto_rollback", lab, "1.25")
    failed(result, "The update is rolling, or rolling back.", pending=True)
    assert result.evidence[0] == "update state: rollback_started"


def test_auto_rollback_is_pending_until_the_rolled_back_task_runs_again():
    """Swarm says rollback_completed while slot 1's task of nginx:1.25 may still be starting: the next step
    breaks manager1's task, so the step is done once all three run."""
    lab, web = rolling_back_lab()
    web_task(lab, web, "manager1", 1, state="starting", health="starting", at=55)
    web["UpdateStatus"] |= {"State": "rollback_completed", "CompletedAt": stamp(56), "Message": "rollback completed"}
    failed(run_check("auto_rollback", lab, "1.25"), "Swarm rolled web back to nginx:1.25; its tasks are starting "
           "again (2 of 3 running).", pending=True, hint="Give it a few seconds")


def test_auto_rollback_a_manual_rollback_after_a_pause_is_not_swarm_by_itself():
    lab, web = health_lab()
    broken = broken_update(lab, web, failure_action="pause", state="paused")
    broken_failed(lab, broken)
    lab.rollback(web, started=60, completed=65)
    web_task(lab, web, "manager1", 1, at=64)
    assert web["PreviousSpec"]["TaskTemplate"]["ContainerSpec"]["Image"] == pinned(BROKEN)
    result = run_check("auto_rollback", lab, "1.25")
    assert not result.passed, result


# --- healthcheck:sick-task -------------------------------------------------------------------------


def test_unhealthy_replaced_nothing_ended_yet():
    """After the rollback: the failed broken task and the shut-down nginx:1.25 task are no unhealthy task."""
    lab, web = rolled_back_lab()
    assert {t["Status"]["State"] for t in lab.tasks(web)} == {"running", "shutdown", "failed"}
    result = run_check("unhealthy_replaced", lab)
    failed(result, "No task of web has turned unhealthy yet.", hint=hints("unhealthy_replaced")[0])
    assert result.evidence == ("3/3 tasks running",)


def test_unhealthy_replaced_ended_tasks_of_another_image_do_not_count():
    """Even ended complete (not failed), a task of the broken release is not web's unhealthy task."""
    lab, web = rolled_back_lab()
    broken = next(t for t in lab.tasks(web) if t["Status"]["State"] == "failed")
    broken["Status"] |= {"State": "complete", "Message": "finished"}
    failed(run_check("unhealthy_replaced", lab), "No task of web has turned unhealthy yet.")


def test_unhealthy_replaced_unhealthy_not_yet_replaced_is_pending():
    lab, web = rolled_back_lab()
    sick = running_task(lab, web, 2)
    lab.container_of(sick).health = "unhealthy"
    result = run_check("unhealthy_replaced", lab)
    failed(result, f"{container_key(lab, sick)} is unhealthy; Swarm is about to replace it.", pending=True,
           hint="Wait a few seconds.")
    assert result.evidence == ("3/3 tasks running",)


@pytest.mark.parametrize(("state", "message", "err"), [("complete", "finished", None),
                                                       ("failed", "started", UNHEALTHY_ERR)])
def test_unhealthy_replaced_replacement_starting_is_pending(state, message, err):
    lab, web = rolled_back_lab()
    sick = running_task(lab, web, 2)
    end_task(lab, sick, 70, state, message, err)
    web_task(lab, web, "worker1", 2, state="starting", health="starting", at=71)
    result = run_check("unhealthy_replaced", lab)
    failed(result, "The unhealthy task was shut down; its replacement is starting.", pending=True,
           hint="Watch `docker service ps web`.")
    assert result.evidence == ("2/3 tasks running", f"task {sick['ID'][:12]} (nginx:1.25): {state} {err or message}")


def test_unhealthy_replaced_passes():
    lab, web = rolled_back_lab()
    sick = running_task(lab, web, 2)
    end_task(lab, sick, 70, "complete", "finished")
    web_task(lab, web, "worker1", 2, at=74)
    result = run_check("unhealthy_replaced", lab)
    passed(result, "The unhealthy task was shut down and a new, healthy task replaced it.")
    assert result.evidence == ("3/3 tasks running", f"task {sick['ID'][:12]} (nginx:1.25): complete finished")
