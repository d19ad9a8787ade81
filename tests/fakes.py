"""A fake lab for testing every check offline: nodes whose Docker Engines answer from canned data
shaped like a real engine's, so a real ``Cluster`` and the real checks run in milliseconds, with
no Docker at all.

    lab = swarm_lab()                                  # manager1 leads, worker1 and worker2 joined
    pinger = lab.service(replicas=3, on=["manager1", "worker1", "worker2"])
    killed = lab.tasks(pinger)[1]
    lab.fail(killed, at=10)                            # its container removed by force, noticed
    lab.replace(killed, at=15.2)                       # the orchestrator's replacement

Only the Docker boundary is faked: what ``node.docker`` (the SDK client), ``node.run`` and
``node.host`` (pytest-testinfra) answer. Where the checks depend on the engine's rules, the fake
follows them: only a manager answers swarm API calls (others get the engine's 503), ``info()``
has a ``Cluster`` only on a manager, a leader's ``ManagerStatus`` alone carries ``Leader``, task
filters match like the engine's, ``containers.list()`` hides stopped containers unless
``all=True``, ``containers.get()`` raises ``NotFound``. A node's shell runs a script one
``;``-separated command at a time: ``echo``, ``cat`` of a file on its fake disk, a command whose
output is canned in ``node.outputs``, or ``docker node ls``, which the node's engine answers from
its swarm (a table on a manager, the CLI's error elsewhere).
"""

from __future__ import annotations

import copy
import hashlib
import re
import shlex
from collections import namedtuple
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import docker.errors

from labkit.backends.base import Backend, Node, RunResult
from labkit.cluster import Cluster
from labkit.report import Report
from labkit.topology import Topology

Json = dict[str, Any]

SERVICE_LABEL = "com.docker.swarm.service.name"  # the engine's label on every task container
ALPINE = "alpine:latest@sha256:" + hashlib.sha256(b"alpine").hexdigest()
CERTS = "/var/lib/docker/swarm/certificates"
CA_CERT = f"{CERTS}/swarm-root-ca.crt"
NODE_CERT = f"{CERTS}/swarm-node.crt"
RAFT_DIR = "/var/lib/docker/swarm/raft"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)  # time 0 of every scene; `at=` is seconds after it
TASK_STATES = ("new", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running",
               "complete", "shutdown", "failed", "rejected", "remove", "orphaned")
NOT_A_MANAGER = ("503 Server Error: This node is not a swarm manager. Worker nodes can't be used to view or "
                 "modify cluster state. Please run this command on a manager node or promote the current node "
                 "to a manager.")
CLI_NOT_A_MANAGER = ("Error response from daemon: This node is not a swarm manager. Worker nodes can't be used to "
                     "view or modify cluster state. Please run this command on a manager node or promote the current "
                     "node to a manager.\n")
CLI_NOT_IN_A_SWARM = ("Error response from daemon: This node is not a swarm manager. Use \"docker swarm init\" or "
                      "\"docker swarm join\" to connect this node to swarm and try again.\n")
ISSUED = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # when init made the root CA and manager1's certificate
NODE_CERT_DAYS, CA_CERT_DAYS = 90, 7300  # swarmkit's defaults: 2160h, 20 years


def stamp(seconds: float) -> str:
    """The engine's timestamp SECONDS after T0: RFC 3339, UTC, nanoseconds."""
    t = T0 + timedelta(seconds=seconds)
    return f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond * 1000 + 123:09d}Z"


def openssl_dates(days: float, start: datetime = ISSUED) -> str:
    """What `openssl x509 -noout -startdate -enddate` prints for a certificate valid DAYS from START."""

    def when(t: datetime) -> str:
        return f"{t:%b} {t.day:2d} {t:%H:%M:%S %Y} GMT"

    return f"notBefore={when(start)}\nnotAfter={when(start + timedelta(days=days))}\n"


