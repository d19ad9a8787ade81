"""Saved states of a dind lab: every node's engine folder copied into a volume of its own at the start
of a step, and put back by a later `labkit reset` to that step.

Saving freezes the nodes for a moment (``docker pause``: the engines' files as one instant) and copies
each engine's folder, its image layers hard-linked. Putting back ends each running node's engine in
place (dockerd and all it started killed, the node's entry point waiting: see node-entrypoint.sh; other
nodes are killed), fills each engine's folder from the saved one, sets the containers that ran to start
with their engine, or leaves those on Swarm's networks to Swarm's agent (so Swarm's tasks run on, the same
tasks: see ``engine_state.start_with_engine``), and starts the engines that ran, managers first (unlocked
with the saved key when autolock is on, one saved locked restarted at the end: see _lock_again; with
several, the saved leader is elected at once: see raft_leader), then the workers, which dial that leader
first: they start as soon as their managers listen,
their dials held until these are ready (arp_hold: so are the managers' dials to each other, until each
listens), or, when they have tasks on Swarm's networks, once these are ready, the leader frozen until each
has dialled it, so that they join the nodes' gossip together (_start_at_once). A state is tied to the lab network's
subnet (the nodes' addresses are in the swarm's own records) and to the images and engine it was made with.
Root only: the engines' folders are root's; others replay.

Volumes: ``labkit-state-KEY-SUBNET`` (``state.json``: what the runner keeps with it, which nodes ran) and
``labkit-state-KEY-SUBNET-NODE`` per node; a cache (``labkit clean`` removes them, ``labkit down`` not).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import docker
import docker.errors
from docker.models.containers import Container
from docker.models.volumes import Volume

from labkit import engine_state, images, raft_leader
from labkit.backends import tcp_sockets
from labkit.backends.arp_hold import ArpHold
from labkit.backends.base import Node, wait_for
from labkit.engine_state import TASK_LABEL
from labkit.errors import BackendError, NodeDown
from labkit.report import Report
from labkit.topology import LABEL_CACHE, LABEL_KIND, LABEL_NODE, AddressPlan, Names, Topology

LABEL_STATE = "labkit.state"  # the state's key, on each of its volumes
LABEL_SUBNET = "labkit.subnet"  # the lab network's subnet when the state was saved
META = "state.json"
MAX_AGE = 30 * 86400  # s; Swarm's node certificates last 90 days: an older state is made again
LABEL_FORMAT = "labkit.state.format"  # FORMAT, when the state was saved
HOLD = "hold"  # in a node's /labkit: its entry point waits to start dockerd again (see node-entrypoint.sh)
DOWN = "down"  # ... written by the entry point once dockerd ended and its mounts are let go
RESPAWNS = "respawns"  # ... written by an entry point that can do this
ENTRYPOINT_NAME = "labkit-entrypo"  # the kernel's name of the entry point's process (15 characters at most)
END_WAIT = 5.0  # s for a node's engine to end, and for a leader to answer (orphans)
# What an engine is put back without: its network store (the local networks, the endpoints of the containers
# that ran). With it, an engine that starts first removes every endpoint it lists (about 0.3 s each); without
# it, the engine makes its local networks afresh (new IDs, as a replay makes) and Swarm its own (ingress).
FORGOTTEN = frozenset({"network"})
SWARM_PORT = 2377
# A worker joins the nodes' gossip (service discovery, the routing mesh) once, as its engine starts, and
# retries only a minute later: it starts once its managers listen on both ports.
GOSSIP_PORT = 7946
GOSSIP_WAIT = 10.0  # s for a manager's engine to listen on both
# s for the agents to start again the task containers on Swarm's networks (about 2 s). A worker's engine that
# joins the nodes' gossip later than another's stalls 30 s joining an overlay network (Docker 20.10's
# networkdb: its sync with the other, which gossip has not yet told of it, gets no answer; see the README's
# Rewinds): the workers start at once (_start_at_once). A task that stalls anyway would start 30 s late: the
# state is put back again (rewind.put_back_again).
SWARM_START_WAIT = 10.0
# s: a node whose agent has still not started all its tasks this long after every other node's agent did has
# stalled (its engine asked another for an overlay network's entries before that one had heard of it, and
# waits 30 s for an answer). In 27 put-backs measured, the last node had its tasks within 0.5 s of the one
# before it (all within 0.7 s). A stall is named then, not at SWARM_START_WAIT, and the state put back again.
STALL_GAP = 2.5
ENDED_EVERY = 0.25  # s between asking the leader whether a task the agents are to start again ended
ENDED_STATES = ("rejected", "failed")  # a task's states, ended by its agent
GATHER_WAIT = 10.0  # s at most for the workers to connect to their frozen leader (about 1 s)
# what a node's engine logs as it begins to load its containers: it dials its managers about 0.2 s later
LOADING = b"Loading containers: start."
RAFT_WAIT = 10.0  # s for the Raft node of each manager put back to start (about 0.5 s)
# s at most, once they listen, for the managers to be connected to each other before the saved leader
# campaigns: each dialled the others as its engine started, held until they listened (arp_hold; one not
# held is refused by those not listening yet, and gRPC tries again about a second later). A vote asked
# before that is lost (a voter first checks it can reach the candidate), and the candidate then waits 10
# to 20 s to try again.
RAFT_DIAL_WAIT = 5.0
MANAGER_ROLES = ("leader", "manager")
CPU_SHARES, FAVOURED = 1024, 8192  # a container's CPU weight (Docker's default), and a manager's in a put-back
GOSSIP_JOINED = b"/%s, joined gossip cluster"  # what an engine logs as it adds the node at that address to its gossip
JOIN_WAIT = 2.0  # s at most, once the engines answer, for the leader to add each worker (well under 0.1 s)
# s: a lab that exists is moved to another subnet (removed and made again there: a put-back of five nodes took
# 12.2 s so in CI, 4 s in place) only for a state a replay takes longer to reach; a lab's start (2 to 6 s to
# replay) replays where the lab is
MOVE_WORTH = 15.0
HOME = "/root"  # a node's home: a volume of its own, saved with the state (files a step writes there)
HOMES = "home"  # in a state's meta volume: a copy of each node's home, by node
# of a saved state (and of what the runner keeps with it): a change makes every state again. 4: states saved
# before could hold a stopped node's containers set to restart with its engine (their policy never given back)
FORMAT = "4"


class Lab(Protocol):
    """What of the dind backend a saved state uses (the backend itself: see dind.DindBackend)."""

    host: docker.DockerClient
    names: Names

    @property
    def run_dir(self) -> Path: ...

    def _plan(self) -> AddressPlan | None: ...
    def _containers(self, kind: str | None = None) -> list[Any]: ...
    def _subnets_in_use(self) -> list[ipaddress.IPv4Network]: ...
    def _wait_engines(self, nodes: list[Node]) -> None: ...
    def nodes(self) -> list[Node]: ...
    def down(self, report: Report) -> int: ...
    def make(self, topology: Topology | None, report: Report,
             subnet: ipaddress.IPv4Network | None = None) -> AddressPlan: ...
    def reconnect_cut(self, plan: AddressPlan, report: Report) -> None: ...


def pick_state(metas: dict[str, tuple[Volume, dict[str, Any]]], own: str | None,
               taken: list[ipaddress.IPv4Network]) -> tuple[Volume, dict[str, Any]] | None:
    """Of METAS (states by subnet), the one to put back for a lab on subnet OWN (None: no lab now) while
    the labs on TAKEN exist: the one on OWN, else one on a subnet no other lab uses, the lab made again
    there, if that saves time: a lab that exists moves only for a state a replay takes MOVE_WORTH to reach."""
    if own is not None and own in metas:
        return metas[own]
    others = [t for t in taken if str(t) != own]
    for subnet, (volume, data) in metas.items():
        if any(ipaddress.ip_network(subnet).overlaps(t) for t in others):
            continue
        if own is None or float((data.get("meta") or {}).get("replay_seconds", 0)) >= MOVE_WORTH:
            return volume, data
    return None


class DindStates:
    def __init__(self, backend: Lab) -> None:
        self.backend = backend
        self.host = backend.host

    def full_key(self, key: str) -> str:
        """KEY with what the engines' folders also depend on: the node image and the host's engine."""
        version = self.host.version().get("Version", "")
        return hashlib.sha256(f"{FORMAT}\0{key}\0{images.recipe_hash()}\0{version}".encode()).hexdigest()[:16]

    # ----------------------------------------------------------------- reading

    def _volumes(self, key: str) -> list[Volume]:
        return self.host.volumes.list(filters={"label": f"{LABEL_STATE}={key}"})

    def _metas(self, key: str) -> dict[str, tuple[Volume, dict[str, Any]]]:
        """The complete states saved under KEY, by subnet, with what their state.json holds."""
        found = {}
        for volume in self._volumes(key):
            labels = volume.attrs.get("Labels") or {}
            if labels.get(LABEL_KIND) != "state":
                continue
            try:
                data = json.loads((Path(volume.attrs["Mountpoint"]) / META).read_text())
            except (OSError, ValueError):
                continue  # half saved (or being saved): not a state
            found[labels.get(LABEL_SUBNET, "")] = (volume, data)
        return found

    def saved(self, key: str) -> dict[str, Any] | None:
        """What was saved with the state of KEY this lab would take (see pick_state: one saved on another
        subnet may not be); {"unfit": ...} when it cannot be put back (the mark itself, as
        rewind.mark_unfit wrote it, on any subnet)."""
        if os.geteuid() != 0:
            return None
        metas = self._metas(self.full_key(key))
        for _, data in metas.values():
            if data.get("unfit"):
                return dict(data)
        plan = self.backend._plan()
        chosen = pick_state({s: m for s, m in metas.items() if "meta" in m[1]},
                            None if plan is None else str(plan.subnet), self.backend._subnets_in_use())
        return None if chosen is None else chosen[1]["meta"]

    # ----------------------------------------------------------------- saving

    def save(self, key: str, meta: dict[str, Any], report: Report, still: Callable[[], bool]) -> bool:
        b = self.backend
        plan = b._plan()
        if os.geteuid() != 0 or plan is None:
            return False
        containers = {c.labels[LABEL_NODE]: c for c in b._containers("node")}
        if not containers or any(c.status == "paused" or not attached(c, b.names.network) for c in containers.values()):
            return False  # a frozen or cut-off node is a moment to replay, not to save
        if not all(_has_home(c) for c in containers.values()):
            return False  # nodes made by an older labkit: their homes are not saved (a reset makes them again)
        key = self.full_key(key)
        subnet = str(plan.subnet)
        self._remove(key, subnet)
        self._prune()
        name = f"labkit-state-{key}-{plan.subnet.network_address}".replace(".", "-")
        labels = {LABEL_CACHE: "state", LABEL_STATE: key, LABEL_SUBNET: subnet, LABEL_FORMAT: FORMAT}
        report("Saving this state, so that the next reset here takes seconds")
        running = sorted(n for n, c in containers.items() if c.status == "running")
        copies = {node: self.host.volumes.create(f"{name}-{node}", labels={**labels, LABEL_NODE: node})
                  for node in containers}
        frozen = []
        try:
            for node in running:
                freeze(containers[node])
                frozen.append(containers[node])
            with ThreadPoolExecutor(max_workers=4) as pool:
                list(pool.map(lambda n: engine_state.copy_engine(self._folder(b.names.volume(n)),
                                                                 _mountpoint(copies[n])), containers))
            meta_volume = self.host.volumes.create(name, labels={**labels, LABEL_KIND: "state"})
            for node in containers:
                home = _mountpoint(meta_volume) / HOMES / node
                home.mkdir(parents=True)
                engine_state.copy_folder(self._folder(b.names.home(node)), home)
        finally:
            for c in frozen:
                c.unpause()
        if not still():  # the copies may hold the swarm as it was before or after: keep neither
            self._remove(key, subnet)
            return False
        data = {"meta": meta, "running": running, "nodes": sorted(containers), "saved": time.time()}
        (_mountpoint(meta_volume) / META).write_text(json.dumps(data))  # last: the state is complete
        return True

    def _remove(self, key: str, subnet: str) -> None:
        """Remove what is saved under KEY (a full key) on SUBNET."""
        for volume in self._volumes(key):
            if (volume.attrs.get("Labels") or {}).get(LABEL_SUBNET) == subnet:
                volume.remove(force=True)

    def _prune(self) -> None:
        """Remove the states no labkit will put back: of another format, or older than MAX_AGE."""
        for volume in self.host.volumes.list(filters={"label": f"{LABEL_CACHE}=state"}):
            labels = volume.attrs.get("Labels") or {}
            made = volume.attrs.get("CreatedAt", "")
            try:
                age = time.time() - time.mktime(time.strptime(made[:19], "%Y-%m-%dT%H:%M:%S"))
            except ValueError:
                age = 0
            if labels.get(LABEL_FORMAT) != FORMAT or age > MAX_AGE:
                with contextlib.suppress(docker.errors.APIError):
                    volume.remove(force=True)

    def drop(self, key: str, meta: dict[str, Any]) -> None:
        """Keep only the word that KEY's state cannot be put back (META["unfit"]), for every subnet."""
        key = self.full_key(key)
        for volume in self._volumes(key):
            if (volume.attrs.get("Labels") or {}).get(LABEL_KIND) == "state":
                (_mountpoint(volume) / META).write_text(json.dumps(meta))
            else:
                volume.remove(force=True)

    def note(self, key: str, note: dict[str, Any]) -> None:
        """Add NOTE to what was saved with KEY's state (a None value takes its key out), on every subnet."""
        for volume, data in self._metas(self.full_key(key)).values():
            if isinstance(data.get("meta"), dict):
                meta = {k: v for k, v in {**data["meta"], **note}.items() if v is not None}
                written = _mountpoint(volume) / f"{META}.new"
                written.write_text(json.dumps({**data, "meta": meta}))
                written.replace(_mountpoint(volume) / META)  # whole, for a reset that reads it meanwhile

    # ----------------------------------------------------------------- putting back

    def restore(self, key: str, topology: Topology, report: Report) -> dict[str, Any] | None:
        b = self.backend
        if os.geteuid() != 0:
            return None
        wanted = sorted(spec.name for spec in topology.nodes)
        metas = {s: m for s, m in self._metas(self.full_key(key)).items() if "meta" in m[1]
                 and m[1].get("nodes") == wanted and time.time() - float(m[1].get("saved", 0)) <= MAX_AGE}
        plan = b._plan()
        nodes = b._containers("node")
        existing = sorted(c.labels[LABEL_NODE] for c in nodes)
        same_shape = plan is not None and existing == wanted and all(_has_home(c) for c in nodes)
        own = str(plan.subnet) if plan is not None else None
        chosen = metas.get(own) if same_shape else None
        if chosen is None:  # made again: on its own subnet if a state is saved there, else one no other lab uses
            chosen = pick_state(metas, own, b._subnets_in_use())
            if chosen is None:
                return None
            if plan is not None:
                b.down(report)  # another lab's shape, an older labkit's nodes, or another subnet
        volume, data = chosen
        subnet = ipaddress.ip_network((volume.attrs.get("Labels") or {})[LABEL_SUBNET])
        copies = {(v.attrs.get("Labels") or {}).get(LABEL_NODE): v for v in self._volumes(self.full_key(key))
                  if (v.attrs.get("Labels") or {}).get(LABEL_SUBNET) == str(subnet)}
        if any(node not in copies for node in wanted):
            return None
        report("Putting back the saved state of the nodes' engines")
        plan = b.make(topology, report, subnet)
        b.reconnect_cut(plan, report)
        containers = {c.labels[LABEL_NODE]: c for c in b._containers("node")}
        for c in containers.values():
            if c.status == "paused":
                c.unpause()
                c.reload()
        in_place = [n for n in data["running"] if containers[n].status == "running"
                    and (b.run_dir / n / RESPAWNS).exists()]
        roles, locked = _unlocked_roles(data)
        managers = [n for n in data["running"] if roles.get(n) in MANAGER_ROLES]
        later = ended_later(managers, in_place)
        ended = self._end_engines([n for n in in_place if n not in later], containers)
        restarted: dict[str, engine_state.Restarts] = {}
        hold = ArpHold()
        addresses = plan.hosts(topology)
        leader = next((n for n, role in roles.items() if role == "leader"), None)
        peer = None if leader is None else engine_state.known_manager(_mountpoint(copies[leader]), addresses[leader])
        held: dict[str, bool] = {}  # the nodes ended in place whose first dials can be held (see _hold)
        joined = {} if leader is None else {  # the leader's log: which workers it has added to its gossip
            addresses[n]: LogTail(containers[leader]) for n in data["running"] if roles.get(n) == "worker"}
        background = ThreadPoolExecutor(max_workers=1)
        with Favoured([containers[n] for n in managers]) as favoured:
            try:
                def kill(names: list[str]) -> None:  # one at a time: see dind's note on the engine's network deadlock
                    for name in names:
                        c = containers[name]
                        if name not in ended and c.status in ("running", "paused", "restarting"):
                            c.kill()
                            c.wait(condition="not-running")

                kill([n for n in containers if n not in later])

                def fill(node: str) -> None:
                    folder = self._folder(b.names.volume(node))
                    engine_state.empty(folder)
                    engine_state.copy_engine(_mountpoint(copies[node]), folder, skip=FORGOTTEN)
                    home = self._folder(b.names.home(node))
                    engine_state.empty(home)
                    engine_state.copy_folder(_mountpoint(volume) / HOMES / node, home)
                    if node not in data["running"]:
                        return  # a node stopped in the state: started later, its engine finds what a power-on finds
                    if node in ended:
                        held[node] = _hold(hold, containers[node], addresses[node], node in managers)
                    restarted[node] = engine_state.start_with_engine(folder, _running_tasks(data))
                    if roles.get(node) in MANAGER_ROLES:
                        if waits_for_own_manager(len(managers), bool(restarted[node].by_agent)):
                            engine_state.wait_for_own_manager(folder)
                    elif peer is not None:
                        engine_state.dial_first(folder, peer)

                with ThreadPoolExecutor(max_workers=4) as pool:
                    list(pool.map(fill, [n for n in wanted if n not in later]))
                started = time.time()
                self._start(managers, ended, containers)

                def end_later() -> None:  # beside the managers' start
                    ended.update(self._end_later(later, [n for n in managers if n in ended], containers))
                    kill(later)
                    with ThreadPoolExecutor(max_workers=4) as pool:
                        list(pool.map(fill, later))

                ending = background.submit(end_later) if later else None
                key = (data.get("meta") or {}).get("unlock_key")
                if managers and key:  # autolock: each manager starts locked, as after any restart
                    self._unlock([n for n in b.nodes() if n.name in managers], str(key))
                pids = [_pid(containers[n]) for n in managers]
                if len(managers) > 1 and leader in managers:
                    self._elect(leader, managers, containers, started, hold)
                elif len(managers) > 1:  # none to elect: they find each other as they would after a power cut
                    hold.hear(pids)
                if ending is not None:
                    ending.result()
                workers = [n for n in data["running"] if n not in managers]
                # workers with tasks on Swarm's networks join the nodes' gossip together (see _start_at_once)
                together = leader in managers and len(workers) > 1 and any(restarted[n].by_agent for n in workers)
                all_held = bool(managers) and all(held.get(n) for n in managers)
                early = [n for n in workers if held.get(n)] if all_held else []
                if together and len(early) < len(workers):
                    early = []
                if early:  # they load while their managers get ready, their dials held until then
                    wait_for(lambda: all(listening(pid, SWARM_PORT) for pid in pids), GOSSIP_WAIT, 0.02)
                    try:
                        hold.deafen({pid: addresses[n] for n, pid in zip(managers, pids, strict=True)})
                        self._start(early, ended, containers)
                    except BackendError:  # they start once the managers are ready
                        early = []
                if managers:  # a worker that finds no manager yet retries later (gossip a minute later): it waits here
                    wait_for(lambda: all(manager_ready(pid) for pid in pids), GOSSIP_WAIT, 0.01)
                if together and early:
                    self._gather(early, leader, addresses[leader], containers, then=lambda: hold.hear(pids))
                hold.hear(pids)
                if together and not early:
                    self._start_at_once(workers, leader, restarted[leader].by_agent, ended, containers)
                else:
                    self._start(workers, ended, containers)
            finally:  # after a failure, the ended engines start again on what is there
                background.shutdown()  # (the workers ended later included)
                hold.end()
                for node in ended:
                    (b.run_dir / node / HOLD).unlink(missing_ok=True)
            nodes = [n for n in b.nodes() if n.name in data["running"]]
            b._wait_engines(nodes)
            wait_for(lambda: all(log.says(GOSSIP_JOINED % a.encode()) for a, log in joined.items()), JOIN_WAIT, 0.02)
            favoured.end()
            lost = []  # Swarm tasks whose container did not start again (Swarm replaces them, or starts them late)
            for node in nodes:  # the restart policies each container had
                for r in restarted[node.name].by_engine if node.name in restarted else []:
                    with contextlib.suppress(docker.errors.NotFound):
                        node.docker.api.update_container(r.container, restart_policy={"Name": r.policy,
                                                                                      "MaximumRetryCount": r.retries})
                        seen = node.docker.api.inspect_container(r.container)
                        task = (seen["Config"].get("Labels") or {}).get(TASK_LABEL)
                        if task and not seen["State"]["Running"]:
                            lost.append(task)  # Swarm replaces its task, but would never remove this container:
                            remove_container(node, r.container)  # gone, as in a replay
            leader = next((n for n in nodes if roles.get(n.name) == "leader"), None)
            late, rejected = wait_started_by_agent(nodes, {n: r.by_agent for n, r in restarted.items()}, leader)
            if leader is not None:
                remove_orphans(leader, nodes)
        if locked:
            self._lock_again([n for n in nodes if n.name in locked], [n for n in nodes if n.name not in managers],
                             containers)
        return {**data["meta"], "lost": lost, "late": late, "rejected": rejected}  # see rewind.put_back_again

    def _start(self, names: list[str], ended: set[str], containers: dict[str, Any]) -> None:
        """Start the engines of NAMES: those ENDED in place go on (their HOLD goes), the others' containers start."""
        for node in names:
            if node in ended:
                (self.backend.run_dir / node / HOLD).unlink(missing_ok=True)
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda c: c.start(), [containers[n] for n in names if n not in ended]))

    def _start_at_once(self, workers: list[str], leader: str, own: list[str], ended: set[str],
                       containers: dict[str, Any]) -> None:
        """Start WORKERS (their dials not held) so that they join the nodes' gossip together (see _gather):
        LEADER is frozen from the moment the first of them begins to load its containers (about 0.2 s before
        it dials its leader), or once its own tasks (OWN, started by its agent) run."""
        lead = next(n for n in self.backend.nodes() if n.name == leader)
        logs = [LogTail(containers[n]) for n in workers]
        self._start(workers, ended, containers)
        own_left = set(own)

        def time_to_freeze() -> bool:
            if any(log.says(LOADING) for log in logs):
                return True
            own_left.difference_update(_running_tasks_of(lead, own_left))
            return not own_left

        wait_for(time_to_freeze, GATHER_WAIT, 0.01)
        self._gather(workers, leader, lead.address, containers)

    def _gather(self, workers: list[str], leader: str, address: str, containers: dict[str, Any],
                then: Callable[[], None] = lambda: None) -> None:
        """Freeze LEADER (at ADDRESS), do THEN (hear the managers, for workers started early with their dials
        held: about 0.3 s sooner than _start_at_once), and thaw it once each of WORKERS has connected to it:
        their sessions start together, and they join the nodes' gossip within milliseconds of each other. A
        worker that joins later than another asks it for an overlay network's entries before gossip has
        told it of the newcomer, and waits 30 s for an answer (see SWARM_START_WAIT)."""
        pids = [_pid(containers[n]) for n in workers]
        freeze(containers[leader])
        try:
            then()
            wait_for(lambda: all(connected(pid, address, SWARM_PORT) for pid in pids), GATHER_WAIT, 0.01)
        finally:
            containers[leader].unpause()

    def _elect(self, leader: str, managers: list[str], containers: dict[str, Any], since: float,
               hold: ArpHold) -> bool:
        """Have LEADER, the saved leader, elected now (see raft_leader), once the Raft node of every one of
        MANAGERS has started (its engine's log, since SINCE) and listens; whether it was asked. Else Swarm
        elects a leader by itself, 10 to 20 s later, maybe another one (the state is then marked unfit).
        Each is heard (HOLD) once it listens: the others' dials to it, held until then, go through."""
        ids: dict[str, int] = {}
        pids = {name: _pid(containers[name]) for name in managers}

        def started() -> bool:
            for name in managers:
                if name not in ids and listening(pids[name], SWARM_PORT):
                    hold.hear([pids[name]])
                    found = raft_leader.raft_id(containers[name].logs(since=since).decode(errors="replace"))
                    if found is not None:
                        ids[name] = found
            return len(ids) == len(managers)

        if not wait_for(started, RAFT_WAIT, 0.01):
            return False
        addresses = {n.name: n.address for n in self.backend.nodes() if n.name in managers}
        wait_for(lambda: all(connected(pids[a], addresses[b], SWARM_PORT) for a in managers for b in managers
                             if a != b), RAFT_DIAL_WAIT, 0.02)
        time.sleep(0.1)  # their TLS handshakes
        try:
            self._campaign(leader, addresses[leader], ids[leader])
        except ConnectionError:
            return False
        return True

    def _campaign(self, name: str, address: str, raft: int) -> None:
        """Have manager NAME (at ADDRESS, Raft ID RAFT) campaign now, asked with its own node certificate."""
        certificates = self._folder(self.backend.names.volume(name)) / raft_leader.CERTIFICATES
        raft_leader.campaign(address, SWARM_PORT, certificates, raft)

    def elect_now(self, report: Report, name: str | None = None) -> bool:
        """Manager NAME, else the first running manager, campaigns at once (see raft_leader). With another
        manager running, it is elected; alone, it finds at once that it has no quorum, where it would wait
        for its election timer (10 to 20 s) to say so. Whether one was asked (root only: its certificate is
        in its folder)."""
        if os.geteuid() != 0:
            return False
        for node in self.backend.nodes():  # not asked which is a manager: without a leader, `docker info` waits 20 s
            try:
                if node.health() != "running" or name not in (None, node.name):
                    continue
                container = self.host.containers.get(self.backend.names.container(node.name))
                raft = raft_leader.raft_id(container.logs().decode(errors="replace"))  # a manager's, or one's that was
                if raft is not None:
                    self._campaign(node.name, node.address, raft)
                    report(f"{node.name} campaigns at once (a replay does not wait for Swarm's election timer)"
                           if name is None else f"{node.name} campaigns at once: its stop will leave the others "
                           "no quorum, which they then find at once")
                    return True
            except (docker.errors.DockerException, ConnectionError, OSError):
                continue  # a worker (nothing listens on its swarm port), or a manager that cannot be asked
        return False

    def _lock_again(self, locked: list[Node], workers: list[Node], containers: dict[str, Any]) -> None:
        """Restart the engines of the managers that were LOCKED in the state (put back unlocked), once every
        one of WORKERS is active in the swarm: each comes back locked, as after `labkit node restart`, and
        the workers run their tasks on, as they did while the learner's manager was locked. (Workers that
        start while no manager leads stay pending, their tasks stopped, until one does.)"""
        if not wait_for(lambda: all(_active(n) for n in workers), GATHER_WAIT, 0.02):
            raise BackendError(f"The workers did not rejoin their swarm within {GATHER_WAIT:g} s.")
        for node in locked:
            if not self._end_engine(node.name, containers[node.name]):
                raise BackendError(f"The engine of {node.name} could not be restarted in place.")
            (self.backend.run_dir / node.name / HOLD).unlink(missing_ok=True)
        self.backend._wait_engines(locked)

    def _unlock(self, managers: list[Node], key: str) -> None:
        """Unlock MANAGERS with the swarm's KEY (`docker swarm unlock`) once their engines answer."""
        self.backend._wait_engines(managers)
        for node in managers:
            node.docker.api.unlock_swarm(key)

    def _end_engines(self, names: list[str], containers: dict[str, Any]) -> set[str]:
        """End the engines of NAMES at once (see _end_engine); those that did."""
        with ThreadPoolExecutor(max_workers=4) as pool:
            done = pool.map(lambda n: self._end_engine(n, containers[n]), names)
            return {n for n, ok in zip(names, done, strict=True) if ok}

    def _end_later(self, names: list[str], managers: list[str], containers: dict[str, Any]) -> set[str]:
        """End the engines of NAMES once those of MANAGERS (ended in place, started again) have begun to start
        (their entry points have tidied up: DOWN gone, at most END_WAIT); those that did. As an engine ends,
        the kernel tears down its network namespaces, for all the nodes at once, and a node's tidying up
        (its bridges, its firewall) waits for all of it: a manager's took 0.20 to 0.23 s with its engine ended
        alone, 0.43 to 0.56 s with its workers' ended beside it. The workers start later anyway: a lone
        manager's put-back (`networks:vip`) took 3.68 s (median of 15) where it took 3.85 s. With several
        managers, the workers' teardown slows the managers' start instead (`managers:demote`, four of them:
        3.34 s against 3.16 s, 8 each): they end together, as before."""
        wait_for(lambda: not any((self.backend.run_dir / n / DOWN).exists() for n in managers), END_WAIT, 0.01)
        return self._end_engines(names, containers)

    def _end_engine(self, node: str, container: Any) -> bool:
        """End NODE's dockerd and everything it started, its container left running: the node's entry point
        then waits (HOLD) to start dockerd again, on the folder put back meanwhile. Whether it did (else
        the node is killed and started, as by an older node image)."""
        folder = self.backend.run_dir / node
        hold = folder / HOLD
        hold.touch()
        init = int((container.attrs.get("State") or {}).get("Pid") or 0)
        deadline = time.monotonic() + END_WAIT
        while init and time.monotonic() < deadline:
            loop, others = engine_processes(init)  # a look at every process of the host: a few ms of CPU
            if loop is None:
                break
            if not others and (folder / DOWN).exists():
                return True
            for pid in others:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            # the loop says when dockerd has ended (DOWN): only then is it worth looking again
            wait_for(lambda: (folder / DOWN).exists(), max(0.0, deadline - time.monotonic()), 0.01)
            time.sleep(0.01)  # what was killed with it is reaped meanwhile
        hold.unlink(missing_ok=True)
        return False

    def _folder(self, volume: str) -> Path:
        return _mountpoint(self.host.volumes.get(volume))


