"""Checks of swarm membership: init, the leader, joining workers."""

from __future__ import annotations

from labkit.checks.base import Context, Result, check, judge_answer
from labkit.swarm import leader_hostname


def _manager_state(ctx: Context) -> str:
    return str(ctx.swarm_state(ctx.manager).get("LocalNodeState", "inactive"))


@check("swarm_state_answer", answer=_manager_state)
def swarm_state_answer(ctx: Context) -> Result:
    """`docker info | grep Swarm` on manager1. 'inactive' stays right after init."""
    state = _manager_state(ctx)
    return judge_answer(ctx, {"inactive", state}, [f"{ctx.manager.name}: Swarm: {state}"])


def _foreign_swarms(ctx: Context) -> list[str]:
    """Nodes other than the first manager that lead a swarm of their own."""
    names = []
    for node in ctx.cluster.nodes:
        if node is ctx.manager or node.name == ctx.manager.name:
            continue
        state = ctx.swarm_state(node)
        ours = ctx.swarm_state(ctx.manager).get("Cluster", {}).get("ID")
        leads = state.get("LocalNodeState") == "active" and state.get("ControlAvailable")
        if leads and state.get("Cluster", {}).get("ID") != ours:
            names.append(node.name)
    return names


def _wrong_swarm_hint(names: list[str]) -> str:
    first = names[0]
    return (f"`docker swarm init` ran on {first}, so {first} leads a swarm of its own. On {first} run "
            f"`docker swarm leave --force`; then init on manager1 and join {first} with the worker token.")


@check("swarm_initialised")
def swarm_initialised(ctx: Context) -> Result:
    state = ctx.swarm_state(ctx.manager)
    local = state.get("LocalNodeState", "inactive")
    foreign = _foreign_swarms(ctx)
    if local == "pending":
        return Result(False, f"{ctx.manager.name} is still joining or creating a swarm.", pending=True)
    if local != "active":
        if foreign:
            return Result(False, f"Swarm mode is active on {', '.join(foreign)}, but not on {ctx.manager.name}.",
                          tuple(f"{n}: leads its own swarm" for n in foreign), hint=_wrong_swarm_hint(foreign))
        return Result(False, f"Swarm mode is still inactive on {ctx.manager.name}.",
                      (f"{ctx.manager.name}: Swarm: {local}",), hint=ctx.step.hints[0])
    if not state.get("ControlAvailable"):
        return Result(False, f"{ctx.manager.name} is in a swarm, but as a worker.",
                      hint=f"On {ctx.manager.name} run `docker swarm leave --force`, then `docker swarm init`.")
    me = ctx.api.inspect_node(state["NodeID"])
    leader = me.get("ManagerStatus", {}).get("Leader", False)
    evidence = (f"{ctx.manager.name}: Swarm: active, manager, {'Leader' if leader else 'not the leader'}",
                f"swarm id {state.get('Cluster', {}).get('ID', '?')[:12]}")
    if not leader:
        other = leader_hostname(ctx.api)
        if other and other != ctx.manager.name:
            return Result(False, f"{other} leads the swarm; {ctx.manager.name} joined it instead of creating it.",
                          evidence, hint=f"This course builds the swarm on {ctx.manager.name}: on every node run "
                          f"`docker swarm leave --force`, then `docker swarm init` on {ctx.manager.name}.")
        return Result(False, f"{ctx.manager.name} is a manager but not the leader yet.", evidence, pending=True)
    return Result(True, f"Swarm mode is active and {ctx.manager.name} is its leader.", evidence)


def _leader(ctx: Context) -> str:
    return leader_hostname(ctx.api)


@check("leader_answer", answer=_leader)
def leader_answer(ctx: Context) -> Result:
    if not ctx.swarm_active():
        return ctx.not_initialised()
    nodes = ctx.api.nodes()
    evidence = [f"{len(nodes)} node(s) in the swarm"] + [
        f"{n['Description']['Hostname']}: {n['Spec']['Role']}, {n['Status']['State']}"
        + (", Leader" if n.get("ManagerStatus", {}).get("Leader") else "")
        for n in nodes
    ]
    return judge_answer(ctx, [_leader(ctx)], evidence)


@check("workers_joined")
def workers_joined(ctx: Context) -> Result:
    if not ctx.swarm_active():
        return ctx.not_initialised()
    wanted = list(ctx.params.get("workers", [n.name for n in ctx.cluster.workers]))
    members = {n["Description"]["Hostname"]: n for n in ctx.api.nodes()}
    evidence = tuple(f"{name}: {n['Spec']['Role']}, {n['Status']['State']}" for name, n in sorted(members.items()))
    as_manager = [w for w in wanted if w in members and members[w]["Spec"]["Role"] == "manager"]
    if as_manager:
        w = as_manager[0]
        return Result(False, f"{w} joined as a manager, not as a worker.", evidence,
                      hint=f"That was the manager token. On {ctx.manager.name} run `docker node demote {w}` "
                      "(or on the node: `docker swarm leave --force`, then join with the worker token).")
    foreign = [w for w in _foreign_swarms(ctx) if w in wanted]
    if foreign:
        return Result(False, f"{foreign[0]} leads a swarm of its own instead of joining this one.", evidence,
                      hint=_wrong_swarm_hint(foreign))
    missing = [w for w in wanted if w not in members]
    if missing:
        return Result(False, f"{' and '.join(missing)} {'has' if len(missing) == 1 else 'have'} not joined yet.",
                      evidence, hint=ctx.step.hints[0])
    not_ready = [w for w in wanted if members[w]["Status"]["State"] != "ready"]
    if not_ready:
        return Result(False, f"{', '.join(not_ready)} joined but {'is' if len(not_ready) == 1 else 'are'} "
                      "not Ready yet.", evidence, pending=True)
    return Result(True, f"{len(members)} nodes are Ready: {', '.join(wanted)} as workers.", evidence)


def _worker_answer(ctx: Context, node: str) -> tuple[str, str]:
    """What `docker node ls` gives on NODE: ('error', its message) or ('list', ...)."""
    done = ctx.cluster[node].run("docker node ls")
    return ("list", done.stdout) if done.ok else ("error", (done.stderr or done.stdout).strip())


@check("worker_view_answer", answer=lambda ctx: "an error")
def worker_view_answer(ctx: Context) -> Result:
    """`docker node ls` on a worker: refused, since only managers serve the control API."""
    if not ctx.swarm_active():
        return ctx.not_initialised()
    node = str(ctx.params.get("node", "worker1"))
    state = ctx.swarm_state(ctx.cluster[node])
    if state.get("LocalNodeState") != "active" or state.get("ControlAvailable"):
        if state.get("ControlAvailable"):
            return Result(False, f"{node} is a manager: this step looks at a worker.",
                          hint=f"On {ctx.manager.name} run `docker node demote {node}`, then look again.")
        return Result(False, f"{node} is not in the swarm: this step looks at a worker.",
                      hint=f"Join {node} as a worker first (lab nodes, step join).")
    kind, text = _worker_answer(ctx, node)
    evidence = [f"{node}$ docker node ls: {text.splitlines()[0] if text else kind}",
                f"{node} is in the swarm (Swarm: active) but is not a manager"]
    accepted = ["error", "an error", "it fails", "fails", "it fails with an error", "failure", "refused",
                "it is refused", "not a swarm manager", "this node is not a swarm manager",
                "an error: this node is not a swarm manager"]
    return judge_answer(ctx, accepted if kind == "error" else ["list", "the nodes"], evidence)
