"""Checks of node failure: a node powered off, its task re-created elsewhere (and how long that took),
the node back without its task, a partitioned node still running its old task beside the replacement."""

from __future__ import annotations

from typing import Any

from labkit.checks.base import Context, Result, check, judge_answer, replicas_of, timestamp
from labkit.swarm import task_containers

PINGER = "pinger"










def _where(ctx: Context, tasks: list[dict[str, Any]]) -> list[str]:
    hosts = ctx.hostnames()
    return sorted(hosts.get(t["NodeID"], "?") for t in tasks)


def _pinger(ctx: Context) -> tuple[dict[str, Any] | None, Result | None]:
    return ctx.required_service(PINGER)


def _states(nodes: dict[str, dict[str, Any]]) -> str:
    return ", ".join(f"{n} {node['Status']['State']}" for n, node in sorted(nodes.items()))


@check("spread_service")
def spread_service(ctx: Context) -> Result:
    """pinger: 3 tasks, one on each node."""
    service, failure = _pinger(ctx)
    if failure:
        return failure
    assert service is not None
    replicas = replicas_of(service)
    if replicas != 3:
        return Result(False, f"pinger asks for {replicas} replica(s); this lab uses 3.",
                      hint="`docker service update --replicas 3 pinger`.")
    where = _where(ctx, ctx.running_tasks(service))
    evidence = (f"pinger tasks on: {', '.join(where) or 'none'}",)
    if len(where) < 3 or len(set(where)) < 3:
        return Result(False, "pinger's tasks are starting.", (*evidence, *ctx.not_running(service)), pending=True,
                      hint="Wait a moment.")
    return Result(True, "pinger runs one task on each node.", evidence)


def _down_and_replaced(ctx: Context, node: str) -> tuple[Result, dict[str, Any] | None]:
    """NODE marked Down by the managers, and pinger back to 3 running tasks without it."""
    service, failure = _pinger(ctx)
    if failure:
        return failure, None
    assert service is not None
    nodes = ctx.nodes_by_hostname()
    running = ctx.running_tasks(service)
    where = _where(ctx, running)
    evidence = [f"nodes: {_states(nodes)}", f"pinger tasks running on: {', '.join(where) or 'none'}"]
    state = nodes.get(node, {}).get("Status", {}).get("State")
    if state != "down":
        target = ctx.cluster[node]
        failed = (target.network_state() == "disconnected" if ctx.params.get("partition")
                  else target.health() != "running")
        if not failed:
            what = "on the lab network" if ctx.params.get("partition") else "running"
            return Result(False, f"{node} is still {what}.", tuple(evidence), hint=ctx.step.hints[0]), None
        return Result(False, f"The managers have not marked {node} Down yet ({state}): they wait for missed "
                      "heartbeats.", tuple(evidence), pending=True, hint="Watch `docker node ls`."), None
    if len(running) < 3 or node in where:
        return Result(False, f"{node} is Down; the orchestrator is re-creating its task elsewhere.",
                      tuple(evidence), pending=True, hint="Watch the map."), None
    down_at = timestamp(nodes[node]["UpdatedAt"])
    replacement = max(running, key=lambda t: timestamp(t["Status"]["Timestamp"]))
    started = timestamp(replacement["Status"]["Timestamp"])
    evidence.append(f"{node} marked Down at {down_at:%H:%M:%S}; its task re-created on "
                    f"{ctx.hostnames().get(replacement['NodeID'], '?')}, running at {started:%H:%M:%S} "
                    f"({max(0.0, (started - down_at).total_seconds()):.1f} s after)")
    return Result(True, f"{node} is Down and pinger runs 3 tasks without it.", tuple(evidence)), service


@check("node_down", answer=lambda ctx: "3")
def node_down(ctx: Context) -> Result:
    """worker2 powered off: marked Down, its task re-created elsewhere; the learner predicted the count."""
    result, _ = _down_and_replaced(ctx, str(ctx.params.get("node", "worker2")))
    if not result.passed:
        return result
    return judge_answer(ctx, ["3", "three", "3 tasks"], result.evidence)


@check("node_back", answer=lambda ctx: "no")
def node_back(ctx: Context) -> Result:
    """worker2 powered on again: Ready, and its old task did not come back to it."""
    service, failure = _pinger(ctx)
    if failure:
        return failure
    assert service is not None
    node = str(ctx.params.get("node", "worker2"))
    nodes = ctx.nodes_by_hostname()
    where = _where(ctx, ctx.running_tasks(service))
    evidence = (f"nodes: {_states(nodes)}", f"pinger tasks running on: {', '.join(where)}",
                "Swarm does not move running tasks to a node that comes back")
    if nodes.get(node, {}).get("Status", {}).get("State") != "ready":
        pending = ctx.cluster[node].health() == "running"
        return Result(False, f"{node} is not Ready yet.", evidence, pending=pending, hint=ctx.step.hints[0])
    return judge_answer(ctx, ["no", "n", "they stay", "no they stay"], evidence)


def _copies(ctx: Context) -> dict[str, int]:
    """pinger's containers running on each node, as each node's own engine says (managers' view aside)."""
    found = {}
    for node in ctx.cluster.nodes:
        found[node.name] = len(task_containers(node.docker, PINGER))
    return found


@check("partitioned", answer=lambda ctx: str(sum(_copies(ctx).values())))
def partitioned(ctx: Context) -> Result:
    """worker1 cut off: the managers re-create its task elsewhere while worker1 keeps running the old one."""
    node = str(ctx.params.get("node", "worker1"))
    result, _ = _down_and_replaced(ctx, node)
    if not result.passed:
        return result
    copies = _copies(ctx)
    evidence = (*result.evidence,
                "containers of pinger, as each engine reports: "
                + ", ".join(f"{n} {c}" for n, c in sorted(copies.items())),
                f"{node} cannot hear the managers, so it keeps its task running: two copies of one slot")
    if copies.get(node, 0) == 0:
        return Result(False, f"{node} no longer runs its old task.", evidence,
                      hint=f"Was {node} stopped instead of disconnected? `labkit node disconnect {node}`.")
    total = sum(copies.values())
    return judge_answer(ctx, [str(total), f"{total} containers"], evidence)


@check("partition_healed")
def partition_healed(ctx: Context) -> Result:
    """worker1 reconnected: Ready again, and the managers stopped its stale copy (3 containers in all)."""
    _, failure = _pinger(ctx)
    if failure:
        return failure
    node = str(ctx.params.get("node", "worker1"))
    nodes = ctx.nodes_by_hostname()
    copies = _copies(ctx)
    evidence = (f"nodes: {_states(nodes)}",
                "containers of pinger: " + ", ".join(f"{n} {c}" for n, c in sorted(copies.items())))
    if nodes.get(node, {}).get("Status", {}).get("State") != "ready":
        return Result(False, f"{node} is not Ready yet.", evidence, pending=True, hint=ctx.step.hints[0])
    if sum(copies.values()) != 3:
        return Result(False, f"{node} is back; the managers are stopping its stale task.", evidence, pending=True,
                      hint="Wait a moment: the old copy is shut down once the node hears the managers again.")
    return Result(True, f"{node} is back and its stale copy is gone: 3 containers for 3 replicas.", evidence)