class Favoured:
    """The managers' containers get the machine's CPU before the other nodes' (their cgroups' CPU shares,
    FAVOURED to the others' CPU_SHARES) from the start of a put-back until ``end``. A worker's engine joining
    the nodes' gossip asks its manager for an overlay network's entries a moment after the manager answered
    its join; a manager busy starting too may not have added the worker yet, and never answers: the task
    waits 30 s (networkdb's bulk sync; the worker's goroutines were seen waiting so). 5 of 24 put-backs of
    stacks:proxy stalled so; with the managers favoured, none of 62 (see the README's Rewinds)."""

    def __init__(self, containers: list[Any]) -> None:
        self.changed: list[Any] = []
        for container in containers:
            with contextlib.suppress(docker.errors.APIError):  # an engine that cannot: as before
                container.update(cpu_shares=FAVOURED)
                self.changed.append(container)

    def __enter__(self) -> Favoured:
        return self

    def __exit__(self, *_: object) -> None:
        self.end()

    def end(self) -> None:
        while self.changed:
            with contextlib.suppress(docker.errors.APIError):
                self.changed.pop().update(cpu_shares=CPU_SHARES)


def waits_for_own_manager(managers: int, agent_tasks: bool) -> bool:
    """Whether a manager put back (one of MANAGERS) has its agent wait for its own manager's local socket
    (engine_state.wait_for_own_manager): with other managers (its agent waits for a leader either way), or
    with tasks on Swarm's networks for its agent to start (given them before its node counts as active, it
    would reject them). A lone manager without such tasks keeps its list, itself, and its agent dials it at
    once, as after any restart: the local socket can come half a second later (swarmkit's
    initManagerConnection asks it every 0.5 s until Raft has started)."""
    return managers > 1 or agent_tasks


