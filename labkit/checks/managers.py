"""Checks of Raft among managers: how many managers a swarm may lose (quorum), an even number that adds
nothing, a leader elected when the leader goes off (and how long that took), changes refused without
quorum while tasks keep running, and a new cluster forced from the last manager."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import docker.errors
import requests.exceptions

from labkit.backends.base import PROMPT, Node
from labkit.checks.base import Context, Result, check, judge_answer, replicas_of, timestamp
from labkit.checks.pki import cert_on_disk
from labkit.swarm import task_containers

PINGER = "pinger"
NO_LEADER = ("does not have a leader", "lost leader status", "DeadlineExceeded", "context deadline exceeded")


def tolerance(managers: int) -> int:
    """How many managers a swarm of MANAGERS may lose and still have a quorum (a majority of all of them)."""
    return (managers - 1) // 2


def _managers(ctx: Context) -> dict[str, dict[str, Any]]:
    """The swarm's managers by hostname, as the managers see them: the nodes in Raft (with a MANAGER STATUS).
    After `--force-new-cluster` the lost managers keep their role in the node list, but not their seat."""
    return _seated(ctx.nodes_by_hostname())


def _seated(nodes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The nodes of NODES that have a seat in Raft (a MANAGER STATUS)."""
    return {h: n for h, n in nodes.items() if n.get("ManagerStatus")}


def _status(nodes: dict[str, dict[str, Any]]) -> str:
    """'manager1 Leader, manager2 Reachable, ...' as `docker node ls` shows MANAGER STATUS."""
    def word(node: dict[str, Any]) -> str:
        status = node.get("ManagerStatus") or {}
        return "Leader" if status.get("Leader") else str(status.get("Reachability", "?")).capitalize()
    return ", ".join(f"{h} {word(n)}" for h, n in sorted(nodes.items()))


def _leader(nodes: dict[str, dict[str, Any]]) -> str:
    return next((h for h, n in nodes.items() if (n.get("ManagerStatus") or {}).get("Leader")), "")


def _answer_count(ctx: Context) -> str:
    return str(tolerance(len(_managers(ctx))))


@check("manager_quorum", answer=_answer_count)
def manager_quorum(ctx: Context) -> Result:
    """The swarm has the step's number of managers (params.managers), all reachable; the learner says how
    many of them it may lose. An even number is named as the mistake it is."""
    if not ctx.swarm_active():
        return ctx.not_initialised()
    nodes = ctx.nodes_by_hostname()  # one answer for all that follows: a promoted node may take its seat meanwhile
    managers = _seated(nodes)
    wanted = int(ctx.params.get("managers", 3))
    count = len(managers)
    others = ", ".join(f"{h} {n['Spec'].get('Role')} ({n['Status'].get('State')})" for h, n in sorted(nodes.items())
                       if h not in managers)
    evidence = (f"managers: {_status(managers)}",
                f"{count} manager{'' if count == 1 else 's'}: a quorum is {count // 2 + 1}, so {tolerance(count)} "
                "may be lost")
    joining = sorted(h for h, n in nodes.items() if n["Spec"].get("Role") == "manager" and not n.get("ManagerStatus"))
    if count < wanted and joining:
        return Result(False, f"{', '.join(joining)}: manager by role, not yet back in Raft.", evidence,
                      pending=True, hint="A manager that comes back waits for a seat in Raft: watch `docker node "
                      "ls` until it is Reachable (up to a minute).")
    if count != wanted:
        even = (f" An even number adds no tolerance: {count} managers may lose {tolerance(count)}, like "
                f"{count - 1}." if count % 2 == 0 else "")
        return Result(False, f"The swarm has {count} manager{'' if count == 1 else 's'}; this step wants "
                      f"{wanted}.{even}", (*evidence, f"not in Raft: {others or 'none'}"),
                      hint=ctx.step.hints[0])
    unreachable = sorted(h for h, n in managers.items()
                         if (n.get("ManagerStatus") or {}).get("Reachability") != "reachable")
    if unreachable:
        return Result(False, f"{', '.join(unreachable)} {'is' if len(unreachable) == 1 else 'are'} not reachable "
                      "yet.", evidence, pending=True,
                      hint="A new manager needs a few seconds to join Raft: watch `docker node ls`.")
    demoted = ctx.params.get("demoted")
    unsettled = _unsettled_worker(ctx, str(demoted), managers) if demoted else ""
    if unsettled:
        return Result(False, unsettled, evidence, pending=True,
                      hint=f"A demoted manager needs a few seconds to become a worker: its engine trades its "
                      f"manager certificate for a worker's and learns every manager (`docker info` on {demoted}).")
    if not ctx.step.question:
        return Result(True, f"{count} managers, all reachable: the swarm may lose {tolerance(count)}.", evidence)
    return judge_answer(ctx, [str(tolerance(count)), ["none", "one", "two", "three"][min(tolerance(count), 3)]],
                        evidence)


