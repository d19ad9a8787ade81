"""Run checks, apply solutions, rewind: what `labkit check/solve/reset` and the widgets call."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker.errors

from labkit import outbox, rewind
from labkit.backends.base import RunResult, wait_for
from labkit.checks import ANSWERS, CHECKS, Context, Result
from labkit.cluster import Cluster
from labkit.errors import LabkitError, NodeDown, SolutionFailed
from labkit.fields import render
from labkit.labs import HOST, Command, Lab, Step, all_steps, host_action, load_labs
from labkit.progress import Progress, log_exception
from labkit.report import Report
from labkit.swarm import form_swarm


def course(directory: Path | None = None) -> list[Lab]:
    """Every lab in course order, each step's check known to the registry."""
    return load_labs(directory, known_checks=set(CHECKS))


ENGINE_WAIT = 30.0  # s an engine that dropped a request has to answer again
POLL = 0.1  # s between checks while the cluster converges (a check takes ~40 ms)
LEAD_WAIT = 3.0  # s a manager asked to campaign in a replay has to lead


def run_check(cluster: Cluster, step: Step, answer: str | None = None, wait: bool = True,
              progress: Progress | None = None, settle: bool = False, look: dict[str, Any] | None = None) -> Result:
    """Check STEP on the live cluster. Never raises: any failure becomes a Result that says what happened.

    A check that reports the cluster still converging is repeated for up to the step's ``wait``
    seconds. With SETTLE (right after a solution ran) any failure is retried within that bound.
    LOOK: what the look that found ANSWER saw (see checks.base.per_look), for the first check only.
    """
    progress = progress or Progress(cluster.lab)
    if answer is not None:
        progress.record(step.ref, answer=answer)
    else:
        answer = progress.answer(step.ref)
    started = time.monotonic()
    deadline = started + (step.wait if wait else 0)
    while True:
        result = _one_check(cluster, step, answer, look)
        look = None  # a look again: the cluster moves on
        if result.passed or not (result.pending or settle) or time.monotonic() >= deadline:
            break
        time.sleep(POLL)
    elapsed = time.monotonic() - started
    if result.pending and not result.passed and wait and step.wait:
        result = replace(result, summary=f"Still not there after {step.wait:g} s: {result.summary}")
    progress.record(step.ref, passed=result.passed)
    lab, _, step_id = step.ref.partition(":")
    outbox.add(lab, step_id, result.passed, result.summary, result.hint or "", elapsed,
               directory=progress.path.parent)  # for the room, if the learner joined one (never waits)
    return replace(result, seconds=elapsed)


def _one_check(cluster: Cluster, step: Step, answer: str | None, look: dict[str, Any] | None = None) -> Result:
    """One look at the cluster. A failure with a node down says which node and what to do; nothing a
    learner sees ever holds exception text (the details go to labkit's log)."""
    try:
        result = CHECKS[step.check](Context(cluster, step, answer, look={} if look is None else look))
    except NodeDown as exc:
        return _node_down(cluster, exc)
    except LabkitError as exc:
        return Result(False, str(exc), hint="`labkit status` shows whether the lab runs; `labkit up` starts it.")
    except Exception as exc:  # a check must never show a learner a traceback
        fault = _first_fault(cluster, _expected_down(step))
        if fault is not None:
            return _node_down(cluster, fault)
        log = log_exception(f"check {step.ref}", exc)
        return Result(False, "labkit could not check this step: the cluster answered something unexpected.",
                      hint="`labkit status` shows whether every node runs; `labkit up` brings back a stopped one. "
                      f"If it persists, `labkit reset {step.ref}` rewinds to the start of this step "
                      f"(details for a bug report: {log}).")
    if not result.passed:
        fault = _first_fault(cluster, _expected_down(step))
        if fault is not None:
            return _node_down(cluster, fault)
    return result


def _expected_down(step: Step) -> set[str]:
    """Nodes a step takes down on purpose (its `nodes_down` param): their state is what it checks."""
    return set(step.params.get("nodes_down", []))


def _first_fault(cluster: Cluster, expected: set[str] = frozenset()) -> NodeDown | None:  # type: ignore[assignment]
    try:
        faults = (n.fault() for n in cluster.nodes if n.name not in expected)
        return next((f for f in faults if f is not None), None)
    except Exception:  # the backend itself cannot list its nodes: nothing more to say than the check did
        return None


def _node_down(cluster: Cluster, fault: NodeDown) -> Result:
    others = [f"{n.name}: {n.health()}" for n in cluster.nodes if n.name != fault.node]
    return Result(False, f"Node {fault.node} is {fault.state}, so this step cannot be checked.",
                  (f"{fault.node}: {fault.state}", *others), hint=str(fault))


def apply_solution(cluster: Cluster, step: Step, report: Report) -> Result:
    """Bring the cluster to STEP's end state (unless its check already passes), then check it.
    A question is answered with the truth, read from the cluster once it has converged."""
    progress = Progress(cluster.lab)
    look: dict[str, Any] = {}
    if step.solution and not _one_check(cluster, step, _true_answer(cluster, step, look), look).passed:
        for command in step.solution:
            _run(cluster, step, command, report)
    if step.question:
        result, answer = _answer(cluster, step, progress)
        report(f"{step.ref}: the answer is {answer!r}")
        return result
    return run_check(cluster, step, progress=progress, settle=True)


