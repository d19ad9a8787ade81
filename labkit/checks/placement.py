"""Checks of where tasks run: constraints, node labels, a task no node can take, drain and active,
rebalancing, global services and a node that joins later."""

from __future__ import annotations

from typing import Any

from labkit.checks.base import Context, Result, check, judge_answer, replicas_of, timestamp

PINGER = "pinger"




def _constraints(service: dict[str, Any]) -> list[str]:
    placement = service["Spec"]["TaskTemplate"].get("Placement") or {}
    return ["".join(c.split()) for c in placement.get("Constraints") or []]


def _running(ctx: Context, service: dict[str, Any]) -> list[str]:
    """The node of every running task of SERVICE (one entry per task)."""
    hosts = ctx.hostnames()
    return sorted(hosts.get(t["NodeID"], "?") for t in ctx.running_tasks(service))






def _spread(nodes: list[str]) -> str:
    return ", ".join(f"{nodes.count(n)} on {n}" for n in sorted(set(nodes))) or "none"



def _pinger(ctx: Context) -> tuple[dict[str, Any] | None, Result | None]:
    return ctx.required_service(PINGER)


def _workers_only(ctx: Context) -> tuple[Result, list[str]]:
    service, failure = _pinger(ctx)
    if failure:
        return failure, []
    assert service is not None
    constraints = _constraints(service)
    managers = {n.name for n in ctx.cluster.managers}
    if "node.role==manager" in constraints:
        return Result(False, "pinger is constrained to managers, not workers.", (f"constraints: {constraints}",),
                      hint="Recreate it with `--constraint node.role==worker` (or `node.role!=manager`)."), []
    if not {"node.role==worker", "node.role!=manager"} & set(constraints):
        return Result(False, "pinger has no constraint that keeps it off the managers.",
                      (f"constraints: {constraints or 'none'}",),
                      hint="`docker service update --constraint-add node.role==worker pinger` on manager1."), []
    running = _running(ctx, service)
    evidence = ("constraint: node.role==worker", f"{len(running)}/3 tasks running: {_spread(running)}")
    on_managers = [n for n in running if n in managers]
    if len(running) < 3 or on_managers:
        return Result(False, "The tasks are still being placed.", evidence, pending=True,
                      hint="`docker service ps pinger` shows where each task is."), running
    return Result(True, "pinger runs 3 tasks, on workers only.", evidence), running


@check("workers_only", answer=lambda ctx: "no")
def workers_only(ctx: Context) -> Result:
    """3 replicas constrained to workers; the learner predicted whether manager1 would run any (no)."""
    result, _ = _workers_only(ctx)
    if not result.passed:
        return result
    return judge_answer(ctx, ["no", "n", "none", "0", "zero"], result.evidence)


@check("label_constraint")
def label_constraint(ctx: Context) -> Result:
    """worker2 labelled disk=ssd, pinger constrained to it, and every task moved there."""
    service, failure = _pinger(ctx)
    if failure:
        return failure
    assert service is not None
    nodes = ctx.nodes_by_hostname()
    labelled = sorted(n for n, node in nodes.items() if node["Spec"].get("Labels", {}).get("disk") == "ssd")
    constraints = _constraints(service)
    running = _running(ctx, service)
    evidence = (f"nodes labelled disk=ssd: {', '.join(labelled) or 'none'}",
                f"constraints: {', '.join(constraints) or 'none'}", f"tasks: {_spread(running)}")
    if "worker2" not in labelled:
        where = f" It is on {', '.join(labelled)}." if labelled else ""
        return Result(False, f"worker2 has no label disk=ssd.{where}", evidence,
                      hint="On manager1: `docker node update --label-add disk=ssd worker2`.")
    extra = [n for n in labelled if n != "worker2"]
    if extra:
        return Result(False, f"{', '.join(extra)} also has the label disk=ssd, so pinger may run there too.",
                      evidence, hint=f"`docker node update --label-rm disk {extra[0]}` on manager1.")
    if "node.labels.disk==ssd" not in constraints:
        return Result(False, "pinger is not constrained to nodes labelled disk=ssd.", evidence,
                      hint="`docker service update --constraint-add node.labels.disk==ssd pinger` "
                      "(note `node.labels`, with an s).")
    if set(running) != {"worker2"} or len(running) < 3:
        return Result(False, "The tasks are moving to worker2.", evidence, pending=True,
                      hint="A constraint change is a service update: tasks are replaced one by one.")
    if (service.get("UpdateStatus") or {}).get("State") == "updating":  # the next update would race it
        return Result(False, "Every task runs on worker2; Swarm is finishing the update.", evidence, pending=True,
                      hint="It watches each new task for a few seconds (the update's monitor period) first.")
    return Result(True, "Every task of pinger runs on worker2, the only node labelled disk=ssd.", evidence)


def _nowhere(ctx: Context) -> tuple[dict[str, Any] | None, Result | None]:
    return ctx.required_service("nowhere")


def _nowhere_task(ctx: Context, service: dict[str, Any]) -> dict[str, Any] | None:
    tasks = ctx.api.tasks(filters={"service": service["ID"]})
    return max(tasks, key=lambda t: timestamp(t["CreatedAt"])) if tasks else None