def _unsettled_worker(ctx: Context, name: str, managers: dict[str, dict[str, Any]]) -> str:
    """Why NAME, just demoted, is not a worker in its own eyes yet ('' when it is): its engine still runs a
    manager, reports an error, still holds a manager's certificate, or knows fewer managers than there are.
    Its manager stops at once, but the worker's certificate comes from the leader's CA some seconds later
    (8 s measured here). If the managers become unreachable in between, the engine gives up waiting after
    twice 16 s, starts its manager again, fails (it is out of Raft) and stays Down: the managers lab lost
    worker1 so in regression runs, which power manager1 off right after the demote."""
    node = ctx.cluster[name]
    state = ctx.swarm_state(node)
    if state.get("ControlAvailable"):
        return f"{name} still runs as a manager: it is leaving Raft."
    if state.get("Error") or state.get("LocalNodeState") != "active":
        return f"{name} is becoming a worker: {state.get('Error') or state.get('LocalNodeState')}."
    cert = cert_on_disk(node)
    ou = cert["subject"].get("OU") if cert else "unreadable"
    if ou != "swarm-worker":
        return f"{name} has left Raft; the certificate on its disk still says OU={ou}, a worker's is on its way."
    known = {m.get("Addr") for m in state.get("RemoteManagers") or []}
    seated = {(n.get("ManagerStatus") or {}).get("Addr") for n in managers.values()}
    if not seated <= known:
        return f"{name} is a worker again, and knows {len(known & seated)} of the {len(seated)} managers yet."
    return ""


@check("pinger_on_workers")
def pinger_on_workers(ctx: Context) -> Result:
    """pinger: params.replicas tasks (2), on the workers only, so stopping managers stops none of them."""
    service, failure = ctx.required_service(PINGER)
    if failure:
        return failure
    assert service is not None
    constraints = service["Spec"]["TaskTemplate"].get("Placement", {}).get("Constraints") or []
    hosts = ctx.hostnames()
    where = sorted(hosts.get(t["NodeID"], "?") for t in ctx.running_tasks(service))
    evidence = (f"constraints: {', '.join(constraints) or 'none'}", f"pinger tasks on: {', '.join(where) or 'none'}")
    if "node.role==worker" not in [c.replace(" ", "") for c in constraints]:
        return Result(False, "pinger may run on managers; this lab keeps its tasks on the workers.", evidence,
                      hint="`docker service update --constraint-add node.role==worker pinger`, or create it "
                      "as shown.")
    wanted = int(ctx.params.get("replicas", 2))
    replicas = replicas_of(service)
    if replicas != wanted:
        return Result(False, f"pinger asks for {replicas} replica(s); this step wants {wanted}.", evidence,
                      hint=ctx.step.hints[0])
    if len(where) < wanted:
        return Result(False, "pinger's tasks are starting.", (*evidence, *ctx.not_running(service)), pending=True,
                      hint="Wait a moment.")
    return Result(True, f"pinger runs {wanted} tasks, on the workers only.", evidence)


def _running_on_workers(ctx: Context) -> dict[str, int]:
    """pinger's containers running on each worker, as the worker's own engine says (no manager needed)."""
    found = {}
    for node in ctx.cluster.workers:
        found[node.name] = len(task_containers(node.docker, PINGER)) if node.engine_answers() else 0
    return found