def _has_home(container: Container) -> bool:
    return any(m.get("Destination") == HOME for m in container.attrs.get("Mounts") or [])


def engine_processes(init: int, proc: Path = Path("/proc")) -> tuple[int | None, list[int]]:
    """Of the node whose init is host process INIT: its entry point's engine loop (None when it has none:
    an older node image, whose dockerd is init's child) and every process of the engine (dockerd, what it
    started, the containers' shims and processes; not the loop's own helpers, such as its sleep)."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    with os.scandir(proc) as entries:
        pids = [int(e.name) for e in entries if e.name.isdigit()]
    for pid in pids:
        try:
            with open(f"{proc}/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # ended meanwhile
        name, _, rest = stat.rpartition(b")")
        children.setdefault(int(rest.split()[1]), []).append(pid)
        names[pid] = name.partition(b"(")[2].decode(errors="replace")
    top = children.get(init, [])
    loop = next((p for p in top if names.get(p, "").startswith(ENTRYPOINT_NAME)), None)
    if loop is None:
        return None, []
    engine = [p for p in children.get(loop, []) if names.get(p) == "dockerd"] + [p for p in top if p != loop]
    found, todo = [], list(engine)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return loop, sorted(found)


class LogTail:
    """What a node container's log (its engine's own log, in the host's json-file) says from now on."""

    def __init__(self, container: Container) -> None:
        self.path = Path((container.attrs or {}).get("LogPath") or "/nonexistent")
        self.offset = self.path.stat().st_size if self.path.exists() else 0
        self.carry = b""  # the end of what was read last: TEXT may straddle two reads
        self.seen: set[bytes] = set()

    def says(self, text: bytes) -> bool:
        if text in self.seen:
            return True
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                new = f.read()
        except OSError:
            return False
        self.offset += len(new)
        said, self.carry = self.carry + new, (self.carry + new)[-len(text):]
        if text in said:
            self.seen.add(text)
        return text in said


