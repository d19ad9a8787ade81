"""A Docker Engine's folder (``/var/lib/docker``) on disk, while no engine runs on it: copied fast, and
set so that the containers that ran when it was saved run again when its engine starts.

Used for a seat's engine (filled from the seat image's template) and for a lab's snapshots (each node's
engine saved at a step, and put back on a later reset). Only files: nothing here talks to an engine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LAYERS = "overlay2"  # the layers' folders, one per layer (its content in diff/)
LAYER_IDS = Path("image") / LAYERS / "layerdb" / "sha256"  # each image layer's cache-id names its folder
CONTAINERS = "containers"


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
    for entry in sorted(source.iterdir()):
        if entry.name in skip:
            continue
        if entry.name != LAYERS:
            _cp(entry, target)
            continue
        layers = target / LAYERS
        layers.mkdir()
        for layer in sorted(entry.iterdir()):
            if layer.name not in linked:  # l/ (short names), and containers' layers
                _cp(layer, layers)
                continue
            own = layers / layer.name
            own.mkdir()
            for part in sorted(layer.iterdir()):
                _cp(part, own, link=part.name == "diff")
            shutil.copystat(layer, own)
        shutil.copystat(entry, layers)
    shutil.copystat(source, target)


def copy_folder(source: Path, target: Path) -> None:
    """Copy what is in SOURCE into the folder TARGET (cp -a)."""
    for entry in sorted(source.iterdir()):
        _cp(entry, target)
    shutil.copystat(source, target)


def empty(folder: Path) -> None:
    """Remove everything in FOLDER, keeping FOLDER itself."""
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


@dataclass(frozen=True)
class Restarted:
    """A container set to start with its engine, and the restart policy it had (given back afterwards)."""

    container: str
    policy: str
    retries: int


def start_with_engine(folder: Path) -> list[Restarted]:
    """Make every container that was running when FOLDER was saved start again when its engine starts.

    An engine that starts finds those containers dead; a Swarm task's container has no restart policy,
    so Swarm would see its task fail and replace it after its restart delay (5 s by default), with a
    failed task in the service's history. With the policy `always` for that first start, the engine
    starts each container itself while it loads them, before Swarm's agent looks: the tasks run on, the
    same tasks. The policies are to be given back as soon as the engine answers (`Restarted`)."""
    restarted = []
    for config in sorted((folder / CONTAINERS).glob("*/config.v2.json")):
        state = json.loads(config.read_text()).get("State") or {}
        if not state.get("Running"):
            continue
        host_config = config.parent / "hostconfig.json"
        data = json.loads(host_config.read_text())
        policy = data.get("RestartPolicy") or {}
        restarted.append(Restarted(config.parent.name, policy.get("Name") or "no",
                                   int(policy.get("MaximumRetryCount") or 0)))
        data["RestartPolicy"] = {"Name": "always", "MaximumRetryCount": 0}
        host_config.write_text(json.dumps(data))
    return restarted


def _cp(source: Path, folder: Path, link: bool = False) -> None:
    """cp -a; runs of zeros become holes (a manager's Raft log is 64 MB files, mostly zeros, preallocated)."""
    how = ["--link"] if link else ["--sparse=always"]
    subprocess.run(["cp", "-a", *how, str(source), str(folder)], check=True, capture_output=True)