def _true_answer(cluster: Cluster, step: Step, look: dict[str, Any] | None = None) -> str | None:
    """What a question step's right answer is now (None for a step without a question, or not yet known);
    what the look found is left in LOOK, for the check that follows."""
    if not step.question:
        return None
    try:
        return ANSWERS[step.check](Context(cluster, step, look={} if look is None else look)) or None
    except Exception:  # the cluster cannot tell yet (e.g. still converging): no answer
        return None


def _answer(cluster: Cluster, step: Step, progress: Progress) -> tuple[Result, str]:
    """Answer STEP's question with the truth, asking again while the cluster converges (up to its wait)."""
    deadline = time.monotonic() + max(step.wait, 2.0)
    while True:
        look: dict[str, Any] = {}
        answer = _true_answer(cluster, step, look) or ""
        result = run_check(cluster, step, answer=answer or None, wait=False, progress=progress, look=look)
        if result.passed or time.monotonic() >= deadline:
            return result, answer
        time.sleep(POLL)


def host_command(cluster: Cluster, run: str, report: Report) -> None:
    """Carry out `labkit node stop|start|restart|disconnect|connect NODE` on CLUSTER's backend."""
    action, node = host_action(run)
    backend = cluster.backend
    if action == "restart":
        backend.restart(node, report)
    elif action in ("stop", "start"):
        backend.power(node, action == "start", report)
    else:
        backend.partition(node, action == "connect", report)


def _run(cluster: Cluster, step: Step, command: Command, report: Report) -> None:
    if command.node == HOST:
        report(f"$ {command.run}")
        host_command(cluster, command.run, report)
        return
    text = render(command.run, cluster, command.node)
    report(f"{command.node}$ {text}")
    node = cluster[command.node]
    result = node.run(text)
    if not result.ok and dropped(result):  # the engine closed the request unanswered: ask again, once
        report(f"{command.node}: the engine dropped the request; asking again")
        wait_for(node.engine_answers, ENGINE_WAIT, POLL)
        if _one_check(cluster, step, _true_answer(cluster, step)).passed:
            return  # it was carried out before the connection dropped
        result = node.run(text)
    if not result.ok:
        raise SolutionFailed(f"The solution of {step.ref} failed on {command.node}: "
                          f"{(result.stderr or result.stdout).strip()[:300]}. `labkit reset {step.ref}` "
                          "rewinds to the start of this step.")


def replay_command(cluster: Cluster, step: Step, command: Command, report: Report) -> None:
    """Run COMMAND of STEP's solution in a reset's replay: as the learner would, except that powering the
    leader off is followed by an election at once (the backend's elect_now), not Swarm's 10 to 20 s wait
    (the managers lab: its leader, then its quorum, lost). Powering off a manager whose loss leaves the
    others no quorum ends with no leader whoever led: that manager is elected first, so that the others
    find at once that they have none, not once the leader steps down (10 to 20 s, then 10 more)."""
    leader_off = False
    if command.node == HOST:
        action, node = host_action(command.run)
        if action == "stop":
            role = cluster[node].status().swarm
            if role == "manager" and quorum_after_stop(cluster, node) is False:
                role = "leader" if _lead_now(cluster, node, report) else role
            leader_off = role == "leader"
    _run(cluster, step, command, report)
    if leader_off:
        cluster.backend.elect_now(report)


def quorum_after_stop(cluster: Cluster, name: str) -> bool | None:
    """Whether the managers still have a quorum once manager NAME is off: more than half of the managers in
    Raft on (None: no leader says who they are). Powered on, not "reachable": a leader just elected still
    calls a manager that is off reachable until it misses it."""
    leader = cluster.leader()
    if leader is None:
        return None
    try:
        seats = [n["Description"]["Hostname"] for n in leader.docker.api.nodes() if n.get("ManagerStatus")]
    except docker.errors.DockerException:
        return None
    on = {n.name for n in cluster.nodes if n.name != name and n.health() == "running"}
    return len(on.intersection(seats)) > len(seats) // 2


def _lead_now(cluster: Cluster, name: str, report: Report) -> bool:
    """Have manager NAME elected at once; whether it leads (within LEAD_WAIT seconds)."""
    return cluster.backend.elect_now(report, name) and wait_for(
        lambda: cluster[name].status().swarm == "leader", LEAD_WAIT, 0.05)


def dropped(result: RunResult) -> bool:
    """Whether the docker CLI lost its connection mid-request (the engine closed it without an answer:
    seen once in a few hundred walk-throughs, on `docker service rm` under load), not a refusal."""
    return "error during connect" in result.stderr and result.stderr.rstrip().endswith("EOF")


def solve(cluster: Cluster, lab: Lab, upto: Step | None, report: Report) -> list[Result]:
    """Apply LAB's solutions in order, up to and including UPTO (default: the whole lab)."""
    results = []
    for step in lab.steps:
        result = apply_solution(cluster, step, report)
        results.append(result)
        if not result.passed:
            raise SolutionFailed(f"{step.ref} still fails after its solution: {result.summary}")
        if upto is not None and step.id == upto.id:
            break
    return results


