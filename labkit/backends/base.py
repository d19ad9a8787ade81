"""What every backend gives: nodes with the same names, roles and handles.

A lab never knows which backend it runs on: it sees a ``Cluster`` of ``Node``s.
A backend module (dind, later vagrant) subclasses ``Backend`` and ``Node``.
"""

from __future__ import annotations

import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import docker
import testinfra
import testinfra.host

from labkit.errors import BackendError, NodeDown, NodeNotFound
from labkit.report import Finding, Report
from labkit.swarm import swarm_state
from labkit.topology import Topology

# What `container_state()` may say, in a learner's words (anything else is shown as it is).
STATE_WORDS = {"exited": "stopped", "created": "stopped", "dead": "stopped", "poweroff": "stopped",
               "shutoff": "stopped", "saved": "paused", "not_created": "missing"}
PROMPT = 5  # seconds a `docker_prompt` client waits for an answer


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
    network: str = "connected"  # connected | disconnected (cut off from the lab network) | - (no node)


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

    @cached_property
    def docker_prompt(self) -> docker.DockerClient:
        """A client of the same engine that gives up after PROMPT seconds (requests' Timeout), for a question
        an engine may hold until its own 20 s deadline: a manager that has just lost its leader does."""
        return self._connect(timeout=PROMPT)

    @abstractmethod
    def _connect(self, timeout: int = 60) -> docker.DockerClient: ...

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

    def read_text(self, path: str) -> str | None:
        """The text of file PATH on the node (None: it cannot be read), as `cat PATH` on the node shows it."""
        done = self.run(["cat", path])
        return done.stdout if done.ok else None

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

    def network_state(self) -> str:
        """'connected', or 'disconnected' while the node is cut off from the lab network (a partition);
        '-' when nothing hosts the node. A backend that cannot cut nodes off always says 'connected'."""
        return "connected"

    def stopped_at(self) -> str | None:
        """When the node last went off (an engine-style timestamp), while it is off; None when it runs or
        the backend cannot tell."""
        return None

    def fault(self) -> NodeDown | None:
        """Why this node cannot take part right now, or None when its engine answers."""
        health = self.health()
        return None if health == "running" else NodeDown(self.name, health, self.lab)

    def status(self) -> NodeStatus:
        """What `labkit status` shows. A disconnected node's engine still answers: a partition is a
        state to observe, not a fault, so its swarm state is read as usual. A manager that has just lost
        its leader holds the question (see docker_prompt): its swarm state reads "error", as it does once
        the manager says it has no leader."""
        health = self.health()
        network = self.network_state()
        if health != "running":
            return NodeStatus(self.name, self.role, health, "-", self.address, network)
        return NodeStatus(self.name, self.role, "answering", swarm_state(self.docker_prompt), self.address, network)


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

    # Saved states (`labkit reset` rewinds with them). KEY names what a state is (the course's steps up to
    # a step, the images, the engine); META is the runner's, kept beside it. A backend that cannot save
    # its nodes' engines keeps the defaults: reset then always replays the solutions.

    def saved_state(self, key: str) -> dict[str, Any] | None:
        """The META saved under KEY for this lab, or None when there is none (or this backend saves none)."""
        return None

    def save_state(self, key: str, meta: dict[str, Any], report: Report,
                   still: Callable[[], bool] = lambda: True) -> bool:
        """Save every node's engine as it is now, under KEY, with META; whether it was saved. STILL, asked
        once the copies are made, says whether the swarm is still as META says (else nothing is kept)."""
        return False

    def elect_now(self, report: Report, name: str | None = None) -> bool:
        """Have manager NAME (else the first running manager) campaign for leadership at once: its leader
        just powered off by a replay (Swarm's own election timer fires 10 to 20 s later), or, NAME, about to
        be; whether one was asked."""
        return False

    def restore_state(self, key: str, topology: Topology, report: Report) -> dict[str, Any] | None:
        """Put back the nodes' engines saved under KEY (nodes made for TOPOLOGY first, where missing),
        and return once the engines that ran then answer; the META saved with them, or None when there
        is no such state for this lab (nothing was changed then)."""
        return None

    def drop_state(self, key: str, meta: dict[str, Any]) -> None:
        """Keep only META under KEY (the nodes' saved engines go): what was learnt of that state."""
        return None

    def note_state(self, key: str, note: dict[str, Any]) -> None:
        """Add NOTE to the META saved under KEY (a None value takes its key out), the state kept."""
        return None

    # Failing a node on purpose (the node-failure lab). Each returns one line saying the node's new state,
    # and is idempotent: asking for the state a node is already in changes nothing and says so.
    # REPORT is for progress of slow steps (a backend that has none need not call it).

    def power(self, node: str, on: bool, report: Report) -> str:
        """Power NODE off (abruptly, like pulling the plug) or on again (returning once its engine answers)."""
        raise BackendError(
            f"The {self.name} backend cannot power a node {'on' if on else 'off'} yet: "
            "only the default backend (dind) can so far."
        )

    def restart(self, node: str, report: Report) -> str:
        """Reboot NODE: its engine shuts down cleanly and starts again; returns once the engine answers."""
        raise BackendError(f"The {self.name} backend cannot restart a node yet: only the default backend "
                           "(dind) can so far.")

    def partition(self, node: str, connected: bool, report: Report) -> str:
        """Cut NODE off the lab network (its engine keeps running), or reconnect it with its own address."""
        raise BackendError(
            f"The {self.name} backend cannot {'reconnect' if connected else 'disconnect'} a node yet: "
            "only the default backend (dind) can so far."
        )


def failure_line(node: str, action: str, changed: bool, lab: str = "lab", address: str = "") -> str:
    """The one line `labkit node ACTION NODE` (and the notebook's buttons) say: what NODE is now,
    and the command that undoes it. ACTION: stop, start, restart, disconnect or connect."""
    flag = "" if lab == "lab" else f" --lab {lab}"
    lines = {
        ("stop", True): f"{node} is off: its container was killed, like pulling the plug. "
                        f"`labkit node start {node}{flag}` powers it on.",
        ("stop", False): f"{node} was already off. `labkit node start {node}{flag}` powers it on.",
        ("start", True): f"{node} is on again and its engine answers.",
        ("start", False): f"{node} was already on and its engine answers.",
        ("restart", True): f"{node} restarted: its engine shut down cleanly, started again and answers.",
        ("restart", False): f"{node} was off; it is on again and its engine answers.",
        ("disconnect", True): f"{node} is cut off from the lab network; its engine keeps running. "
                              f"`labkit node connect {node}{flag}` reconnects it.",
        ("disconnect", False): f"{node} was already cut off from the lab network. "
                               f"`labkit node connect {node}{flag}` reconnects it.",
        ("connect", True): f"{node} is back on the lab network at {address}.",
        ("connect", False): f"{node} was already on the lab network, at {address}.",
    }
    if (action, changed) not in lines:
        raise ValueError(f"unknown node action {action!r}")
    return lines[action, changed]


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


def ping_socket(path: Path, timeout: float = 2.0) -> bool:
    """Whether an engine answers `GET /_ping` on the unix socket PATH within TIMEOUT seconds
    (a paused or stopped node never hangs a command)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(path))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return s.recv(64).split(b" ", 2)[1:2] == [b"200"]
    except OSError:
        return False
