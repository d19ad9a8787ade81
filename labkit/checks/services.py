"""Checks of the learner's ping service: create, find, scale, self-heal, remove."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import docker
import docker.errors

from labkit.checks.base import Context, Result, check, judge_answer, node_set, replicas_of, timestamp
from labkit.swarm import SERVICE_LABEL, ping_services, task_containers


def the_service(ctx: Context) -> tuple[dict[str, Any] | None, Result | None]:
    """The one ping service, or the failure that explains why there is none (or too many)."""
    if not ctx.swarm_active():
        return None, ctx.not_initialised()
    services = ping_services(ctx.api)
    if len(services) > 1:
        names = ", ".join(s["Spec"]["Name"] for s in services)
        return None, Result(False, f"There are {len(services)} ping services ({names}); this lab follows one.",
                            hint="Keep one: remove the others with `docker service rm NAME` on manager1.")
    if not services:
        plain = [n.name for n in ctx.cluster.nodes
                 if any((c.attrs["Config"].get("Cmd") or [])[:1] == ["ping"] and SERVICE_LABEL not in c.labels
                        for c in n.docker.containers.list(ignore_removed=True))]
        if plain:
            return None, Result(False, "No service runs alpine ping, but a plain container does.",
                                tuple(f"{n}: a container from `docker run`" for n in plain),
                                hint="`docker run` starts one container that Swarm does not manage. Use "
                                "`docker service create alpine ping manager1` on manager1.")
        return None, Result(False, "No service runs `alpine ping` yet.", hint=ctx.step.hints[0])
    return services[0], None


def _tasks(ctx: Context, service: dict[str, Any], desired: str = "running") -> list[dict[str, Any]]:
    return ctx.api.tasks(filters={"service": service["ID"], "desired-state": desired})


def _lab_targets(ctx: Context) -> set[str]:
    return {t for n in ctx.cluster.nodes for t in (n.name, n.address)}


@check("ping_service")
def ping_service(ctx: Context) -> Result:
    """One ping service of a lab node, with `replicas` tasks running."""
    service, failure = the_service(ctx)
    if failure:
        return failure
    assert service is not None
    name = service["Spec"]["Name"]
    args = service["Spec"]["TaskTemplate"]["ContainerSpec"].get("Args", [])
    target = args[-1] if args else ""
    if target not in _lab_targets(ctx):
        return Result(False, f"Service {name} pings {target or 'nothing'}, which is not a lab node.",
                      hint="This lab has no internet. Remove it (`docker service rm "
                      f"{name}`) and ping a lab node: `docker service create alpine ping manager1`.")
    wanted = int(ctx.params.get("replicas", 1))
    asked = replicas_of(service)
    if asked != wanted:
        hint = f"Your service is called {name}: `docker service update {name} --replicas {wanted}` on manager1."
        if asked is not None and 1 < asked < wanted:
            hint = f"You asked for {asked} replicas; this step wants {wanted}. " + hint
        return Result(False, f"Service {name} asks for {asked} replica(s); this step wants {wanted}.", hint=hint)
    tasks = _tasks(ctx, service)
    hosts = ctx.hostnames()
    running = sorted(hosts.get(t["NodeID"], "?") for t in tasks if t["Status"]["State"] == "running")
    evidence = (f"service {name}: {len(running)}/{wanted} tasks running",
                *(f"task on {node}" for node in running))
    if len(running) < wanted:
        states = ", ".join(sorted(t["Status"]["State"] for t in tasks if t["Status"]["State"] != "running"))
        return Result(False, f"{len(running)} of {wanted} tasks of {name} run ({states or 'none scheduled'}).",
                      evidence, hint="Tasks take a moment to start; `docker service ps` shows their state.",
                      pending=True)
    return Result(True, f"Service {name} runs {wanted} task(s).", evidence)


def _task_nodes(ctx: Context) -> list[str]:
    service, _ = the_service(ctx)
    if service is None:
        return []
    hosts = ctx.hostnames()
    return sorted({hosts.get(t["NodeID"], "") for t in _tasks(ctx, service) if t["Status"]["State"] == "running"})


@check("task_node_answer", answer=lambda ctx: (_task_nodes(ctx) or [""])[0])
def task_node_answer(ctx: Context) -> Result:
    service, failure = the_service(ctx)
    if failure:
        return failure
    assert service is not None
    nodes = _task_nodes(ctx)
    if not nodes:
        return Result(False, "The service has no running task yet.", pending=True, hint="Wait a moment.")
    return judge_answer(ctx, nodes, [f"{service['Spec']['Name']} has a task on {', '.join(nodes)}"])


def _when(task: dict[str, Any]) -> datetime:
    return timestamp(task["Status"]["Timestamp"])


@check("self_healed")
def self_healed(ctx: Context) -> Result:
    if not ctx.swarm_active():
        return ctx.not_initialised()
    services = ping_services(ctx.api)
    if not services:
        return Result(False, "The service is gone: it was removed, not one of its containers.",
                      hint="`docker service rm` removes the whole service. Recreate it on manager1 "
                      "(`docker service create --name pinger --replicas 3 alpine ping manager1`), then "
                      "remove just one container with `docker container rm -f` on a node that runs it.")
    service, failure = the_service(ctx)
    if failure:
        return failure
    assert service is not None
    name = service["Spec"]["Name"]
    hosts = ctx.hostnames()
    current = _tasks(ctx, service)  # a failed task is still desired running until the orchestrator shuts it down
    failed = sorted((t for t in _tasks(ctx, service, "shutdown") + current if t["Status"]["State"] == "failed"),
                    key=_when)
    running = [t for t in current if t["Status"]["State"] == "running"]
    if not failed:
        gone = _removed_containers(ctx, running, hosts)
        if gone:
            return Result(False, f"The container of a task on {gone[0]} is gone; the orchestrator is noticing.",
                          hint="Give it a second or two.", pending=True)
        where = ", ".join(sorted(hosts.get(t["NodeID"], "?") for t in running))
        return Result(False, f"No task of {name} has failed yet.", (f"{len(running)} tasks running, on {where}",),
                      hint=ctx.step.hints[1] + " Find the node with `docker service ps` on manager1.")
    last = failed[-1]
    replacement = next((t for t in running if t.get("Slot") == last.get("Slot") and _when(t) >= _when(last)), None)
    seen = (f"task {last['ID'][:12]} on {hosts.get(last['NodeID'], '?')} failed: "
            f"{last['Status'].get('Err') or last['Status'].get('Message')}",)
    wanted = int(ctx.params.get("replicas", 3))
    if replacement is None or len(running) < wanted:
        return Result(False, "The orchestrator saw the task fail and is starting a replacement.", seen,
                      hint="Swarm waits 5 s (its default restart delay) before it starts a new task in the slot.",
                      pending=True)
    healed = (_when(replacement) - _when(last)).total_seconds()
    return Result(True, f"Healed: a replacement task was running {healed:.1f} s after the container was removed.",
                  (*seen, f"replacement {replacement['ID'][:12]} running on {hosts.get(replacement['NodeID'], '?')}",
                   f"{len(running)}/{wanted} tasks running"))


def _removed_containers(ctx: Context, tasks: list[dict[str, Any]], hosts: dict[str, str]) -> list[str]:
    """Nodes where a task the manager still thinks runs has lost its container (just removed)."""
    gone = []
    for t in tasks:
        node, cid = hosts.get(t["NodeID"]), t["Status"].get("ContainerStatus", {}).get("ContainerID")
        if node and cid:
            try:
                ctx.cluster[node].docker.containers.get(cid)
            except docker.errors.NotFound:
                gone.append(node)
    return gone


@check("service_removed")
def service_removed(ctx: Context) -> Result:
    if not ctx.swarm_active():
        return ctx.not_initialised()
    services = ctx.api.services()
    if services:
        name = services[0]["Spec"]["Name"]
        return Result(False, f"Service {name} is still there.",
                      hint=f"On manager1: `docker service rm {name}`.")
    leftovers = [f"{n.name}: {c.name}" for n in ctx.cluster.nodes for c in task_containers(n.docker, stopped=True)]
    if leftovers:
        return Result(False, "The service is gone; its containers are still stopping.", tuple(leftovers),
                      hint="Give the nodes a few seconds.", pending=True)
    return Result(True, "No service is left, and no task container remains on any node.",
                  ("docker service ls: empty", f"checked {len(ctx.cluster.nodes)} nodes"))


# --------------------------------------------------------------- predictions on the service's steps


def _manager_availability(ctx: Context) -> str:
    me = ctx.swarm_state(ctx.manager).get("NodeID")
    return str(ctx.api.inspect_node(me)["Spec"].get("Availability", "active")) if me else "active"


@check("manager_runs_tasks", answer=lambda ctx: "yes" if _manager_availability(ctx) == "active" else "no")
def manager_runs_tasks(ctx: Context) -> Result:
    """Can a manager run tasks? Yes, unless it was drained: judged on manager1's availability."""
    service, failure = the_service(ctx)
    if failure:
        return failure
    assert service is not None
    nodes = _task_nodes(ctx)
    if not nodes:
        return Result(False, "The service has no running task yet.", pending=True, hint="Wait a moment.")
    availability = _manager_availability(ctx)
    evidence = [f"{service['Spec']['Name']} has a task on {', '.join(nodes)}",
                f"{ctx.manager.name}: manager, availability {availability}"
                + (": it runs tasks like any node" if availability == "active" else ": it runs no tasks")]
    yes = availability == "active"
    return judge_answer(ctx, ["yes", "y", "yes it can", "it can"] if yes else ["no", "n"], evidence)