@check("unsatisfiable", answer=lambda ctx: "pending")
def unsatisfiable(ctx: Context) -> Result:
    """A constraint no node satisfies: the task stays pending, and Swarm says why."""
    service, failure = _nowhere(ctx)
    if failure:
        return failure
    assert service is not None
    task = _nowhere_task(ctx, service)
    if task is None:
        return Result(False, "The orchestrator has not created nowhere's task yet.", pending=True, hint="Wait.")
    state, why = task["Status"]["State"], task["Status"].get("Err") or task["Status"].get("Message", "")
    if state in ("new", "allocated"):
        return Result(False, "The scheduler is looking for a node for nowhere's task.", pending=True, hint="Wait.")
    evidence = (f"constraints: {', '.join(_constraints(service))}", f"task {task['ID'][:12]}: {state}",
                f"why: {why}", "no node has the label zone=mars, so the scheduler cannot place it")
    if state != "pending":
        return Result(False, f"nowhere's task is {state}, not waiting for a node.", evidence,
                      hint="Its constraint must be one no node satisfies: `--constraint node.labels.zone==mars`.")
    return judge_answer(ctx, ["pending", "it stays pending", "pending forever"], evidence)


@check("drained")
def drained(ctx: Context) -> Result:
    """worker2 drained: pinger's tasks left it for worker1 (its label constraint removed first)."""
    service, failure = _pinger(ctx)
    if failure:
        return failure
    assert service is not None
    nodes = ctx.nodes_by_hostname()
    availability = {n: node["Spec"].get("Availability") for n, node in nodes.items()}
    running = _running(ctx, service)
    evidence = (f"availability: {', '.join(f'{n} {a}' for n, a in sorted(availability.items()))}",
                f"tasks: {_spread(running)}")
    if ctx.service("nowhere") is not None:
        return Result(False, "The service nowhere is still there.", evidence,
                      hint="Remove it first: `docker service rm nowhere`.")
    if "node.labels.disk==ssd" in _constraints(service):
        return Result(False, "pinger is still constrained to disk=ssd nodes.", evidence,
                      hint="`docker service update --constraint-rm node.labels.disk==ssd pinger` first: "
                      "otherwise, with worker2 drained, no node may run it.")
    drained_nodes = [n for n, a in availability.items() if a == "drain"]
    if "worker2" not in drained_nodes:
        other = f" ({', '.join(drained_nodes)} is drained instead)" if drained_nodes else ""
        return Result(False, f"worker2 is not drained{other}.", evidence,
                      hint="`docker node update --availability drain worker2` on manager1.")
    if "worker2" in running or len(running) < 3:
        return Result(False, "Tasks are leaving worker2.", evidence, pending=True,
                      hint="Draining stops a node's tasks and the orchestrator starts them elsewhere.")
    return Result(True, f"worker2 is drained; pinger runs on {_spread(running)}.", evidence)


@check("no_rebalance", answer=lambda ctx: "no")
def no_rebalance(ctx: Context) -> Result:
    """worker2 active again; the learner predicted whether the tasks would come back (they don't)."""
    service, failure = _pinger(ctx)
    if failure:
        return failure
    assert service is not None
    availability = ctx.nodes_by_hostname()["worker2"]["Spec"].get("Availability")
    running = _running(ctx, service)
    evidence = (f"worker2: {availability}", f"tasks: {_spread(running)}",
                "Swarm does not move running tasks to a node that becomes available: it only places new ones")
    if availability != "active":
        word = {"drain": "drained", "pause": "paused"}.get(str(availability), availability)
        return Result(False, f"worker2 is still {word}.", evidence,
                      hint="`docker node update --availability active worker2` on manager1.")
    return judge_answer(ctx, ["no", "n", "they stay", "no they stay"], evidence)


@check("rebalanced")
def rebalanced(ctx: Context) -> Result:
    """`docker service update --force`: tasks replaced, and spread over both workers again."""
    service, failure = _pinger(ctx)
    if failure:
        return failure
    assert service is not None
    running = _running(ctx, service)
    forced = service["Spec"]["TaskTemplate"].get("ForceUpdate", 0)
    evidence = (f"tasks: {_spread(running)}", f"forced updates: {forced}")
    if len(set(running) & {"worker1", "worker2"}) < 2 or len(running) < 3:
        return Result(False, "pinger's tasks are not on both workers yet.", evidence, pending=bool(forced),
                      hint="`docker service update --force pinger` replaces every task: new tasks are spread.")
    return Result(True, "pinger is spread over both workers again.", evidence)


def _agent(ctx: Context) -> tuple[dict[str, Any] | None, Result | None]:
    service, failure = ctx.required_service("agent")
    if service is None:
        return None, failure
    if "Global" not in service["Spec"].get("Mode", {}):
        return None, Result(False, "agent is a replicated service, not a global one.",
                            hint="Remove it and create it with `--mode global`.")
    return service, None