def _running_tasks_of(node: Node, tasks: set[str]) -> set[str]:
    """Of TASKS, those NODE's engine runs a container of (none while it cannot say). One question of the
    engine for them all: a put-back asks every 10 to 50 ms, while the engines need the machine's CPU."""
    try:  # not answering yet
        listed = node.docker.api.containers(filters={"label": TASK_LABEL, "status": "running"})
    except (docker.errors.APIError, OSError, NodeDown):
        return set()
    return tasks & {(c.get("Labels") or {}).get(TASK_LABEL) for c in listed}


def wait_started_by_agent(nodes: list[Node], by_agent: dict[str, list[str]],
                          leader: Node | None = None) -> tuple[list[str], list[str]]:
    """Wait (up to SWARM_START_WAIT) until Swarm's agents run again the tasks BY_AGENT (by node; see
    engine_state.start_with_engine). Returns those they do not run yet (the manager says running all
    along: Swarm may replace them), and of those, the ones LEADER says ended (rejected, failed), which
    ends the wait at once; so does one node's agent still short of its tasks STALL_GAP after all the
    others had theirs (a stall).

    A worker's agent can be given its tasks a moment before its engine counts its node as active in the
    swarm (swarmkit hands the agent its first assignments and its session's "registered" in either
    order): a task on an overlay network prepared then is rejected ("cannot create a swarm scoped
    network when swarm is not active") and Swarm replaces it, a new task. A CI rehearsal met it once in
    hundreds of put-backs; such a state is put back again (see rewind.restore)."""
    waiting = {(node, task) for node in nodes for task in by_agent.get(node.name, [])}
    ended: list[str] = []
    asked = [0.0]
    with_tasks = {node.name for node, _ in waiting}
    done: dict[str, float] = {}  # node -> when its agent had started all its tasks

    def started() -> bool:
        now = time.monotonic()
        for node in {node for node, _ in waiting}:
            running = _running_tasks_of(node, {task for n, task in waiting if n is node})
            waiting.difference_update((node, task) for task in running)
        left = {node.name for node, _ in waiting}
        done.update({name: now for name in with_tasks - left - done.keys()})
        if waiting and leader is not None and now - asked[0] >= ENDED_EVERY:
            asked[0] = now
            ended.extend(_ended(leader, {task for _, task in waiting}))
        stalled = len(left) == 1 and bool(done) and now - max(done.values()) >= STALL_GAP
        return not waiting or bool(ended) or stalled

    wait_for(started, SWARM_START_WAIT, 0.05)
    return sorted(task for _, task in waiting), sorted(ended)