def starting_lab(labs: list[Lab], target: Step) -> Lab:
    """The lab whose start TARGET's state grows from: the nearest lab at or before TARGET's that begins on
    a fresh swarm (`start = "swarm"`), else the first lab (bare engines)."""
    index = next(i for i, lab in enumerate(labs) if lab.id == target.lab)
    return next((lab for lab in reversed(labs[:index + 1]) if lab.fresh), labs[0])


def reset(cluster: Cluster, labs: list[Lab], target: Step, report: Report) -> None:
    """The cluster as at the start of TARGET: the state saved the last time a reset reached TARGET, put
    back (see rewind), or else the solutions of every step before TARGET since the lab it grows from (the
    first lab, or a lab that begins on a fresh swarm of its own nodes), replayed on a fresh cluster or
    from the nearest state saved before TARGET, after which that state is saved for the next time."""
    backend = cluster.backend
    origin = starting_lab(labs, target)
    progress = Progress(cluster.lab)
    steps = all_steps(labs[labs.index(origin):])
    index = next(i for i, s in enumerate(steps) if s.ref == target.ref)
    every = all_steps(labs)
    progress.forget([s.ref for s in every[every.index(target):]])  # earlier labs' progress stays
    key = rewind.state_key(origin, target)
    if _put_back(cluster, origin, steps[:index], key, progress, report) is not None:
        report(f"Ready at the start of {target.ref}: {target.title}")
        return
    nearest = _nearest_state(cluster, origin, steps[:index], progress, report)
    start, earlier = nearest or (0, 0.0)  # the seconds a replay took to reach the state put back
    began = time.monotonic()
    if nearest is None:
        report("Fresh cluster: removing the lab")
        backend.down(report)
        progress.forget_kept()  # what labkit kept of the old swarm (its unlock keys) would mislead the checks
        nodes = backend.up(origin.topology, report)
        if origin.fresh:
            form_swarm(nodes, report)
    for step in steps[start:index]:
        if step.question and not step.solution:  # looking changes nothing on the cluster: count it as done
            progress.record(step.ref, passed=True)
            continue
        for command in step.solution:
            replay_command(cluster, step, command, report)
        result = _replayed_check(cluster, step, progress)
        if not result.passed:
            raise SolutionFailed(f"Reset stopped at {step.ref}: {result.summary}")
    if not rewind.unfit(cluster, key):
        rewind.save(cluster, key, steps[:index], earlier + time.monotonic() - began, report)
    report(f"Ready at the start of {target.ref}: {target.title}")


def _put_back(cluster: Cluster, origin: Lab, earlier: list[Step], key: str, progress: Progress,
              report: Report) -> float | None:
    """Put back the state saved under KEY (at the end of EARLIER) if it comes back as it was and the last
    earlier step's check passes on it; the seconds a replay took to reach it (None: not put back)."""
    replay = rewind.restore(cluster, key, origin, report)
    if replay is None:
        return None
    checked = [s for s in earlier if s.solution or not s.question]  # as the replay checks them
    result = _replayed_check(cluster, checked[-1], progress) if checked else None
    if result is None or result.passed:
        return replay
    rewind.mark_unfit(cluster, key, f"{checked[-1].ref} failed after it was put back: {result.summary}")
    report(f"Put back, the state did not pass {checked[-1].ref} ({result.summary}): replaying instead "
           "(and from now on)")
    return None


def _nearest_state(cluster: Cluster, origin: Lab, earlier: list[Step], progress: Progress,
                   report: Report) -> tuple[int, float] | None:
    """A first reset replays from the nearest state saved before it: put back, how many steps of EARLIER
    it covers and the seconds a replay took to reach it (None: there is none, the replay starts afresh)."""
    for i in range(len(earlier) - 1, -1, -1):
        key = rewind.state_key(origin, earlier[i])
        if not rewind.fit(cluster, key):
            continue
        report(f"Starting from the state saved at the start of {earlier[i].ref}, then replaying from there")
        replay = _put_back(cluster, origin, earlier[:i], key, progress, report)
        return None if replay is None else (i, replay)
    return None


def _replayed_check(cluster: Cluster, step: Step, progress: Progress) -> Result:
    """STEP's check once its solution ran: a question answered with the truth, else its check, settled."""
    if step.question:
        return _answer(cluster, step, progress)[0]
    return run_check(cluster, step, progress=progress, settle=True)


def begin(cluster: Cluster, labs: list[Lab], lab: Lab, report: Report) -> bool:
    """Open LAB (one that begins on a fresh swarm of its nodes): make that swarm, unless the learner has
    started the lab already (a step of it passed), which is kept. Whether a fresh swarm was made."""
    progress = Progress(cluster.lab)
    if any(progress.passed(step.ref) for step in lab.steps):
        report(f"You have started {lab.id} already: carrying on. `labkit reset {lab.id}` starts it over.")
        return False
    reset(cluster, labs, lab.steps[0], report)
    return True