def _new_task_nodes(ctx: Context, service: dict[str, Any]) -> tuple[str, list[str]]:
    """The node of the first slot's task, and the nodes of the tasks in the other slots."""
    hosts = ctx.hostnames()
    running = sorted((t for t in _tasks(ctx, service) if t["Status"]["State"] == "running"),
                     key=lambda t: t.get("Slot", 0))
    first = hosts.get(running[0]["NodeID"], "?") if running else ""
    return first, sorted(hosts.get(t["NodeID"], "?") for t in running[1:])


def _scale_answer(ctx: Context) -> str:
    service, _ = the_service(ctx)
    return " and ".join(_new_task_nodes(ctx, service)[1]) if service else ""


@check("scale_prediction", answer=_scale_answer)
def scale_prediction(ctx: Context) -> Result:
    """Three replicas run, and the learner predicted where the two new ones would land."""
    scaled = ping_service(ctx)
    if not scaled.passed:
        return scaled
    service, _ = the_service(ctx)
    assert service is not None
    first, new = _new_task_nodes(ctx, service)
    evidence = [*scaled.evidence[:1], f"slot 1 (the task you had) on {first}",
                f"slots 2 and 3 (the new tasks) on {' and '.join(new)}"]
    if not ctx.answer or not ctx.answer.strip():
        return judge_answer(ctx, [], evidence)
    guess = node_set(ctx.answer)
    if guess == set(new):
        return Result(True, f"Right: {' and '.join(new)}.", tuple(evidence))
    why = (f"{first} already ran the first task: the scheduler spreads a service's tasks, preferring nodes "
           "that run fewer of them, so the new ones went to the nodes that had none."
           if first in guess else f"The new tasks landed on {' and '.join(new)}: look at `docker service ps`.")
    return Result(False, f"'{ctx.answer.strip()}' is not where they landed. {why}", hint=ctx.step.hints[0])


@check("self_heal_prediction", answer=lambda ctx: "a new one")
def self_heal_prediction(ctx: Context) -> Result:
    """The slot healed, and the learner predicted whether its task keeps its ID (it never does)."""
    healed = self_healed(ctx)
    if not healed.passed:
        return healed
    accepted = ["new", "a new one", "new one", "a new id", "new id", "a new task", "different", "a different one",
                "another", "another one", "another id"]
    judged = judge_answer(ctx, accepted, healed.evidence)
    return replace(judged, summary=f"{judged.summary} {healed.summary}") if judged.passed else judged


@check("cleanup_prediction", answer=lambda ctx: "yes")
def cleanup_prediction(ctx: Context) -> Result:
    """The service and its containers are gone, and the learner predicted the containers would go too."""
    removed = service_removed(ctx)
    if not removed.passed:
        return removed
    return judge_answer(ctx, ["yes", "y", "yes they are", "they are removed", "removed", "yes, removed"],
                        removed.evidence)