def _ended(leader: Node, tasks: set[str]) -> list[str]:
    """Of TASKS, those LEADER says ended (none while it cannot say: a leader still taking office)."""
    try:
        listed = leader.docker.api.tasks(filters={"id": sorted(tasks)})
    except (docker.errors.APIError, OSError, NodeDown):
        return []
    return [t["ID"] for t in listed if t["ID"] in tasks and t["Status"]["State"] in ENDED_STATES]


def remove_orphans(leader: Node, nodes: list[Node]) -> None:
    """Remove the task containers of tasks Swarm no longer has. A state saved a moment after a service
    went holds its containers, which the engines were about to remove; put back, no engine ever would."""
    found = {node: node.docker.api.containers(all=True, filters={"label": TASK_LABEL}) for node in nodes}
    if not any(found.values()):
        return
    known: set[str] = set()

    def ask() -> bool:
        tasks = _tasks(leader)
        known.update(t["ID"] for t in tasks or [])
        return tasks is not None

    if not wait_for(ask, END_WAIT, 0.1):
        return  # no leader yet to tell orphans by: they stay, as before
    for node, containers in found.items():
        for c in containers:
            if (c.get("Labels") or {}).get(TASK_LABEL) not in known:
                remove_container(node, c["Id"])


def remove_container(node: Node, container: str) -> None:
    """Remove CONTAINER from NODE's engine, by force; one already gone, or already being removed by the
    engine itself (409), is as good."""
    try:
        node.docker.api.remove_container(container, force=True)
    except docker.errors.APIError as e:
        if e.status_code not in (404, 409):
            raise