def _election(ctx: Context, api: Any, old: Node) -> str:
    """How long after OLD went off a new leader took office: a new leader's dispatcher marks every node
    unknown until it hears their heartbeats (engine node events), so the first such event after the
    stop is when it started to lead."""
    stopped = old.stopped_at()
    if not stopped:
        return "when the new leader took office: unknown (labkit cannot tell when the old one stopped)"
    since = timestamp(stopped)
    until = min(since + timedelta(minutes=5), datetime.now(UTC))  # a later one streams live events until then
    events = api.events(since=int(since.timestamp()), until=int(until.timestamp()),
                        filters={"type": "node", "event": "update"}, decode=True)
    for event in events:
        attrs = event.get("Actor", {}).get("Attributes", {})
        at = timestamp_ns(event.get("timeNano", 0))
        if at > since and attrs.get("state.old") == "ready" and attrs.get("state.new") == "unknown":
            return (f"a new leader took office {(at - since).total_seconds():.1f} s after {old.name} went off "
                    "(its dispatcher marked every node unknown until their heartbeats came)")
    return "when the new leader took office: not in the engine's events"


def timestamp_ns(nanos: int) -> datetime:
    """An engine event's timeNano as a datetime (UTC)."""
    return datetime.fromtimestamp(nanos / 1e9, UTC)


