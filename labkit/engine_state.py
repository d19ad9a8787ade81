"""A Docker Engine's folder (``/var/lib/docker``) on disk, while no engine runs on it: copied fast, and
set so that the containers that ran when it was saved run again when its engine starts.

Used for a seat's engine (filled from the seat image's template) and for a lab's snapshots (each node's
engine saved at a step, and put back on a later reset). Only files: nothing here talks to an engine.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit import agent_tasks

LAYERS = "overlay2"  # the layers' folders, one per layer (its content in diff/)
LAYER_IDS = Path("image") / LAYERS / "layerdb" / "sha256"  # each image layer's cache-id names its folder
CONTAINERS = "containers"
TASK_LABEL = "com.docker.swarm.task.id"  # on a Swarm task's container
SWARM_PEERS = Path("swarm") / "state.json"  # the managers a Swarm node knows, dialled first when it starts
LOCAL_NETWORKS = frozenset({"bridge", "host", "none"})  # an engine's own; any other a container is on is Swarm's


def image_layers(folder: Path) -> set[str]:
    """The layer folders of FOLDER's images: committed, so no engine writes them again (a container's own
    layer, and its -init layer, are not among them)."""
    ids = set()
    for cache_id in (folder / LAYER_IDS).glob("*/cache-id"):
        ids.add(cache_id.read_text().strip())
    return ids


def copy_engine(source: Path, target: Path, skip: frozenset[str] = frozenset()) -> None:
    """Copy the engine folder SOURCE into the empty folder TARGET (the same filesystem): the content of
    its image layers hard-linked (a fraction of a second for hundreds of MB), everything else copied
    (databases and files an engine writes in place, containers' layers), with owners, modes and
    attributes. Top-level names in SKIP are left out."""
    linked = image_layers(source)
    copies: list[tuple[Path, Path, bool]] = []  # what, into which folder, hard-linked
    made: list[tuple[Path, Path]] = []  # folders made here, and the folder whose attributes they take
    for entry in sorted(source.iterdir()):
        if entry.name in skip:
            continue
        if entry.name != LAYERS:
            copies.append((entry, target, False))
            continue
        layers = target / LAYERS
        layers.mkdir()
        for layer in sorted(entry.iterdir()):
            if layer.name not in linked:  # l/ (short names), and containers' layers
                copies.append((layer, layers, False))
                continue
            own = layers / layer.name
            own.mkdir()
            copies += [(part, own, part.name == "diff") for part in sorted(layer.iterdir())]
            made.append((layer, own))
        made.append((entry, layers))
    _cp_all(copies)
    for original, folder in made:
        shutil.copystat(original, folder)
    shutil.copystat(source, target)


def copy_folder(source: Path, target: Path) -> None:
    """Copy what is in SOURCE into the folder TARGET (cp -a)."""
    _cp_all([(entry, target, False) for entry in sorted(source.iterdir())])
    shutil.copystat(source, target)


def empty(folder: Path) -> None:
    """Remove everything in FOLDER, keeping FOLDER itself (rm, in one process: an engine's folder is
    thousands of files, and a put-back empties its nodes' at once)."""
    entries = [str(entry) for entry in folder.iterdir()]
    if entries:
        subprocess.run(["rm", "-rf", "--one-file-system", "--", *entries], check=True, capture_output=True)


@dataclass(frozen=True)
class Restarted:
    """A container set to start with its engine, and the restart policy it had (given back afterwards)."""

    container: str
    policy: str
    retries: int


@dataclass(frozen=True)
class Restarts:
    """How the containers that ran when an engine's folder was saved run again when its engine starts."""

    by_engine: list[Restarted] = field(default_factory=list)  # as the engine loads them
    by_agent: list[str] = field(default_factory=list)  # the tasks Swarm's agent starts again, in new containers


def start_with_engine(folder: Path, tasks: set[str] | None = None) -> Restarts:
    """Make every container that was running when FOLDER was saved run again when its engine starts; of
    Swarm's task containers, only those of TASKS (the tasks Swarm wanted running then; None: all).

    A task's container Swarm was stopping when the state was saved (its task to shut down: a worker that
    came back from a power-off stops the copy the managers replaced meanwhile) stays stopped: started
    with its engine, it could start just after its agent had found it stopped, and run on, one copy too
    many (a CI-like bench's node-failure lab counted four pingers for three tasks).

    An engine that starts finds those containers dead; a Swarm task's container has no restart policy,
    so Swarm would see its task fail and replace it after its restart delay (5 s by default), with a
    failed task in the service's history. With the policy `always` for that first start, the engine
    starts each container itself while it loads them, before Swarm's agent looks: the tasks run on, the
    same tasks. The policies are to be given back as soon as the engine answers (`Restarted`).

    A task's container that needs its agent (see needs_its_agent) cannot start with its engine. Its task
    is set back to accepted in the agent's own record (see agent_tasks) and its container removed: the
    agent prepares the task again (its networks, secrets and configs, a new container, as it made the
    first) and starts it, the same task. Where that record cannot be read, the engine tries as for the
    others (and Swarm replaces the task)."""
    by_engine, by_agent = [], {}
    for config in sorted((folder / CONTAINERS).glob("*/config.v2.json")):
        data = json.loads(config.read_text())
        if not (data.get("State") or {}).get("Running"):
            continue
        task = ((data.get("Config") or {}).get("Labels") or {}).get(TASK_LABEL)
        if task and tasks is not None and task not in tasks:
            continue
        if task and needs_its_agent(data):
            by_agent[task] = config.parent.name
        else:
            by_engine.append(_always(config))
    try:
        set_back = agent_tasks.restart_tasks(folder, set(by_agent))
    except (ValueError, OSError):  # a record it cannot read (UnicodeDecodeError is a ValueError)
        set_back = []
    for task, container in by_agent.items():
        if task in set_back:
            remove_container(folder, container)
        else:
            by_engine.append(_always(folder / CONTAINERS / container / "config.v2.json"))
    return Restarts(by_engine, set_back)


def wait_for_own_manager(folder: Path) -> None:
    """Have the agent of the manager whose engine folder is FOLDER wait for its own manager when the
    engine starts. A Swarm node lists the managers it knows (``swarm/state.json``); a manager's agent
    dials that list (on a single manager, itself, on the swarm port) as soon as it starts, and can be
    given its tasks while its node does not yet count as active: a task on an overlay network prepared
    then is rejected ("cannot create a swarm scoped network when swarm is not active"). With the list
    empty, the agent waits for its manager's local socket, which opens once that manager is ready (the
    list is written again from the session). A put-back asks this only of a manager whose agent has such
    tasks to start, or that has other managers (whose agents wait for a leader either way)."""
    peers = folder / SWARM_PEERS
    if peers.exists():
        peers.write_text("[]")


def known_manager(folder: Path, address: str) -> dict[str, Any] | None:
    """The entry of the manager at ADDRESS among those the node of engine folder FOLDER knows (a
    manager lists itself), as Swarm writes it (node_id, addr); None if it is not there."""
    try:
        peers = json.loads((folder / SWARM_PEERS).read_text())
    except (OSError, ValueError):
        return None
    return next((p for p in peers if isinstance(p, dict) and str(p.get("addr", "")).rpartition(":")[0] == address),
                None)


def dial_first(folder: Path, peer: dict[str, Any]) -> None:
    """Have the agent of the worker whose engine folder is FOLDER dial PEER (its leader) when the engine
    starts. A worker picks a manager from those it knows, and one that is down in the state costs it a
    connection timeout (about 3 s: the managers lab's change, manager1 stopped). Swarm writes the whole
    list again once the worker has a session."""
    if (folder / SWARM_PEERS).exists():
        (folder / SWARM_PEERS).write_text(json.dumps([peer]))


def remove_container(folder: Path, container: str) -> None:
    """Remove CONTAINER from the engine folder FOLDER, as `docker rm` would: its folder, its own layer
    and that layer's -init, and their short names."""
    mount = folder / "image" / LAYERS / "layerdb" / "mounts" / container
    for name in ("mount-id", "init-id"):
        with contextlib.suppress(OSError):
            layer = folder / LAYERS / Path((mount / name).read_text().strip()).name
            with contextlib.suppress(OSError):
                (folder / LAYERS / "l" / Path((layer / "link").read_text().strip()).name).unlink()
            shutil.rmtree(layer, ignore_errors=True)
    shutil.rmtree(mount, ignore_errors=True)
    shutil.rmtree(folder / CONTAINERS / container, ignore_errors=True)


def needs_its_agent(config: dict[str, Any]) -> bool:
    """Whether a Swarm task's container (CONFIG: its config.v2.json) can start only once Swarm's agent has
    prepared its task again: it is on one of Swarm's own networks (an overlay, the routing mesh's
    ingress: the agent makes them when it prepares a task), or it mounts secrets or configs (the agent
    holds them, in memory: else "secret store is not initialized")."""
    networks = set((config.get("NetworkSettings") or {}).get("Networks") or {})
    return bool(networks - LOCAL_NETWORKS or config.get("SecretReferences") or config.get("ConfigReferences"))


def _always(config: Path) -> Restarted:
    """Set the container of CONFIG to start with its engine; the restart policy it had."""
    host_config = config.parent / "hostconfig.json"
    data = json.loads(host_config.read_text())
    policy = data.get("RestartPolicy") or {}
    data["RestartPolicy"] = {"Name": "always", "MaximumRetryCount": 0}
    host_config.write_text(json.dumps(data))
    return Restarted(config.parent.name, policy.get("Name") or "no", int(policy.get("MaximumRetryCount") or 0))


def _cp_all(copies: list[tuple[Path, Path, bool]]) -> None:
    """cp -a each (source, into folder, hard-linked) of COPIES, in one shell: a put-back copies dozens of
    entries per node, on four threads, and a process started from Python for each took a few ms of its
    CPU (and the GIL) while the engines needed the machine. Not linked, runs of zeros become holes (a
    manager's Raft log is 64 MB files, mostly zeros, preallocated)."""
    groups: dict[tuple[Path, bool], list[str]] = {}  # one cp for all that go into one folder alike
    for source, folder, link in copies:
        groups.setdefault((folder, link), []).append(str(source))
    script = [shlex.join(["cp", "-a", "--link" if link else "--sparse=always", *sources, str(folder)])
              for (folder, link), sources in groups.items()]
    if script:
        subprocess.run(["sh", "-ec", "\n".join(script)], check=True, capture_output=True)