def _tasks(leader: Node) -> list[dict[str, Any]] | None:
    """Every task the leader has (None while it cannot say: a leader still taking office)."""
    try:
        return list(leader.docker.api.tasks())
    except docker.errors.APIError:
        return None


def manager_ready(pid: int) -> bool:
    """Whether the manager whose node's init is host process PID is ready for its workers: it listens on
    the swarm port and on the gossip port (its engine opens the second about a second after the first)."""
    return {SWARM_PORT, GOSSIP_PORT} <= listening_ports(pid)


def listening_ports(pid: int) -> set[int]:
    """The TCP ports something listens on in the network namespace of host process PID (an engine's
    listeners are on "[::]", IPv6 sockets that take IPv4 too)."""
    return {s.local[1] for family in (socket.AF_INET6, socket.AF_INET)
            for s in tcp_sockets.sockets(pid, tcp_sockets.LISTEN, family)}


def listening(pid: int, port: int) -> bool:
    """Whether something in the network namespace of host process PID listens on TCP PORT."""
    return port in listening_ports(pid)


def connected(pid: int, address: str, port: int) -> bool:
    """Whether the network namespace of host process PID has a TCP connection established to ADDRESS
    (IPv4) on PORT (an engine dials an IPv4 address from an IPv4 socket)."""
    return any(s.remote == (address, port) for s in tcp_sockets.sockets(pid, tcp_sockets.ESTABLISHED, socket.AF_INET))


