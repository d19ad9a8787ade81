"""Rewinds: a `labkit reset` to a step it has reached before puts the nodes' saved engines back (a few
seconds) instead of replaying every earlier solution (a minute or more late in the course).

The first reset to a step replays, then saves the state it reached, with what the learner's progress
held and a fingerprint of the swarm. A later one puts that state back and waits until the fingerprint
is the same again: the same nodes, roles and leader, the same node states, the same running tasks. A
state that does not come back as it was (a multi-manager swarm electing another leader, a task that
restarted) is marked unfit, and resets to that step replay from then on.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import time
from collections import Counter
from typing import Any

from docker.errors import DockerException

from labkit.backends.base import wait_for
from labkit.cluster import Cluster
from labkit.engine_state import TASK_LABEL
from labkit.errors import LabkitError
from labkit.fields import UNLOCK_KEYS
from labkit.labs import Lab, Step
from labkit.progress import Progress, log_exception
from labkit.report import Report
from labkit.settings import settings

FAILURES = (DockerException, OSError, subprocess.CalledProcessError, LabkitError, ValueError, KeyError)
SETTLE = 20.0  # s a put-back state has to look as it was saved
SAVE_WAIT = 10.0  # s at most for a swarm's tasks to settle before its state is saved
# s more for its nodes: the managers lab's rejoin, whose workers find the last manager 7 to 15 s after it was
# forced anew, or 20 s and more (a whole bench run on 2026-12-07 saved it in neither of two resets, which then
# replayed in 19 to 26 s each time); a worker still unknown or down to the leader comes back ready, never as saved
NODES_WAIT = 30.0
TRANSIENT = ("new", "pending", "assigned", "accepted", "preparing", "ready", "starting")  # a task's states
IN_SWARM = ("worker", "manager", "pending", "error")  # a node's swarm states (besides leader and locked)
NO_LEADER = ("manager", "pending", "error")  # ... of a node in a swarm without a leader, unless all managers are locked
SERVICE_LABEL = "com.docker.swarm.service.id"  # on a Swarm task's container
UNFIT_AGE = 86400.0  # s a state stays known unfit; then it is saved and tried again (it may have been bad luck)
RAFT_SNAPSHOTS = "/var/lib/docker/swarm/raft/snap-v3-encrypted"  # a manager's Raft snapshots (*.snap)
SNAPSHOT_WAIT = 5.0  # s for the leader to write one
LOST_SETTLE = 20.0  # s more when Swarm replaces tasks (each try waits its restart delay; a busy machine, two)
CHANGED_WHILE_SAVED = "The swarm changed while its state was being saved"
NOT_SETTLED = "The swarm's nodes were still settling"
SLOWER_BY = 5.0  # s a put-back must lose to its replay to be marked unfit (less is a busy machine's noise)
SLOW = "slow"  # noted in a state's META: its last put-back took that many s, SLOWER_BY more than its replay


def state_key(origin: Lab, target: Step) -> str:
    """What the state at the start of TARGET depends on in the course: every lab's definition (a change
    to any makes the states again), the lab it grows from, TARGET."""
    digest = hashlib.sha256(f"{origin.id}\0{origin.topology}\0{target.ref}\0".encode())
    for path in sorted(settings().labs_dir.glob("*.toml")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def fingerprint(cluster: Cluster) -> dict[str, Any]:
    """What a learner sees of the swarm that a rewind must give back as a replay gives it: each node's
    engine and swarm role (leader included), each node's state and availability as the leader sees it,
    and which tasks run (with no leader to ask, as each node's engine runs them: a locked manager's
    workers run theirs on)."""
    nodes = {}
    leader = None
    for node in cluster.nodes:
        status = node.status()
        nodes[node.name] = status.swarm if status.engine == "answering" else status.engine
        if status.swarm == "leader":
            leader = node
    seen: dict[str, list[str]] = {}
    tasks: dict[str, str] = {}
    if leader is not None:
        api = leader.docker.api
        for n in api.nodes():
            seen[n["Description"]["Hostname"]] = [n["Status"]["State"], n["Spec"]["Availability"]]
        tasks = {t["ID"]: t["ServiceID"] for t in api.tasks(filters={"desired-state": "running"})
                 if t["Status"]["State"] == "running"}
    else:
        for node in cluster.nodes:
            if nodes[node.name] in IN_SWARM or nodes[node.name] == "locked":
                tasks.update({c.labels[TASK_LABEL]: c.labels.get(SERVICE_LABEL, "")
                              for c in node.docker.containers.list(filters={"label": TASK_LABEL})})
    return {"nodes": nodes, "seen": seen, "tasks": tasks}


def wait_settled(cluster: Cluster) -> bool:
    """Wait (up to SAVE_WAIT) until no task of the swarm is between states, nor any node between roles: a
    step's check may pass while Swarm still stops the tasks of a scale-in, or while a promoted node's
    engine still becomes a manager, and a state saved then comes back still changing."""
    return wait_for(lambda: _settled(cluster), SAVE_WAIT, 0.2)


def _settled(cluster: Cluster) -> bool:
    try:
        leader = cluster.leader()
        if leader is None:
            return True
        api = leader.docker.api
        listed = api.nodes()
        if not _nodes_settled(listed, {n.name: n.status().swarm for n in cluster.nodes}):
            return False
        ready = {n["ID"] for n in listed if n["Status"]["State"] == "ready"}
        for task in api.tasks():
            if task.get("NodeID") and task["NodeID"] not in ready:
                continue  # on a node that is down: its tasks never report again
            state, desired = task["Status"]["State"], task["DesiredState"]
            if state in TRANSIENT or (state == "running" and desired != "running"):
                return False
        return True
    except FAILURES:
        return True  # the swarm cannot tell: nothing to wait for


def between_states(cluster: Cluster) -> list[str]:
    """The nodes of CLUSTER between states, as its leader lists them (see _unsettled_nodes; none without one)."""
    leader = cluster.leader()
    if leader is None:
        return []
    return _unsettled_nodes(leader.docker.api.nodes(), {n.name: n.status().swarm for n in cluster.nodes})


def _nodes_settled(listed: list[dict[str, Any]], own: dict[str, str]) -> bool:
    return not _unsettled_nodes(listed, own)


def _unsettled_nodes(listed: list[dict[str, Any]], own: dict[str, str]) -> list[str]:
    """The nodes the leader LISTED that are between states: those whose engine answers (OWN: each node's
    own swarm state) but are still "unknown" to the leader (a new leader has not heard from them yet: a CI
    walk saved the moment after `--force-new-cluster`, and put back, the workers were ready), or already
    "down" to it (one that had still not heard from a worker 30 s after that election: a CI walk saved the
    worker down and its task missing, and put back, it was ready and its task running), and the
    ready ones between roles: not in Raft as their role says, or telling themselves otherwise (a CI walk
    had taken a just-promoted node as a worker, its own engine not yet a manager). A node that left and
    joined again is listed twice until its old entry is removed: that one, down, is not waited for."""
    unsettled = []
    ready = {node["Description"]["Hostname"] for node in listed if node["Status"]["State"] == "ready"}
    for node in listed:
        name = node["Description"]["Hostname"]
        itself = own.get(name)
        answers = itself in ("worker", "manager", "leader")
        if node["Status"]["State"] in ("unknown", "down") and answers and name not in ready:
            unsettled.append(name)
        elif node["Status"]["State"] == "ready":
            manager = node["Spec"]["Role"] == "manager"
            if manager != ("ManagerStatus" in node) or (answers and (itself != "worker") != manager):
                unsettled.append(name)
    return unsettled


def same(saved: dict[str, Any], now: dict[str, Any], lost: set[str]) -> bool:
    """Whether the swarm is back as SAVED: the same nodes, roles, leader and node states, and the same
    running tasks, except the LOST ones (whose containers did not start again: Swarm replaces each, as
    after any engine restart, or its agent starts it late): as many tasks of each service run as then."""
    if saved["nodes"] != now["nodes"] or saved["seen"] != now["seen"]:
        return False
    kept = set(saved["tasks"]) - lost
    return kept <= set(now["tasks"]) and Counter(saved["tasks"].values()) == Counter(now["tasks"].values())


def save(cluster: Cluster, key: str, earlier: list[Step], replay_seconds: float, report: Report) -> bool:
    """Save the state CLUSTER is in (the start of the step after EARLIER, which a replay reached in
    REPLAY_SECONDS) under KEY, once its tasks are done changing."""
    try:
        if unlikely_back(cluster, fingerprint(cluster)):  # e.g. a lost quorum: no use waiting for it to settle
            return False
        wait_settled(cluster)
        fp = fingerprint(cluster)
        if unlikely_back(cluster, fp):
            return False
        if between_states(cluster):  # the wait gave up on them: a while more
            wait_for(lambda: not between_states(cluster), NODES_WAIT, 0.2)
            unsettled = between_states(cluster)
            if unsettled:
                report(f"{NOT_SETTLED} ({', '.join(unsettled)}): not saved; a later reset here saves it")
                return False
            fp = fingerprint(cluster)
        with contextlib.suppress(*FAILURES):  # a state saved without a snapshot is only slower to put back
            compact_raft(cluster)
        # Looked at again once the copies are made: a swarm can move on its own while it is saved (a node
        # a new leader has not heard from turns down 30 s after the election: a CI walk saved 'unknown'
        # with copies that held 'down', and put back, the state never looked as saved). Saved again then,
        # once: the managers lab's rejoin had its last stopped manager turn down while it was saved.
        for attempt in range(2):
            if attempt and (not wait_settled(cluster) or unlikely_back(cluster, fp := fingerprint(cluster))):
                break  # still moving, or moved where a state is not kept: as above, not saved
            meta = {"fingerprint": fp, "replay_seconds": replay_seconds,
                    "progress": Progress(cluster.lab).entries([s.ref for s in earlier])}
            unlock = unlock_key(cluster)
            if unlock:
                meta["unlock_key"] = unlock
            moved: list[str] = []

            def still(fp: dict[str, Any] = fp, moved: list[str] = moved) -> bool:
                now = _look(cluster)
                if now != fp:
                    moved.append(_difference(fp, now))
                return not moved

            saved = cluster.backend.save_state(key, meta, report, still)
            if not moved:
                return saved
        report(f"{CHANGED_WHILE_SAVED} ({moved[0]}): not saved; a later reset here saves it")
        return False
    except FAILURES as exc:  # a state not saved costs the next reset a replay, nothing more
        log_exception("saving a state", exc)
        return False


def compact_raft(cluster: Cluster) -> bool:
    """Have the leader write a Raft snapshot, its setting put back as it was; whether it did. Put back, a
    manager replays the log since its last snapshot before it elects itself (about 50 ms for a few hundred
    entries, 20 ms after a snapshot), while its own agent asks for a session at once: an agent that asks
    before there is a leader waits a second (swarmkit's Raft proxy looks for one once a second), and the
    workers with it. The snapshot shortens that race; it does not always win it."""
    leader = cluster.leader()
    if leader is None:
        return False
    interval = leader.docker.api.inspect_swarm()["Spec"]["Raft"]["SnapshotInterval"]
    listing = f"ls -l {RAFT_SNAPSHOTS}/*.snap 2>/dev/null"
    seen = [leader.run(listing).stdout]
    asked = leader.run("docker swarm update --snapshot-interval 1").ok
    if not leader.run(f"docker swarm update --snapshot-interval {int(interval)}").ok or not asked:
        return False  # (put back in any case: a swarm left snapshotting at every change would be slower)

    def written() -> bool:  # a new snapshot, the same size twice in a row (written whole, not being written)
        now = leader.run(listing).stdout
        seen.append(now)
        return now not in ("", seen[0]) and now == seen[-2]

    return wait_for(written, SNAPSHOT_WAIT, 0.1)


def unlikely_back(cluster: Cluster, fp: dict[str, Any]) -> str:
    """Why a state would not come back as saved, fast ('' when it would): a node cut off or frozen is a
    moment, not a state; a locked manager comes back locked only with the key that unlocks it for a moment
    (see dind_states: its workers need a leader to run their tasks again), which labkit must keep; a swarm
    without a leader comes back with its nodes still looking for one (pending) where they had given up
    (error).
    Several managers come back with their saved leader elected at once (see raft_leader), and workers
    dial it first (engine_state.dial_first), not a manager that is down. So does a swarm forced anew (the
    managers lab's rejoin: its other managers off and out of Raft, its lone manager leading): 33 put-backs
    of 33 on 2026-12-07, 11 of them on a machine kept busy (on 2026-12-06, 5 of 17 kept a worker
    unknown to the leader past 20 s, a cause not found; the put-back has changed much since)."""
    if any(node.network_state() == "disconnected" for node in cluster.nodes):
        return "a node cut off from the lab network (a put-back connects every node)"
    if any(node.container_state() == "paused" for node in cluster.nodes):
        return "a frozen node"
    roles = set(fp["nodes"].values())
    if "locked" in roles and not unlock_key(cluster):
        return "a locked manager whose unlock key labkit does not keep"
    if roles & set(IN_SWARM) and "leader" not in roles and ("locked" not in roles or roles & set(NO_LEADER)):
        return "a swarm without a leader (its quorum lost)"
    return ""


def unlock_key(cluster: Cluster) -> str | None:
    """The swarm's unlock key while autolock is on (None when it is off): saved with a state, so that its
    manager, locked when its engine starts again, is unlocked as the learner had unlocked it. With no
    leader to ask (its managers locked), the newest key labkit keeps (see checks/autolock.py)."""
    leader = cluster.leader()
    if leader is None:
        if not any(node.status().swarm == "locked" for node in cluster.managers):
            return None
        keys = Progress(cluster.lab).kept(UNLOCK_KEYS)
        return str(keys[-1]) if isinstance(keys, list) and keys else None
    spec = leader.docker.api.inspect_swarm().get("Spec") or {}
    if not (spec.get("EncryptionConfig") or {}).get("AutoLockManagers"):
        return None
    return str(leader.docker.api.get_unlock_key().get("UnlockKey") or "") or None


def restore(cluster: Cluster, key: str, origin: Lab, report: Report) -> float | None:
    """Put back the state saved under KEY, if there is one fit for it; once the cluster is in it (its
    progress too), the seconds a replay took to reach it (None: it is not). A state that does not come
    back as it was is marked unfit."""
    backend = cluster.backend
    saved = backend.saved_state(key)
    if saved is None or "unfit" in saved:
        return None
    began = time.monotonic()
    try:
        meta = backend.restore_state(key, origin.topology, report)
        again = put_back_again(meta)
        if again:
            report(f"{again}: putting the state back again")
            meta = backend.restore_state(key, origin.topology, report)
    except FAILURES as exc:  # the replay that follows makes a fresh cluster anyway
        path = log_exception("putting a state back", exc)
        report(f"The saved state could not be put back (details in {path}): replaying instead")
        return None
    if meta is None:
        return None
    if not _well_formed(meta):
        mark_unfit(cluster, key, "saved by another version of labkit")
        report("The saved state is of another version of labkit: replaying instead")
        return None
    lost = set(meta.pop("lost", [])) | set(meta.pop("late", [])) | set(meta.pop("rejected", []))
    deadline = time.monotonic() + SETTLE + (LOST_SETTLE if lost else 0)
    while not ((now := _look(cluster)) and same(meta["fingerprint"], now, lost)):
        if time.monotonic() > deadline:
            why = f"not as saved after {SETTLE:g} s: {_difference(meta['fingerprint'], now)}"
            mark_unfit(cluster, key, why)
            report("The saved state did not come back as it was: replaying instead (and from now on)")
            return None
        time.sleep(0.1)
    Progress(cluster.lab).restore(meta["progress"])
    took, replay = time.monotonic() - began, float(meta.get("replay_seconds", SETTLE))
    # Clearly slower than its replay twice in a row: the state is marked unfit (replays from then on), unless
    # Swarm started some of its tasks late or replaced them (an engine's 30 s stall making an overlay network:
    # luck, not the state). A lab's start replays in 2 to 5 s, so a put-back a second slower there is noise
    # (CI marked swarm-init:init and secrets:create unfit so, and their later resets replayed). Nor one put
    # back twice. Once is a busy moment: one put-back of managers:quorum took 14.0 s, against 3.3 s usually,
    # and the lab's start then replayed for a day (6.1 s).
    slow = took > replay + SLOWER_BY and not lost and not again
    if slow and saved.get(SLOW):
        mark_unfit(cluster, key, f"a replay is faster here ({replay:.1f} s against {took:.1f} s, twice)")
    elif slow or saved.get(SLOW):
        with contextlib.suppress(*FAILURES):  # only the next slow put-back's judgement is lost
            backend.note_state(key, {SLOW: round(took, 1) if slow else None})
    return replay


def put_back_again(meta: dict[str, Any] | None) -> str:
    """Why a put-back that came back with META is made again, once ('' when it is not): a task that Swarm's
    agent rejected as its node started (a rare race in swarmkit; see dind_states.wait_started_by_agent),
    or one its agent had still not started (Docker 20.10's gossip stalls 30 s now and then as an engine
    makes an overlay network: waited out, the step's check may wait for that task, and `networks:vip`
    took 43.6 s in a bench run; see dind_states.STALL_GAP). Luck, not the state: put back again, it comes
    back whole (a stall was one put-back in ten to thirty of the overlay states; since the managers are
    favoured, dind_states.Favoured, a whole bench run made one put-back in 261 again), where Swarm would
    otherwise replace the task or start it late."""
    if meta is None:
        return ""
    if meta.get("rejected"):
        return f"Swarm's agent rejected {len(meta['rejected'])} task(s) as its node started (a rare race in Swarm)"
    if meta.get("late"):
        return (f"{len(meta['late'])} task(s) on Swarm's networks had still not started (Docker stalls 30 s now "
                "and then making an overlay network)")
    return ""


def fit(cluster: Cluster, key: str) -> bool:
    """Whether a state is saved under KEY that is not known to come back otherwise than it was."""
    saved = cluster.backend.saved_state(key)
    return saved is not None and "unfit" not in saved


def unfit(cluster: Cluster, key: str) -> bool:
    """Whether the state under KEY is known not to come back as it was (resets replay, and save nothing),
    marked so less than UNFIT_AGE ago."""
    saved = cluster.backend.saved_state(key)
    return saved is not None and "unfit" in saved and time.time() - float(saved.get("marked", 0)) < UNFIT_AGE


def mark_unfit(cluster: Cluster, key: str, why: str) -> None:
    """Mark KEY's state unfit (WHY); a failure to do so only costs the next reset a wasted try."""
    try:
        cluster.backend.drop_state(key, {"unfit": why, "marked": time.time()})
    except FAILURES as exc:
        log_exception("marking a state unfit", exc)


def _well_formed(meta: dict[str, Any]) -> bool:
    saved = meta.get("fingerprint")
    return (isinstance(saved, dict) and all(isinstance(saved.get(part), dict) for part in ("nodes", "seen", "tasks"))
            and isinstance(meta.get("progress"), dict))


def _look(cluster: Cluster) -> dict[str, Any]:
    """The fingerprint, or {} while the swarm cannot tell (an engine starting, a leader being elected)."""
    try:
        return fingerprint(cluster)
    except FAILURES:
        return {}


def _difference(want: dict[str, Any], got: dict[str, Any]) -> str:
    return "; ".join(f"{part}: {want.get(part)} != {got.get(part)}" for part in want if want.get(part) != got.get(part))