def _elected_answer(ctx: Context) -> str:
    return str(len(_managers(ctx)) // 2 + 1)


@check("leader_elected", answer=_elected_answer)
def leader_elected(ctx: Context) -> Result:
    """params.node (the leader) off: the other managers elected a leader among themselves, pinger kept its
    tasks; the learner predicted how many managers must agree (a majority of all, the stopped one counts)."""
    gone = str(ctx.params.get("node", "manager1"))
    if ctx.cluster[gone].health() == "running":
        return Result(False, f"{gone} is still running.", hint=ctx.step.hints[0])
    if ctx.manager.name == gone:
        return Result(False, "No other manager answers with the control API yet.", pending=True,
                      hint="The managers wait for missed heartbeats before they elect: watch `docker node ls` "
                      "on manager2.")
    try:
        managers = _managers(ctx)
    except docker.errors.APIError as exc:
        return Result(False, "The managers are electing a new leader.", (str(exc.explanation),), pending=True,
                      hint="An election starts after a few missed heartbeats: give it 10 to 20 s.")
    leader = _leader(managers)
    evidence = [f"managers: {_status(managers)}",
                "pinger containers running on: " + ", ".join(f"{n} {c}" for n, c in _running_on_workers(ctx).items())]
    if not leader or leader == gone:
        return Result(False, "The managers have not elected a new leader yet.", tuple(evidence), pending=True,
                      hint="An election starts after a few missed heartbeats: give it 10 to 20 s.")
    evidence.append(_election(ctx, ctx.api, ctx.cluster[gone]))
    majority = len(managers) // 2 + 1
    return judge_answer(ctx, [str(majority), ["", "one", "two", "three", "four"][min(majority, 4)]], tuple(evidence))


def _no_leader(ctx: Context) -> tuple[Node | None, str, bool]:
    """A manager whose engine answers but whose swarm has no leader (quorum lost), what it said, and whether
    it held the question instead: a manager that has lost its leader answers only once it notices (10 Raft
    ticks), and waits for a leader until dockerd's 20 s deadline before that. labkit waits PROMPT seconds."""
    for node in ctx.cluster.managers:
        if node.health() != "running":
            continue
        try:
            node.docker_prompt.api.nodes()
        except requests.exceptions.Timeout:
            return node, f"no answer within {PROMPT} s (it waits for a leader)", True
        except docker.errors.APIError as exc:
            said = str(exc.explanation or exc)
            if any(s in said for s in NO_LEADER):
                return node, said, False
    return None, "", False


@check("quorum_lost", answer=lambda ctx: "yes" if sum(_running_on_workers(ctx).values()) else "no")
def quorum_lost(ctx: Context) -> Result:
    """Two of three managers off: the last one answers but refuses changes (no leader), while pinger's
    tasks keep running on the workers; the learner predicted that they keep running. A manager that holds
    the question has no leader either (Swarm would refuse it at dockerd's 20 s deadline)."""
    off = [n.name for n in ctx.cluster.managers if n.health() != "running"]
    node, said, held = _no_leader(ctx)
    running = _running_on_workers(ctx)
    evidence = (f"managers off: {', '.join(off) or 'none'}",
                f"{node.name if node else 'the managers'}: {said or 'a leader answers'}",
                "pinger containers running on: " + ", ".join(f"{n} {c}" for n, c in running.items()))
    if node is None or (held and len(off) < 2):
        if len(off) < 2:
            return Result(False, f"Only {len(off)} manager(s) off: the others still make a majority.", evidence,
                          hint=ctx.step.hints[0])
        return Result(False, "The last manager has not noticed yet that it lost its quorum.", evidence,
                      pending=True, hint="Wait a few seconds and run `docker node ls` on it again.")
    return judge_answer(ctx, ["yes", "y", "they keep running"] if sum(running.values()) else ["no", "n"], evidence)


@check("leader_back")
def leader_back(ctx: Context) -> Result:
    """A manager is back: with 2 of 3 reachable the swarm has a leader again and accepts changes."""
    node, said, _ = _no_leader(ctx)
    if node is not None:
        off = [n.name for n in ctx.cluster.managers if n.health() != "running"]
        evidence = (f"{node.name}: {said}", f"managers off: {', '.join(off)}")
        if len(off) < 2:  # a majority is on again: they are electing
            return Result(False, "The managers are electing a leader.", evidence, pending=True,
                          hint="A majority of the managers is on again: they elect a leader within 10 to 20 s.")
        return Result(False, "The swarm still has no leader: too few managers are on.", evidence,
                      hint=ctx.step.hints[0])
    try:
        managers = _managers(ctx)
    except docker.errors.APIError as exc:
        return Result(False, "The managers are electing a leader.", (str(exc.explanation),), pending=True,
                      hint="Give it a few seconds.")
    leader = _leader(managers)
    evidence = (f"managers: {_status(managers)}",)
    if not leader:
        return Result(False, "The managers are electing a leader.", evidence, pending=True, hint="Wait a moment.")
    down = set(ctx.params.get("nodes_down", []))
    silent = sorted(f"{h} ({n['Status'].get('State')})" for h, n in ctx.nodes_by_hostname().items()
                    if h not in down and n["Status"].get("State") != "ready")
    if silent:  # a new leader's dispatcher marks every node unknown until it hears from it
        return Result(False, f"The swarm has a leader again; not every node reports to it yet: {', '.join(silent)}.",
                      evidence, pending=True, hint="Each node's agent finds the new leader within seconds: watch "
                      "`docker node ls` until they are Ready.")
    return Result(True, "The swarm has a leader again, and every node that is on reports to it.", evidence)


@check("new_cluster", answer=lambda ctx: "yes" if ctx.service(PINGER) else "no")
def new_cluster(ctx: Context) -> Result:
    """`docker swarm init --force-new-cluster` on params.node: it is the only manager and leads; the
    services are still there (rebuilt from its copy of the Raft log)."""
    node = str(ctx.params.get("node", "manager3"))
    try:
        managers = _managers(ctx) if ctx.manager.name == node else {}
    except docker.errors.APIError as exc:
        said = str(exc.explanation or exc)
        return Result(False, f"{node} has no quorum: it cannot lead alone.", (f"{node}: {said}",),
                      hint=ctx.step.hints[0])
    if not managers:
        return Result(False, f"{node} does not manage the swarm on its own yet.", hint=ctx.step.hints[0])
    evidence = (f"managers: {_status(managers)}", f"pinger: {'there' if ctx.service(PINGER) else 'gone'}")
    if list(managers) != [node]:
        return Result(False, f"{node} is not the only manager yet.", evidence, hint=ctx.step.hints[0])
    return judge_answer(ctx, ["yes", "y", "it is"] if ctx.service(PINGER) else ["no", "n"], evidence)