def _pid(container: Any) -> int:
    container.reload()
    return int((container.attrs.get("State") or {}).get("Pid") or 0)


def _roles(data: dict[str, Any]) -> dict[str, str]:
    """Each node's role in a saved state's fingerprint ({} if it has none)."""
    nodes = ((data.get("meta") or {}).get("fingerprint") or {}).get("nodes")
    return nodes if isinstance(nodes, dict) else {}


def ended_later(managers: list[str], in_place: list[str]) -> list[str]:
    """Of the nodes whose engines end IN_PLACE, those that end once the managers' have started again (see
    DindStates._end_later): the others, when a lone manager ends in place; else none."""
    lone = len(managers) == 1 and managers[0] in in_place
    return [n for n in in_place if n not in managers] if lone else []


def _unlocked_roles(data: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The roles a saved state is put back with, and its locked managers: each is put back unlocked, as
    it was before its restart (the first of them leading when no manager does), and locked again once the
    workers are back (see DindStates._lock_again)."""
    roles = dict(_roles(data))
    locked = sorted(n for n, role in roles.items() if role == "locked")
    for name in locked:
        roles[name] = "manager" if "leader" in roles.values() else "leader"
    return roles, locked


def _active(node: Node) -> bool:
    """Whether NODE's engine counts itself active in a swarm (a worker that reached its leader)."""
    try:
        return node.docker.api.info()["Swarm"]["LocalNodeState"] == "active"
    except (docker.errors.DockerException, OSError, KeyError, NodeDown):
        return False


def _running_tasks(data: dict[str, Any]) -> set[str] | None:
    """The tasks Swarm wanted running in a saved state, from its fingerprint (None if it has none)."""
    tasks = ((data.get("meta") or {}).get("fingerprint") or {}).get("tasks")
    return set(tasks) if isinstance(tasks, dict) else None


def _mountpoint(volume: Volume) -> Path:
    return Path(volume.attrs["Mountpoint"])


def attached(container: Any, network: str) -> bool:
    """Whether CONTAINER is on the network named NETWORK (kept while it is stopped, too)."""
    return network in ((container.attrs.get("NetworkSettings") or {}).get("Networks") or {})


def freeze(container: Container, tries: int = 3) -> None:
    """Pause CONTAINER. The cgroup freezer gives up on a busy container now and then ("unable to
    freeze", seen once under a CI run's load); it is asked again, as `docker pause` would be by hand."""
    for attempt in range(1, tries + 1):
        try:
            container.pause()
            return
        except docker.errors.APIError as exc:
            if "unable to freeze" not in str(exc) or attempt == tries:
                raise
            time.sleep(0.5 * attempt)


def _hold(hold: ArpHold, container: Any, address: str, manager: bool) -> bool:
    """Ready a node ended in place (CONTAINER, at ADDRESS) to have its first dials held (see arp_hold): it
    asks often for its neighbours, and a MANAGER is deaf. Whether it could."""
    pid = int((container.attrs.get("State") or {}).get("Pid") or 0)
    try:
        hold.ask_often(pid, address)
        if manager:
            hold.deafen({pid: address})
    except BackendError:
        return False
    return True