def ca_digest(pem: str) -> str:
    """What a join token carries after SWMTKN-1-: sha256 of the root CA's PEM in base 36, 50 digits."""
    number, digits = int(hashlib.sha256(pem.encode()).hexdigest(), 16), ""
    while number:
        number, rest = divmod(number, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[rest] + digits
    return digits.rjust(50, "0")


def fake_pem(seed: str) -> str:
    """A certificate's PEM (its body is not a real certificate: no check decodes it)."""
    return f"-----BEGIN CERTIFICATE-----\n{hashlib.sha256(seed.encode()).hexdigest()}\n-----END CERTIFICATE-----\n"


# --- one engine ----------------------------------------------------------------------------------


@dataclass
class FakeSwarm:
    """What the managers of one swarm share (its Raft store)."""

    id: str
    ca_pem: str
    tokens: dict[str, str]  # Worker, Manager
    nodes: list[Json] = field(default_factory=list)
    services: list[Json] = field(default_factory=list)
    tasks: list[Json] = field(default_factory=list)
    networks: list[Json] = field(default_factory=list)  # the swarm-scoped (overlay) networks
    logs: dict[str, list[tuple[float, str]]] = field(default_factory=dict)  # service id -> (at, line) as logged

    def node(self, hostname: str) -> Json:
        return next(n for n in self.nodes if n["Description"]["Hostname"] == hostname)

    def set_leader(self, hostname: str | None) -> None:
        """HOSTNAME leads (None: no leader, e.g. during an election)."""
        for n in self.nodes:
            if "ManagerStatus" in n:
                n["ManagerStatus"].pop("Leader", None)
                if n["Description"]["Hostname"] == hostname:
                    n["ManagerStatus"]["Leader"] = True


@dataclass
class FakeContainer:
    """A container as docker-py's ``Container`` model shows it."""

    id: str
    name: str
    cmd: list[str] | None
    labels: dict[str, str] = field(default_factory=dict)
    status: str = "running"
    health: str | None = None  # with a health check: starting | healthy | unhealthy (State.Health.Status)
    # a command's distinctive part -> what it gives (a list: one answer per call, the last one repeats)
    execs: dict[str, tuple[int, bytes] | list[tuple[int, bytes]]] = field(default_factory=dict)
    exec_log: list[list[str]] = field(default_factory=list)  # the commands exec_run ran, in order

    @property
    def attrs(self) -> Json:
        state: Json = {"Status": self.status}
        if self.health is not None:  # the engine gives State.Health only to a container with a health check
            state["Health"] = {"Status": self.health, "FailingStreak": 2 if self.health == "unhealthy" else 0,
                               "Log": []}
        return {"Id": self.id, "Name": f"/{self.name}", "State": state,
                "Config": {"Cmd": self.cmd, "Labels": dict(self.labels)}}

    def exec_run(self, cmd: str | list[str], **kwargs: Any) -> ExecResult:
        """`docker exec`: the canned exit code and output (stdout and stderr together, as docker-py gives
        them) of the first canned command that CMD contains; the engine's 409 if the container is not running."""
        if self.status != "running":
            raise docker.errors.APIError(f"409 Client Error: Conflict (\"Container {self.id} is not running\")")
        command = cmd if isinstance(cmd, str) else shlex.join(cmd)
        self.exec_log.append([cmd] if isinstance(cmd, str) else list(cmd))
        for key in sorted(self.execs, key=len, reverse=True):
            if key in command:
                canned = self.execs[key]
                if isinstance(canned, list):  # a queue: one answer per call, the last one repeats
                    canned = canned.pop(0) if len(canned) > 1 else canned[0]
                return ExecResult(*canned)
        raise AssertionError(f"the fake container {self.name} has no canned output for: {command}")


ExecResult = namedtuple("ExecResult", "exit_code,output")  # what docker-py's Container.exec_run gives
LOCAL_NETWORKS = (("bridge", "bridge", "local"), ("host", "host", "local"), ("none", "null", "local"))
SWARM_NETWORKS = (("docker_gwbridge", "bridge", "local"), ("ingress", "overlay", "swarm"))


@dataclass
class FakeEngine:
    """One node's engine: its own view of its swarm, and its containers."""

    local_state: str = "inactive"  # inactive | pending | active | error | locked
    node_id: str = ""
    swarm: FakeSwarm | None = None
    containers: list[FakeContainer] = field(default_factory=list)
    answers: bool = True  # False: the engine does not answer (its machine is stopped)
    local_networks: list[Json] = field(default_factory=list)  # made with `docker network create` on this node
    vanishing: set[str] = field(default_factory=set)  # container ids removed between listing and inspecting

    def reach(self) -> None:
        """What a client meets when the engine does not answer."""
        if not self.answers:
            raise docker.errors.DockerException("Error while fetching server API version: connection refused")

    @property
    def is_manager(self) -> bool:
        return (self.local_state == "active" and self.swarm is not None
                and any(n["ID"] == self.node_id and n["Spec"]["Role"] == "manager" for n in self.swarm.nodes))

    def manager_swarm(self) -> FakeSwarm:
        """The swarm, for the API calls only a manager answers."""
        if not self.is_manager or self.swarm is None:
            raise docker.errors.APIError(NOT_A_MANAGER)
        return self.swarm

    def networks(self) -> list[Json]:
        """The networks this engine lists: its local ones; in a swarm, docker_gwbridge and ingress too, and the
        swarm's overlay networks: all of them on a manager, on a worker only those a task running here uses."""
        def local(name: str, driver: str, scope: str) -> Json:
            return {"Name": name, "Id": hashlib.sha256(f"{self.node_id}/{name}".encode()).hexdigest(),
                    "Driver": driver, "Scope": scope, "Labels": {}}

        self.reach()
        found = [local(*n) for n in LOCAL_NETWORKS] + copy.deepcopy(self.local_networks)
        if self.local_state != "active" or self.swarm is None:
            return found
        found += [local(*n) for n in SWARM_NETWORKS]
        if self.is_manager:
            return found + copy.deepcopy(self.swarm.networks)
        services = {s["ID"]: s for s in self.swarm.services}
        used = {n["Target"] for t in self.swarm.tasks if t.get("NodeID") == self.node_id
                and t["DesiredState"] == "running" and t["Status"]["State"] == "running" and t["ServiceID"] in services
                for n in services[t["ServiceID"]]["Spec"]["TaskTemplate"].get("Networks") or []}
        return found + [copy.deepcopy(n) for n in self.swarm.networks if n["Id"] in used]

    def list_networks(self, names: Sequence[str] | None = None, ids: Sequence[str] | None = None) -> list[Json]:
        """Filtered as the engine does: a `name` filter matches any part of a name (a regular expression
        search), an `id` filter the start of an id."""
        found = self.networks()
        if names:
            found = [n for n in found if any(re.search(name, n["Name"]) for name in names)]
        if ids:
            found = [n for n in found if any(n["Id"].startswith(i) for i in ids)]
        return found


def _as_list(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


class FakeAPI:
    """What ``node.docker.api`` (a ``docker.APIClient``) answers: the swarm calls."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def nodes(self, filters: Json | None = None) -> list[Json]:
        assert not filters, "the fake engine does not filter nodes"
        return copy.deepcopy(self.engine.manager_swarm().nodes)

    def inspect_node(self, node_id: str) -> Json:
        for n in self.engine.manager_swarm().nodes:
            if node_id in (n["ID"], n["Description"]["Hostname"]):
                return copy.deepcopy(n)
        raise docker.errors.NotFound(f"404 Client Error: node {node_id} not found")

    def services(self, filters: Json | None = None, status: bool | None = None) -> list[Json]:
        assert not filters, "the fake engine does not filter services"
        return copy.deepcopy(self.engine.manager_swarm().services)

    def networks(self, names: Sequence[str] | None = None, ids: Sequence[str] | None = None,
                 filters: Json | None = None) -> list[Json]:
        """`GET /networks` (any engine answers, from its own view)."""
        assert not filters, "the fake engine filters networks by names and ids only"
        return self.engine.list_networks(names, ids)

    def service_logs(self, service: str, details: bool = False, follow: bool = False, stdout: bool = False,
                     stderr: bool = False, since: int | float | datetime | None = None, timestamps: bool = False,
                     tail: str = "all", is_tty: bool | None = None) -> Iterator[bytes]:
        """`GET /services/ID/logs`, demultiplexed as docker-py yields it: bytes chunks, which need not end
        at line ends. A line is prefixed with its RFC 3339 time when TIMESTAMPS; SINCE (unix seconds or a
        datetime) drops what was logged before it."""
        swarm = self.engine.manager_swarm()
        if not (stdout or stderr):
            raise docker.errors.APIError("400 Client Error: Bad parameters: you must choose at least one stream")
        assert not follow and not details and tail == "all", "the fake engine only gives the whole log, once"
        found = self._service(swarm, service)
        start = since.timestamp() if isinstance(since, datetime) else since
        logged = swarm.logs.get(found["ID"], [])
        text = "".join(f"{stamp(at) + ' ' if timestamps else ''}{line}\n" for at, line in logged
                       if start is None or (T0 + timedelta(seconds=at)).timestamp() >= start)
        data = text.encode()
        return iter([data[i:i + 50] for i in range(0, len(data), 50)])

    def tasks(self, filters: Json | None = None) -> list[Json]:
        """Tasks, filtered as the engine does: `service` by id, name or id prefix; `desired-state` exactly."""
        swarm = self.engine.manager_swarm()
        wanted = {key: _as_list(value) for key, value in (filters or {}).items()}
        unknown = set(wanted) - {"service", "desired-state"}
        assert not unknown, f"the fake engine does not filter tasks by {sorted(unknown)}"
        tasks = swarm.tasks
        if "service" in wanted:
            ids = {self._service(swarm, ref)["ID"] for ref in wanted["service"]}
            tasks = [t for t in tasks if t["ServiceID"] in ids]
        if "desired-state" in wanted:
            for state in wanted["desired-state"]:
                if state.lower() not in TASK_STATES:
                    raise docker.errors.APIError(f"400 Client Error: Invalid desired-state filter: '{state}'")
            tasks = [t for t in tasks if t["DesiredState"] in {s.lower() for s in wanted["desired-state"]}]
        return copy.deepcopy(tasks)

    @staticmethod
    def _service(swarm: FakeSwarm, ref: str) -> Json:
        for s in swarm.services:
            if ref in (s["ID"], s["Spec"]["Name"]) or s["ID"].startswith(ref):
                return s
        raise docker.errors.NotFound(f"404 Client Error: service {ref} not found")


class FakeContainers:
    """What ``node.docker.containers`` answers."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def list(self, all: bool = False, filters: Json | None = None, ignore_removed: bool = False) -> list[FakeContainer]:
        """Like the SDK's: it lists, then inspects each container; one removed meanwhile raises NotFound
        unless IGNORE_REMOVED."""
        self.engine.reach()
        found = [c for c in self.engine.containers if all or c.status == "running"]
        for c in [c for c in found if c.id in self.engine.vanishing]:
            if not ignore_removed:
                raise docker.errors.NotFound(f"No such container: {c.id}")
            found.remove(c)
        for key, values in (filters or {}).items():
            assert key == "label", f"the fake engine does not filter containers by {key}"
            for want in _as_list(values):
                name, has_value, value = want.partition("=")
                found = [c for c in found if name in c.labels and (not has_value or c.labels[name] == value)]
        return found

    def get(self, container_id: str) -> FakeContainer:
        for c in self.engine.containers:
            if container_id in (c.id, c.name) or c.id.startswith(container_id):
                return c
        raise docker.errors.NotFound(f"404 Client Error: No such container: {container_id}")


@dataclass(frozen=True)
class FakeNetwork:
    """A network as docker-py's ``Network`` model shows it."""

    attrs: Json

    @property
    def name(self) -> str:
        return str(self.attrs["Name"])

    @property
    def id(self) -> str:
        return str(self.attrs["Id"])


class FakeNetworks:
    """What ``node.docker.networks`` answers."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def list(self, names: Sequence[str] | None = None, ids: Sequence[str] | None = None) -> list[FakeNetwork]:
        return [FakeNetwork(n) for n in self.engine.list_networks(names, ids)]


class FakeSwarmModel:
    """What ``node.docker.swarm`` (docker-py's ``Swarm`` model) answers: its attrs are empty off a manager."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    @property
    def attrs(self) -> Json:
        if not self.engine.is_manager or self.engine.swarm is None:
            return {}
        return {"ID": self.engine.swarm.id, "JoinTokens": dict(self.engine.swarm.tokens)}

    def reload(self) -> None:
        pass


class FakeDocker:
    """What ``node.docker`` (a ``docker.DockerClient``) answers."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.api = FakeAPI(engine)
        self.containers = FakeContainers(engine)
        self.networks = FakeNetworks(engine)
        self.swarm = FakeSwarmModel(engine)

    def ping(self) -> bool:
        self.engine.reach()
        return True

    def info(self) -> Json:
        e = self.engine
        swarm: Json = {"NodeID": e.node_id if e.local_state == "active" else "", "NodeAddr": "",
                       "LocalNodeState": e.local_state, "ControlAvailable": e.is_manager, "Error": "",
                       "RemoteManagers": None}
        if e.is_manager and e.swarm is not None:  # the engine tells the cluster only to managers
            managers = [n for n in e.swarm.nodes if n["Spec"]["Role"] == "manager"]
            swarm |= {"Cluster": {"ID": e.swarm.id}, "Nodes": len(e.swarm.nodes), "Managers": len(managers)}
        return {"Containers": len(e.containers), "Swarm": swarm}


# --- one node ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeCommandResult:
    """What testinfra's ``host.run`` gives."""

    rc: int
    stdout: str
    stderr: str = ""

    @property
    def exit_status(self) -> int:
        return self.rc

    @property
    def succeeded(self) -> bool:
        return self.rc == 0


@dataclass(frozen=True)
class FakeFile:
    """What testinfra's ``host.file(path)`` gives."""

    files: dict[str, str]
    path: str

    @property
    def exists(self) -> bool:
        return self.path in self.files

    @property
    def content_string(self) -> str:
        if self.path not in self.files:  # testinfra's check_output fails this way
            raise AssertionError(f"Unexpected exit code 1 for cat -- {self.path}")
        return self.files[self.path]


class FakeHost:
    """What ``node.host`` (a pytest-testinfra ``Host``) answers: the node's shell and files."""

    def __init__(self, node: FakeNode) -> None:
        self.node = node

    def run(self, command: str, *args: str) -> FakeCommandResult:
        assert not args, "the fake host does not format arguments into commands"
        return self.node.sh(command)

    def file(self, path: str) -> FakeFile:
        return FakeFile(self.node.files, path)


class FakeNode(Node):
    """A lab node whose engine, shell and disk are fakes."""

    def __init__(self, name: str, role: str, address: str, lab: str = "lab") -> None:
        super().__init__(name, role, address, lab)
        self.engine = FakeEngine()
        self.files: dict[str, str] = {}  # path -> content, on the node's disk
        self.outputs: dict[str, str | tuple[int, str, str]] = {}  # a command (or a distinctive part) -> what it
        # prints (exit code 0), or (exit code, stdout, stderr)
        self.dirs: set[str] = set()  # directories on the node (what `test -d` sees)
        self.state = "running"  # of what hosts the node: running, exited, paused, ...
        self.network = "connected"  # or disconnected: cut off from the lab network

    def _connect(self) -> FakeDocker:  # type: ignore[override]
        return FakeDocker(self.engine)

    def testinfra_spec(self) -> str:
        return f"fake://{self.name}"

    @cached_property
    def host(self) -> FakeHost:  # type: ignore[override]
        return FakeHost(self)

    def run(self, cmd: str | list[str], timeout: float = 60) -> RunResult:
        done = self.sh(cmd if isinstance(cmd, str) else shlex.join(cmd))
        return RunResult(done.rc, done.stdout, done.stderr)

    def container_state(self) -> str:
        return self.state

    def network_state(self) -> str:
        return self.network

    def sh(self, script: str) -> FakeCommandResult:
        """SCRIPT as /bin/sh runs it, one `;`-separated command after the other; the last one's exit code."""
        rc, out, err = 0, [], []
        for command in filter(None, (c.strip() for c in script.split(";"))):
            for alternative in command.split(" || "):  # `a || b`: b runs only if a failed
                rc, stdout, stderr = self._one(alternative.strip())
                out.append(stdout)
                err.append(stderr)
                if rc == 0:
                    break
        return FakeCommandResult(rc, "".join(out), "".join(err))

    def _node_ls(self) -> tuple[int, str, str]:
        """`docker node ls` as the CLI prints it: only a manager's engine answers."""
        e = self.engine
        if not e.is_manager or e.swarm is None:
            return 1, "", CLI_NOT_A_MANAGER if e.local_state == "active" else CLI_NOT_IN_A_SWARM
        rows = ["ID                            HOSTNAME   STATUS    AVAILABILITY   MANAGER STATUS   ENGINE VERSION"]
        for n in e.swarm.nodes:
            status = n.get("ManagerStatus", {})
            manager = "Leader" if status.get("Leader") else status.get("Reachability", "").capitalize()
            rows.append(f"{n['ID'] + (' *' if n['ID'] == e.node_id else ''):<29} {n['Description']['Hostname']:<10} "
                        f"{n['Status']['State'].capitalize():<9} {n['Spec']['Availability'].capitalize():<14} "
                        f"{manager:<16} 27.3.1")
        return 0, "\n".join(rows) + "\n", ""

    def _one(self, command: str) -> tuple[int, str, str]:
        words = shlex.split(command)
        if words[0] == "echo":
            return 0, " ".join(w for w in words[1:] if not w.startswith("2>")) + "\n", ""
        if words[:2] == ["test", "-d"] and len(words) == 3:
            return (0 if words[2] in self.dirs else 1), "", ""
        if words[0] == "cat" and len(words) > 1:
            if words[1] in self.files:
                return 0, self.files[words[1]], ""
            return 1, "", f"cat: {words[1]}: No such file or directory\n"
        for key in sorted(self.outputs, key=len, reverse=True):
            if key in command:
                canned = self.outputs[key]
                return (0, canned, "") if isinstance(canned, str) else canned
        if words[:3] == ["docker", "node", "ls"]:
            return self._node_ls()
        return 127, "", f"fake sh: no canned output for: {command}\n"


class FakeBackend(Backend):
    """A backend whose nodes already exist: the same FakeNode objects every time."""

    name = "fake"

    def __init__(self, nodes: list[FakeNode], lab: str = "lab") -> None:
        super().__init__(lab)
        self._nodes = nodes

    def up(self, topology: Topology | None, report: Report) -> list[Node]:
        return self.nodes()

    def down(self, report: Report) -> int:
        return 0

    def nodes(self) -> list[Node]:
        return list(self._nodes)

    def shell_command(self, node: str) -> list[str]:
        return ["true"]


# --- scenes --------------------------------------------------------------------------------------


class FakeLab:
    """A fake lab (by default manager1, worker1, worker2: bare engines) and what learners do to it,
    recorded the way the engines would show it."""

    def __init__(self, managers: int = 1, workers: int = 2, lab: str = "lab") -> None:
        nodes = [FakeNode(f"manager{i}", "manager", f"10.210.0.{10 + i}", lab) for i in range(1, managers + 1)]
        nodes += [FakeNode(f"worker{i}", "worker", f"10.210.0.{20 + i}", lab) for i in range(1, workers + 1)]
        self.nodes = {n.name: n for n in nodes}
        self.cluster = Cluster(FakeBackend(nodes, lab))
        self._serial = 0

    def __getitem__(self, name: str) -> FakeNode:
        return self.nodes[name]

    def new_id(self, length: int = 25) -> str:
        self._serial += 1
        return hashlib.sha256(str(self._serial).encode()).hexdigest()[:length]

    @property
    def swarm(self) -> FakeSwarm:
        """The swarm manager1 is in."""
        swarm = self["manager1"].engine.swarm
        assert swarm is not None, "manager1 is in no swarm: call init() first"
        return swarm

    # swarm membership

    def init(self, name: str = "manager1", ca_pem: str | None = None, at: float = 0.0) -> FakeSwarm:
        """`docker swarm init` on NAME at AT: a swarm it leads, with a root CA (CA_PEM, else a new one),
        tokens, certificates and Raft data."""
        pem = ca_pem or fake_pem(self.new_id())
        swarm = FakeSwarm(self.new_id(), pem, {role: f"SWMTKN-1-{ca_digest(pem)}-{self.new_id()}"
                                               for role in ("Worker", "Manager")})
        node = self[name]
        self._enter(node, swarm, "manager", leader=True, at=at)
        node.files[CA_CERT] = pem
        node.outputs |= {
            "docker swarm ca": pem,
            f"openssl x509 -in {CA_CERT} -noout -subject": "subject=CN=swarm-ca\n",
            f"openssl verify -CAfile {CA_CERT} {NODE_CERT}": f"{NODE_CERT}: OK\n",
            f"openssl x509 -in {NODE_CERT} -noout -subject":
                f"subject=CN={node.engine.node_id},OU=swarm-manager,O={swarm.id}\n",
            f"openssl x509 -in {NODE_CERT} -noout -issuer": "issuer=CN=swarm-ca\n",
            f"openssl x509 -in {NODE_CERT} -noout -startdate -enddate": openssl_dates(NODE_CERT_DAYS),
            f"openssl x509 -in {CA_CERT} -noout -startdate -enddate": openssl_dates(CA_CERT_DAYS),
            f"ls {RAFT_DIR}": "snap-v3-encrypted\nwal-v3-encrypted\n",
            f"grep -rl SWMTKN {RAFT_DIR}": "",
        }
        return swarm

    def join(self, name: str, swarm: FakeSwarm, role: str = "worker", state: str = "ready", at: float = 0.0) -> Json:
        """`docker swarm join` on NAME with SWARM's ROLE token at AT (a new node id, even for a node that
        was in the swarm before); STATE: how the managers see it (ready, down)."""
        return self._enter(self[name], swarm, role, state=state, at=at)

    def _enter(self, node: FakeNode, swarm: FakeSwarm, role: str, leader: bool = False,
               state: str = "ready", at: float = 0.0) -> Json:
        node.engine.local_state, node.engine.node_id, node.engine.swarm = "active", self.new_id(), swarm
        entry: Json = {"ID": node.engine.node_id, "CreatedAt": stamp(at), "UpdatedAt": stamp(at),
                       "Description": {"Hostname": node.name},
                       "Spec": {"Labels": {}, "Role": role, "Availability": "active"},
                       "Status": {"State": state, "Addr": node.address}}
        if role == "manager":
            entry["ManagerStatus"] = {"Reachability": "reachable", "Addr": f"{node.address}:2377"}
            if leader:
                entry["ManagerStatus"]["Leader"] = True
        swarm.nodes.append(entry)
        return entry

    def availability(self, name: str, availability: str) -> None:
        """`docker node update --availability AVAILABILITY NAME` (active, pause, drain)."""
        self.swarm.node(name)["Spec"]["Availability"] = availability

    def label(self, name: str, key: str, value: str) -> None:
        """`docker node update --label-add KEY=VALUE NAME`."""
        self.swarm.node(name)["Spec"]["Labels"][key] = value

    def leave(self, name: str) -> None:
        """`docker swarm leave` on worker NAME: its engine is out of swarm mode; the managers keep its entry,
        down, until `docker node rm`."""
        engine = self[name].engine
        swarm = engine.swarm
        assert swarm is not None, f"{name} is in no swarm"
        next(n for n in swarm.nodes if n["ID"] == engine.node_id)["Status"]["State"] = "down"
        engine.local_state, engine.node_id, engine.swarm = "inactive", "", None

    def remove_node(self, name: str) -> None:
        """`docker node rm --force NAME` on a manager: every entry of that hostname goes."""
        self.swarm.nodes = [n for n in self.swarm.nodes if n["Description"]["Hostname"] != name]

    # services, tasks, containers

    def service(self, name: str = "pinger", replicas: int = 1, on: Sequence[str] = ("manager1",),
                args: Sequence[str] = ("ping", "manager1"), state: str = "running", image: str = ALPINE,
                constraints: Sequence[str] = (), mode: str = "replicated", at: float = 0.0,
                networks: Sequence[str] = (), endpoint_mode: str | None = None, ports: Sequence[Json] = (),
                aliases: Mapping[str, Sequence[str]] | None = None) -> Json:
        """`docker service create --name NAME --replicas REPLICAS [--constraint C ...] [--network N ...]
        [--endpoint-mode M] [--publish P ...] IMAGE ARGS` at AT (`--mode global` with MODE "global": no replica
        count), with one task in STATE on each node of ON (slots 1, 2, ...; a global service's tasks have no
        slot). The engine pins IMAGE by digest and keeps the NETWORKS by id; a service on a network with the
        endpoint mode vip gets a virtual IP on it. PORTS: as the engine keeps them (PublishedPort, PublishMode).
        ALIASES: network name -> its aliases (`--network name=N,alias=A`), kept in the network's Aliases."""
        placement: Json = {"Platforms": [{"Architecture": "amd64", "OS": "linux"}]}
        if constraints:
            placement["Constraints"] = list(constraints)
        modes: Json = {"global": {"Global": {}}, "replicated": {"Replicated": {"Replicas": replicas}}}
        template: Json = {"ContainerSpec": {"Image": pinned(image), "Args": list(args)}, "Placement": placement,
                          "ForceUpdate": 0}
        if networks:
            template["Networks"] = [{"Target": self.network_id(n)} | ({"Aliases": list(aliases[n])}
                                                                   if aliases and aliases.get(n) else {})
                                    for n in networks]
        service: Json = {"ID": self.new_id(), "Version": {"Index": 1}, "CreatedAt": stamp(at), "UpdatedAt": stamp(at),
                         "Spec": {"Name": name, "Mode": modes[mode], "TaskTemplate": template}}
        if endpoint_mode or ports:
            service["Spec"]["EndpointSpec"] = {"Mode": endpoint_mode or "vip"}
            if ports:
                service["Spec"]["EndpointSpec"]["Ports"] = [{"Protocol": "tcp", "TargetPort": 80, **p} for p in ports]
        endpoint: Json = {"Spec": copy.deepcopy(service["Spec"].get("EndpointSpec", {}))}
        if (endpoint_mode or "vip") == "vip" and networks:
            endpoint["VirtualIPs"] = [{"NetworkID": self.network_id(n), "Addr": f"10.0.1.{i + 2}/24"}
                                      for i, n in enumerate(networks)]
        service["Endpoint"] = endpoint
        self.swarm.services.append(service)
        for slot, node in enumerate(on, 1):
            self.task(service, node, 0 if mode == "global" else slot, state, at)
        return service

    def update_service(self, service: Json, at: float, constraint_add: Sequence[str] = (),
                       constraint_rm: Sequence[str] = (), force: bool = False) -> None:
        """`docker service update [--constraint-add C] [--constraint-rm C] [--force] SERVICE` at AT: its spec
        only (move its tasks with `move`)."""
        template = service["Spec"]["TaskTemplate"]
        constraints = [c for c in template["Placement"].get("Constraints", []) if c not in constraint_rm]
        constraints += [c for c in constraint_add if c not in constraints]
        template["Placement"].pop("Constraints", None)
        if constraints:
            template["Placement"]["Constraints"] = constraints
        if force:
            template["ForceUpdate"] += 1
        service["Version"]["Index"] += 1
        service["UpdatedAt"] = stamp(at)

    def scale(self, service: Json, replicas: int, at: float) -> None:
        """`docker service scale NAME=REPLICAS` at AT: its spec only (start tasks with `task`, stop them with
        `shutdown`)."""
        service["Spec"]["Mode"] = {"Replicated": {"Replicas": replicas}}
        service["Version"]["Index"] += 1
        service["UpdatedAt"] = stamp(at)

    def shutdown(self, task: Json, at: float) -> None:
        """The orchestrator stops TASK at AT (scaled in, or its service scaled to 0): its container removed,
        desired and current state shutdown."""
        if task["Status"]["ContainerStatus"].get("ContainerID"):
            self.remove_container(task)
        task["DesiredState"] = "shutdown"
        task["Status"] |= {"State": "shutdown", "Message": "shutdown", "Timestamp": stamp(at)}

    def move(self, service: Json, to: Sequence[str], at: float) -> list[Json]:
        """SERVICE's running tasks shut down at AT, and new ones run on the nodes of TO (slots 1, 2, ...)."""
        for task in self.tasks(service):
            if task["DesiredState"] == "running":
                if task["Status"]["ContainerStatus"].get("ContainerID"):
                    self.remove_container(task)
                task["DesiredState"] = "shutdown"
                task["Status"] |= {"State": "shutdown", "Message": "shutdown", "Timestamp": stamp(at)}
        return [self.task(service, node, slot, "running", at) for slot, node in enumerate(to, 1)]

    def pending_task(self, service: Json, slot: int = 1, at: float = 0.0,
                     err: str = "no suitable node (scheduling constraints not satisfied on 3 nodes)") -> Json:
        """A task of SERVICE that no node may run: pending, on no node, and the scheduler's reason in Err."""
        task: Json = {"ID": self.new_id(), "ServiceID": service["ID"], "Slot": slot, "DesiredState": "running",
                      "CreatedAt": stamp(at), "UpdatedAt": stamp(at),
                      "Status": {"Timestamp": stamp(at), "State": "pending", "Message": "pending task scheduling",
                                 "Err": err, "ContainerStatus": {}}}
        self.swarm.tasks.append(task)
        return task

    def task(self, service: Json, node: str, slot: int, state: str = "running", at: float = 0.0) -> Json:
        """A task of SERVICE on NODE in STATE since AT; from `starting` on, its container exists there."""
        task_id, name = self.new_id(), service["Spec"]["Name"]
        task: Json = {"ID": task_id, "ServiceID": service["ID"], "NodeID": self[node].engine.node_id,
                      "Slot": slot, "DesiredState": "running", "CreatedAt": stamp(at), "UpdatedAt": stamp(at),
                      "Spec": copy.deepcopy(service["Spec"]["TaskTemplate"]),
                      "Status": {"Timestamp": stamp(at), "State": state, "Message": state, "ContainerStatus": {}}}
        if state in ("starting", "running"):
            container = FakeContainer(self.new_id(64), f"{name}.{slot}.{task_id}",
                                      list(service["Spec"]["TaskTemplate"]["ContainerSpec"]["Args"]),
                                      {SERVICE_LABEL: name, "com.docker.swarm.service.id": service["ID"],
                                       "com.docker.swarm.task.id": task_id})
            self[node].engine.containers.append(container)
            task["Status"]["ContainerStatus"] = {"ContainerID": container.id, "PID": 4242, "ExitCode": 0}
        self.swarm.tasks.append(task)
        return task

    def tasks(self, service: Json) -> list[Json]:
        """SERVICE's tasks as the managers hold them (live: change them to change the scene)."""
        return [t for t in self.swarm.tasks if t["ServiceID"] == service["ID"]]

    def node_of(self, task: Json) -> FakeNode:
        return next(n for n in self.nodes.values() if n.engine.node_id == task["NodeID"])

    def remove_container(self, task: Json) -> None:
        """`docker container rm -f` of TASK's container on its node; the managers have not noticed yet."""
        engine = self.node_of(task).engine
        cid = task["Status"]["ContainerStatus"]["ContainerID"]
        engine.containers = [c for c in engine.containers if c.id != cid]

    def fail(self, task: Json, at: float) -> None:
        """TASK's container removed by force, and the managers noticed at AT: failed, desired shutdown."""
        self.remove_container(task)
        task["DesiredState"] = "shutdown"
        task["Status"] |= {"State": "failed", "Timestamp": stamp(at), "Message": "started",
                           "Err": "task: non-zero exit (137)"}

    def replace(self, task: Json, at: float, node: str | None = None) -> Json:
        """The orchestrator's replacement of TASK: same slot, running since AT (on TASK's node by default)."""
        service = next(s for s in self.swarm.services if s["ID"] == task["ServiceID"])
        return self.task(service, node or self.node_of(task).name, task["Slot"], "running", at)

    def remove_service(self, service: Json, stopping: bool = False) -> None:
        """`docker service rm`; with STOPPING, its containers have not stopped yet."""
        if not stopping:
            for task in self.tasks(service):
                if task["Status"]["ContainerStatus"].get("ContainerID"):
                    self.remove_container(task)
        self.swarm.tasks = [t for t in self.swarm.tasks if t["ServiceID"] != service["ID"]]
        self.swarm.services.remove(service)

    def container_of(self, task: Json) -> FakeContainer:
        """TASK's container, on its node."""
        return self.node_of(task).docker.containers.get(task["Status"]["ContainerStatus"]["ContainerID"])

    # networks

    def network(self, name: str, driver: str = "overlay", at: float = 0.0) -> Json:
        """`docker network create --driver DRIVER NAME` on manager1 at AT: a swarm-scoped network."""
        network: Json = {"Name": name, "Id": self.new_id(64), "Created": stamp(at),
                         "Scope": "swarm" if driver == "overlay" else "local",
                         "Driver": driver, "Labels": {}}
        self.swarm.networks.append(network)
        return network

    def local_network(self, node: str, name: str, driver: str = "bridge") -> Json:
        """`docker network create --driver DRIVER NAME` on NODE, outside swarm mode's networks."""
        network: Json = {"Name": name, "Id": self.new_id(64), "Scope": "local", "Driver": driver, "Labels": {}}
        self[node].engine.local_networks.append(network)
        return network

    def network_id(self, name: str) -> str:
        return next(n["Id"] for n in self.swarm.networks if n["Name"] == name)

    # updates and logs

    def update_image(self, service: Json, image: str, started: float, completed: float | None = None,
                     order: str = "stop-first", parallelism: int = 1, state: str | None = None,
                     on: Sequence[str] = ()) -> list[Json]:
        """`docker service update --image IMAGE --update-order ORDER --update-parallelism PARALLELISM SERVICE`,
        started at STARTED: its spec (the one before kept as PreviousSpec) and UpdateStatus, `updating` until
        COMPLETED (STATE overrides). With ON, the old running tasks shut down at STARTED and new ones of IMAGE
        run on ON (slots 1, 2, ...), running since COMPLETED (or STARTED)."""
        service["PreviousSpec"] = copy.deepcopy(service["Spec"])
        service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] = pinned(image)
        service["Spec"]["UpdateConfig"] = {"Parallelism": parallelism, "FailureAction": "pause", "Monitor": 5000000000,
                                           "MaxFailureRatio": 0, "Order": order}
        service["Version"]["Index"] += 1
        service["UpdatedAt"] = stamp(started)
        status: Json = {"State": state or ("updating" if completed is None else "completed"),
                        "StartedAt": stamp(started),
                        "Message": "update in progress" if completed is None else "update completed"}
        if completed is not None:
            status["CompletedAt"] = stamp(completed)
        service["UpdateStatus"] = status
        return self.move(service, on, at=completed if completed is not None else started) if on else []

    def rollback(self, service: Json, started: float, completed: float | None = None,
                 on: Sequence[str] = ()) -> list[Json]:
        """`docker service rollback SERVICE` at STARTED: back to its PreviousSpec (which becomes the spec it
        had); `rollback_started` until COMPLETED. With ON, its tasks move as in ``update_image``."""
        service["Spec"], service["PreviousSpec"] = service["PreviousSpec"], service["Spec"]
        service["Version"]["Index"] += 1
        status: Json = {"State": "rollback_started" if completed is None else "rollback_completed",
                        "StartedAt": stamp(started), "Message": "rollback in progress" if completed is None
                        else "rollback completed"}
        if completed is not None:
            status["CompletedAt"] = stamp(completed)
        service["UpdateStatus"] = status
        return self.move(service, on, at=completed if completed is not None else started) if on else []

    def log(self, service: Json, lines: Sequence[tuple[float, str]]) -> None:
        """SERVICE's tasks print LINES, each (at, text): what `docker service logs --raw` shows."""
        self.swarm.logs.setdefault(service["ID"], []).extend(lines)

    # node failures

    def mark_node(self, name: str, state: str, at: float) -> None:
        """The managers see node NAME in STATE (down, ready) from AT."""
        node = self.swarm.node(name)
        node["Status"]["State"] = state
        if state == "down":
            node["Status"]["Message"] = "heartbeat failure"
        else:
            node["Status"].pop("Message", None)
        node["UpdatedAt"] = stamp(at)

    def stop_node(self, name: str) -> None:
        """`labkit node stop NAME`: its machine is off, its engine does not answer."""
        self[name].state, self[name].engine.answers = "exited", False

    def start_node(self, name: str) -> None:
        self[name].state, self[name].engine.answers = "running", True

    def run_container(self, node: str, cmd: list[str] | None, name: str = "plain") -> FakeContainer:
        """`docker run -d IMAGE CMD` on NODE: a container no swarm manages."""
        container = FakeContainer(self.new_id(64), name, cmd)
        self[node].engine.containers.append(container)
        return container


def pinned(image: str) -> str:
    """IMAGE as the engine keeps it in a service's spec: pinned by its digest."""
    return image if "@" in image else f"{image}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def swarm_lab(joined: Sequence[str] = ("worker1", "worker2"), ca_pem: str | None = None) -> FakeLab:
    """manager1 leads a swarm (of root CA CA_PEM, if given); the JOINED nodes are its Ready workers."""
    lab = FakeLab()
    swarm = lab.init("manager1", ca_pem)
    for name in joined:
        lab.join(name, swarm)
    return lab


def ping_lab(replicas: int = 1, on: Sequence[str] = ("manager1",), state: str = "running") -> tuple[FakeLab, Json]:
    """A full swarm running the ping service `pinger` (of manager1) with REPLICAS, tasks on ON in STATE."""
    lab = swarm_lab()
    return lab, lab.service(replicas=replicas, on=on, state=state)
