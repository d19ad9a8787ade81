"""The cluster a lab runs on, whatever the backend."""

from __future__ import annotations

from collections.abc import Iterator

from labkit.backends import Backend, get_backend
from labkit.backends.base import Node, NodeStatus
from labkit.errors import LabNotRunning
from labkit.topology import lab_name


class Cluster:
    """The nodes of one lab, managers first. Index by name: ``cluster["worker1"]``."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @property
    def lab(self) -> str:
        return self.backend.lab

    @property
    def nodes(self) -> list[Node]:
        return self.backend.nodes()

    @property
    def managers(self) -> list[Node]:
        return [n for n in self.nodes if n.role == "manager"]

    @property
    def workers(self) -> list[Node]:
        return [n for n in self.nodes if n.role == "worker"]

    def __getitem__(self, name: str) -> Node:
        return self.backend.node(name)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def status(self) -> list[NodeStatus]:
        return [n.status() for n in self.nodes]

    def leader(self) -> Node | None:
        """The manager whose engine says it leads the swarm (None while none does: an election, a lost quorum)."""
        return next((n for n in self.managers if n.status().swarm == "leader"), None)


def cluster(lab: str | None = None, backend: str | None = None) -> Cluster:
    """The running lab LAB (default: $LABKIT_LAB or 'lab'); an error if it has no nodes."""
    c = Cluster(get_backend(backend, lab_name(lab)))
    if not c.nodes:
        raise LabNotRunning(f"Lab '{c.lab}' has no nodes. Start it with `labkit up`.")
    return c