def _eligible(ctx: Context) -> list[str]:
    return sorted(n for n, node in ctx.nodes_by_hostname().items()
                  if node["Status"]["State"] == "ready" and node["Spec"].get("Availability") == "active")


@check("global_service", answer=lambda ctx: str(len(_eligible(ctx))))
def global_service(ctx: Context) -> Result:
    """A global service: one task on every active node; the learner predicted how many."""
    service, failure = _agent(ctx)
    if failure:
        return failure
    assert service is not None
    eligible, running = _eligible(ctx), _running(ctx, service)
    evidence = (f"active, ready nodes: {', '.join(eligible)}", f"agent tasks: {_spread(running)}")
    if sorted(running) != eligible:
        return Result(False, "agent is starting its tasks.", evidence, pending=True, hint="Wait a moment.")
    word = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}.get(len(eligible), "")
    return judge_answer(ctx, [str(len(eligible)), f"{len(eligible)} tasks", "one per node", word], evidence)


@check("global_join_later")
def global_join_later(ctx: Context) -> Result:
    """worker2 left and joined again, as a new node: the global service started a task on it by itself."""
    service, failure = _agent(ctx)
    if failure:
        return failure
    assert service is not None
    nodes = ctx.nodes_by_hostname()
    worker2 = nodes.get("worker2")
    if worker2 is None or worker2["Status"]["State"] != "ready":
        return Result(False, "worker2 is not a Ready member of the swarm.", hint=ctx.step.hints[0],
                      pending=worker2 is not None)
    if timestamp(worker2["CreatedAt"]) <= timestamp(service["CreatedAt"]):
        return Result(False, "worker2 joined before agent was created: it is not a node that joined later.",
                      (f"worker2 joined {worker2['CreatedAt'][:19]}", f"agent created {service['CreatedAt'][:19]}"),
                      hint=ctx.step.hints[0])
    running = _running(ctx, service)
    evidence = (f"worker2 joined at {worker2['CreatedAt'][11:19]}, after agent was created "
                f"({service['CreatedAt'][11:19]})", f"agent tasks: {_spread(running)}")
    if "worker2" not in running:
        return Result(False, "agent has no task on the new worker2 yet.", evidence, pending=True, hint="Wait.")
    return Result(True, "The new worker2 got its agent task without anyone asking.", evidence)


@check("scaled_in")
def scaled_in(ctx: Context) -> Result:
    """pinger scaled in to one replica: Swarm chose which tasks to stop."""
    service, failure = _pinger(ctx)
    if failure:
        return failure
    assert service is not None
    replicas = replicas_of(service)
    running = _running(ctx, service)
    evidence = (f"pinger asks for {replicas} replica(s); running: {_spread(running)}",)
    if replicas != 1:
        return Result(False, f"pinger asks for {replicas} replica(s); this step scales it in to 1.", evidence,
                      hint=ctx.step.hints[0])
    if len(running) != 1:
        return Result(False, "pinger's extra tasks are stopping.", evidence, pending=True, hint="Wait a moment.")
    return Result(True, "pinger scaled in to one task.", evidence)


@check("spread_pref")
def spread_pref(ctx: Context) -> Result:
    """Workers in two zones (node labels) and pinger spread evenly over them: 4 replicas, 2 in each zone."""
    service, failure = _pinger(ctx)
    if failure:
        return failure
    assert service is not None
    zones = {n: node["Spec"].get("Labels", {}).get("zone") for n, node in ctx.nodes_by_hostname().items()}
    placement = service["Spec"]["TaskTemplate"].get("Placement") or {}
    prefs = [p.get("Spread", {}).get("SpreadDescriptor", "") for p in placement.get("Preferences") or []]
    replicas = replicas_of(service)
    running = _running(ctx, service)
    evidence = ("zones: " + (", ".join(f"{n} {z}" for n, z in sorted(zones.items()) if z) or "none"),
                f"placement preferences: {', '.join(f'spread {p}' for p in prefs) or 'none'}",
                f"tasks: {_spread(running)}")
    if not zones.get("worker1") or not zones.get("worker2") or zones["worker1"] == zones["worker2"]:
        return Result(False, "worker1 and worker2 are not in two different zones.", evidence,
                      hint="`docker node update --label-add zone=east worker1`, and `zone=west` for worker2.")
    if "node.labels.zone" not in prefs:
        return Result(False, "pinger has no preference to spread its tasks over the zones.", evidence,
                      hint="`docker service update --placement-pref-add spread=node.labels.zone --replicas 4 pinger`.")
    if replicas != 4:
        return Result(False, f"pinger asks for {replicas} replica(s); this step uses 4.", evidence,
                      hint="`docker service update --replicas 4 pinger`.")
    per_zone = sorted(sum(1 for n in running if zones.get(n) == z) for z in {zones["worker1"], zones["worker2"]})
    if len(running) < 4 or per_zone != [2, 2]:
        return Result(False, "pinger's tasks are being spread over the zones.", evidence, pending=True,
                      hint="The update replaces the tasks one by one: watch the map.")
    return Result(True, "pinger's 4 tasks are spread evenly over the two zones: 2 in each.", evidence)
