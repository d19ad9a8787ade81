"""What every backend gives: nodes with the same names, roles and handles.

A lab never knows which backend it runs on: it sees a ``Cluster`` of ``Node``s.
A backend module (dind, later vagrant) subclasses ``Backend`` and ``Node``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property

import docker
import testinfra
import testinfra.host

from labkit.errors import NodeDown, NodeNotFound
from labkit.report import Finding, Report
from labkit.swarm import swarm_state
from labkit.topology import Topology

# What `container_state()` may say, in a learner's words (anything else is shown as it is).
STATE_WORDS = {"exited": "stopped", "created": "stopped", "dead": "stopped", "poweroff": "stopped",
               "shutoff": "stopped", "saved": "paused", "not_created": "missing"}


@dataclass(frozen=True)
class RunResult:
    """What a command run on a node gave."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True)
class NodeStatus:
    name: str
    role: str
    engine: str  # answering | not answering | stopped | paused | missing | restarting
    swarm: str  # inactive | leader | manager | worker | pending | error | -
    address: str


class Node(ABC):
    """One lab node: a separate Docker Engine reachable from Python."""

    def __init__(self, name: str, role: str, address: str, lab: str = "lab") -> None:
        self.name = name
        self.role = role
        self.address = address
        self.lab = lab

    def __repr__(self) -> str:
        return f"<Node {self.name} {self.role} {self.address}>"

    @cached_property
    def docker(self) -> docker.DockerClient:
        """A docker SDK client for this node's own engine."""
        return self._connect()

    @abstractmethod
    def _connect(self) -> docker.DockerClient: ...

    @cached_property
    def host(self) -> testinfra.host.Host:
        """A pytest-testinfra host for facts on the node's disk."""
        return testinfra.get_host(self.testinfra_spec())

    @abstractmethod
    def testinfra_spec(self) -> str:
        """How testinfra reaches the node, e.g. docker://manager1."""

    @abstractmethod
    def run(self, cmd: str | list[str], timeout: float = 60) -> RunResult:
        """Run CMD on the node (a string goes through /bin/sh -c)."""

    @abstractmethod
    def container_state(self) -> str:
        """running, exited, created, ... of what hosts the node; 'missing' if nothing does."""

    def engine_answers(self) -> bool:
        try:
            return bool(self.docker.ping())
        except Exception:  # any failure to reach an engine means: not answering (yet)
            self.__dict__.pop("docker", None)
            return False

    def health(self) -> str:
        """'running' when the node's engine answers; else stopped, paused, missing, not answering, ..."""
        state = self.container_state()
        if state != "running":
            return STATE_WORDS.get(state, state)
        return "running" if self.engine_answers() else "not answering"

    def fault(self) -> NodeDown | None:
        """Why this node cannot take part right now, or None when its engine answers."""
        health = self.health()
        return None if health == "running" else NodeDown(self.name, health, self.lab)

    def status(self) -> NodeStatus:
        health = self.health()
        if health != "running":
            return NodeStatus(self.name, self.role, health, "-", self.address)
        return NodeStatus(self.name, self.role, "answering", swarm_state(self.docker), self.address)


class Backend(ABC):
    """How nodes come to exist. Nothing is remembered outside what the backend
    itself can list (labels on containers, VMs in a Vagrant project)."""

    name: str

    def __init__(self, lab: str) -> None:
        self.lab = lab

    @abstractmethod
    def up(self, topology: Topology | None, report: Report) -> list[Node]:
        """Create or start the nodes; return when every engine answers. Idempotent."""

    @abstractmethod
    def down(self, report: Report) -> int:
        """Remove everything of the lab; return how many resources went. Idempotent."""

    @abstractmethod
    def nodes(self) -> list[Node]:
        """The lab's nodes as they exist now, managers first."""

    def node(self, name: str) -> Node:
        for node in self.nodes():
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes()) or "none: run `labkit up` first"
        raise NodeNotFound(f"There is no node '{name}' in lab '{self.lab}'. Nodes: {known}.")

    @abstractmethod
    def shell_command(self, node: str) -> list[str]:
        """The command that opens an interactive shell on NODE."""

    def findings(self) -> list[Finding]:
        """What `labkit doctor` should say about this backend on this machine."""
        return []


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll PREDICATE until true or TIMEOUT seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def sorted_nodes(nodes: Iterator[Node] | list[Node]) -> list[Node]:
    """Managers first, then workers, each by index."""

    def key(n: Node) -> tuple[int, int]:
        digits = "".join(c for c in n.name if c.isdigit()) or "0"
        return (0 if n.role == "manager" else 1, int(digits))

    return sorted(nodes, key=key)
