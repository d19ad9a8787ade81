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

import base64
import copy
import hashlib
import json
import re
import shlex
from collections import namedtuple
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import docker.errors
import requests.exceptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from labkit.backends.base import Backend, Node, RunResult
from labkit.checks.pki import openssl_serial
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


_KEY = ec.generate_private_key(ec.SECP256R1())


def real_pem(cn: str, ou: str, o: str, serial: int, start: datetime, days: float) -> str:
    """A real certificate's PEM, as swarmkit issues a node's (self-signed here: no check verifies it)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, o)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(_KEY.public_key())
            .serial_number(serial).not_valid_before(start).not_valid_after(start + timedelta(days=days))
            .sign(_KEY, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


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
    trust: Json = field(default_factory=dict)  # lab trust: Spec.CAConfig, TLSInfo, ... as `swarm inspect` adds them
    secrets: list[Json] = field(default_factory=list)  # lab secrets: as stored, with their Spec.Data (base64)
    configs: list[Json] = field(default_factory=list)  # lab configs: as stored, with their Spec.Data (base64)

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
        if isinstance(cmd, list) and cmd[:2] == ["sh", "-c"]:
            run = self._sequence(cmd[2])
            if run is not None:
                return run
        canned = self._canned(command)
        if canned is None:
            raise AssertionError(f"the fake container {self.name} has no canned output for: {command}")
        return canned

    def _canned(self, command: str) -> ExecResult | None:
        for key in sorted(self.execs, key=len, reverse=True):
            if key in command:
                canned = self.execs[key]
                if isinstance(canned, list):  # a queue: one answer per call, the last one repeats
                    canned = canned.pop(0) if len(canned) > 1 else canned[0]
                return ExecResult(*canned)
        return None

    def _sequence(self, script: str) -> ExecResult | None:
        """SCRIPT as sh runs `a; r=$?; echo; echo TEXT $r; b; ...`: canned commands, their exit codes kept
        and echoes, one after the other (None: SCRIPT is not only those)."""
        parts = script.split("; ")
        if len(parts) < 2 or not all(p.startswith("echo") or p == "r=$?" or self._has_canned(p) for p in parts):
            return None
        out, rc, kept = b"", 0, 0
        for part in parts:
            if part == "r=$?":
                kept, rc = rc, 0
            elif part.startswith("echo"):
                words = [str(rc) if w == "$?" else str(kept) if w == "$r" else w for w in shlex.split(part)[1:]]
                out += " ".join(words).encode() + b"\n"
                rc = 0
            else:
                rc, answer = self._canned(part) or (127, b"")
                out += answer
        return ExecResult(rc, out)

    def _has_canned(self, command: str) -> bool:
        return any(key in command for key in self.execs)


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
    knows: list[str] | None = None  # the manager addresses its agent knows (None: every manager in Raft)
    error: str = ""  # the engine's swarm error (`docker info`: Swarm.Error)
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

    def __init__(self, engine: FakeEngine, timeout: int = 60) -> None:
        self.engine = engine
        self.timeout = timeout  # seconds the client waits for an answer

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

    # lab secrets (labs/15-secrets.toml): `GET /secrets`, `GET /secrets/ID`; like the engine, never the Data

    def secrets(self, filters: Json | None = None) -> list[Json]:
        """Secrets, filtered as the engine does: `name` matches the start of a name."""
        swarm = self.engine.manager_swarm()
        wanted = {key: _as_list(value) for key, value in (filters or {}).items()}
        assert set(wanted) <= {"name"}, f"the fake engine does not filter secrets by {sorted(wanted)}"
        return [_without_data(s) for s in swarm.secrets
                if not wanted.get("name") or any(s["Spec"]["Name"].startswith(n) for n in wanted["name"])]

    def inspect_secret(self, secret_id: str) -> Json:
        for s in self.engine.manager_swarm().secrets:
            if secret_id in (s["ID"], s["Spec"]["Name"]) or s["ID"].startswith(secret_id):
                return _without_data(s)
        raise docker.errors.NotFound(f"404 Client Error: secret {secret_id} not found")

    # lab configs (labs/16-configs.toml): `GET /configs`; configs are not secret: the engine gives their Data

    def configs(self, filters: Json | None = None) -> list[Json]:
        assert not filters, "the fake engine does not filter configs"
        return copy.deepcopy(self.engine.manager_swarm().configs)

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
        return {"ID": self.engine.swarm.id, "JoinTokens": dict(self.engine.swarm.tokens),
                **copy.deepcopy(self.engine.swarm.trust)}

    def reload(self) -> None:
        pass


class FakeDocker:
    """What ``node.docker`` (a ``docker.DockerClient``) answers."""

    def __init__(self, engine: FakeEngine, timeout: int = 60) -> None:
        self.engine = engine
        self.api = FakeAPI(engine, timeout)
        self.containers = FakeContainers(engine)
        self.networks = FakeNetworks(engine)
        self.swarm = FakeSwarmModel(engine)

    def ping(self) -> bool:
        self.engine.reach()
        return True

    def info(self) -> Json:
        e = self.engine
        swarm: Json = {"NodeID": e.node_id if e.local_state == "active" else "", "NodeAddr": "",
                       "LocalNodeState": e.local_state, "ControlAvailable": e.is_manager, "Error": e.error,
                       "RemoteManagers": None}
        if e.local_state == "active" and e.swarm is not None:
            seated = [n["ManagerStatus"]["Addr"] for n in e.swarm.nodes if n.get("ManagerStatus")]
            swarm["RemoteManagers"] = [{"Addr": a} for a in (seated if e.knows is None else e.knows)]
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


THROWAWAY = "docker run --rm alpine sh -c "


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

    def _connect(self, timeout: int = 60) -> FakeDocker:  # type: ignore[override]
        return FakeDocker(self.engine, timeout)

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
        """SCRIPT as /bin/sh runs it, one `;`-separated command after the other; the last one's exit code.
        `docker run --rm alpine sh -c 'SCRIPT'`, a throwaway container, runs its SCRIPT as canned here."""
        words = shlex.split(script) if script.startswith(THROWAWAY) else []
        if words[:6] == THROWAWAY.split() and len(words) == 7:
            return self.sh(words[6])
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


    # secrets (lab secrets, labs/15-secrets.toml)

    def secret(self, name: str, value: str, at: float = 0.0) -> Json:
        """`printf VALUE | docker secret create NAME -` on manager1 at AT; `docker secret inspect NAME` there
        shows it as the engine does, without the value."""
        secret: Json = {"ID": self.new_id(), "Version": {"Index": 1}, "CreatedAt": stamp(at), "UpdatedAt": stamp(at),
                        "Spec": {"Name": name, "Labels": {},
                                 "Data": base64.b64encode(value.encode()).decode()}}
        self.swarm.secrets.append(secret)
        self["manager1"].outputs[f"docker secret inspect {name}"] = json.dumps([_without_data(secret)], indent=4)
        return secret

    def remove_secret(self, name: str) -> None:
        """`docker secret rm NAME` (that the engine refuses while a service uses it is the checks' business)."""
        self.swarm.secrets = [s for s in self.swarm.secrets if s["Spec"]["Name"] != name]

    def grant(self, service: Json, secret: str, target: str | None = None, remove: Sequence[str] = ()) -> None:
        """`docker service update --secret-rm R ... --secret-add source=SECRET,target=TARGET SERVICE`: its spec
        only (the engine replaces its tasks: `move` them, then `mount_secrets`); a service made with `service()`
        and granted at once (`--secret` at create) is `grant`ed before `mount_secrets`."""
        found = next(s for s in self.swarm.secrets if s["Spec"]["Name"] == secret)
        spec = service["Spec"]["TaskTemplate"]["ContainerSpec"]
        refs = [r for r in spec.get("Secrets", []) if r["SecretName"] not in remove]
        refs.append({"File": {"Name": target or secret, "UID": "0", "GID": "0", "Mode": 292},
                     "SecretID": found["ID"], "SecretName": secret})
        spec["Secrets"] = refs
        service["Version"]["Index"] += 1

    def mount_secrets(self, service: Json, created: bool = False) -> None:
        """What the engine mounts in each running task container of SERVICE: each secret its task was granted,
        a file in a tmpfs at /run/secrets/TARGET (`cat` reads it; /proc/mounts lists it). CREATED: the
        service was granted its secrets at create, so its tasks' specs hold them too."""
        for task in self.tasks(service):
            if created:
                task["Spec"] = copy.deepcopy(service["Spec"]["TaskTemplate"])
            cid = task["Status"]["ContainerStatus"].get("ContainerID")
            if task["DesiredState"] != "running" or not cid:
                continue
            container = self.container_of(task)
            mounts = ["overlay / overlay rw,relatime 0 0", "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0"]
            for ref in task["Spec"]["ContainerSpec"].get("Secrets", []):
                path = f"/run/secrets/{ref['File']['Name']}"
                data = next(s for s in self.swarm.secrets if s["ID"] == ref["SecretID"])["Spec"]["Data"]
                container.execs[f"cat {path}"] = (0, base64.b64decode(data))
                mounts.append(f"tmpfs {path} tmpfs ro,relatime 0 0")
            container.execs["cat /proc/mounts"] = (0, ("\n".join(mounts) + "\n").encode())

    # configs (lab configs, labs/16-configs.toml)

    def config(self, name: str, text: str, at: float = 0.0) -> Json:
        """`docker config create NAME -` on manager1 at AT, with TEXT on standard input."""
        config: Json = {"ID": self.new_id(), "Version": {"Index": 1}, "CreatedAt": stamp(at), "UpdatedAt": stamp(at),
                        "Spec": {"Name": name, "Labels": {}, "Data": base64.b64encode(text.encode()).decode()}}
        self.swarm.configs.append(config)
        return config

    def remove_config(self, name: str) -> None:
        """`docker config rm NAME` (that the engine refuses while a service uses it is the checks' business)."""
        self.swarm.configs = [c for c in self.swarm.configs if c["Spec"]["Name"] != name]

    def use_config(self, service: Json, config: str, target: str | None = None, remove: Sequence[str] = ()) -> None:
        """`docker service update --config-rm R ... --config-add source=CONFIG,target=TARGET SERVICE` (no TARGET:
        the engine keeps the bare name, mounted at /CONFIG): its spec only (the engine replaces the tasks:
        `move` them, then `serve_nginx`); at create (`--config`), `use_config` before `serve_nginx(created=True)`."""
        found = next(c for c in self.swarm.configs if c["Spec"]["Name"] == config)
        spec = service["Spec"]["TaskTemplate"]["ContainerSpec"]
        refs = [r for r in spec.get("Configs", []) if r["ConfigName"] not in remove]
        refs.append({"File": {"Name": target or config, "UID": "0", "GID": "0", "Mode": 292},
                     "ConfigID": found["ID"], "ConfigName": config})
        spec["Configs"] = refs
        service["Version"]["Index"] += 1

    def serve_nginx(self, service: Json, created: bool = False, whoami: bool = True) -> None:
        """What nginx answers in each running task container of SERVICE, asked from inside (`wget -O-
        http://127.0.0.1/...`): at / the config its task mounts at /usr/share/nginx/html/index.html (else the
        image's own page); at /whoami the container's hostname, unless WHOAMI is False (a server config that
        left it out: 404). CREATED: the service used its configs at create, so its tasks' specs hold them too."""
        for task in self.tasks(service):
            if created:
                task["Spec"] = copy.deepcopy(service["Spec"]["TaskTemplate"])
            cid = task["Status"]["ContainerStatus"].get("ContainerID")
            if task["DesiredState"] != "running" or not cid:
                continue
            page = NGINX_DEFAULT_PAGE
            for ref in task["Spec"]["ContainerSpec"].get("Configs", []):
                if ref["File"]["Name"] == "/usr/share/nginx/html/index.html":
                    found = next(c for c in self.swarm.configs if c["ID"] == ref["ConfigID"])
                    page = base64.b64decode(found["Spec"]["Data"]).decode()
            container = self.container_of(task)
            container.execs["http://127.0.0.1/"] = (0, page.encode())
            container.execs["http://127.0.0.1/whoami"] = (0, f"{cid[:12]} nginx/1.22.1\n".encode()) if whoami else \
                (1, b"wget: server returned error: HTTP/1.1 404 Not Found\n")


NGINX_DEFAULT_PAGE = "<!DOCTYPE html>\n<html>\n<head><title>Welcome to nginx!</title></head>\n</html>\n"  # lab configs


def _without_data(secret: Json) -> Json:
    """A secret as the engine gives it: its Spec without Data."""
    shown = copy.deepcopy(secret)
    shown["Spec"].pop("Data", None)
    return shown


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


# --- lab autolock (labs/14-autolock.toml): autolock, the unlock key, a locked manager -------------
# The swarm's autolock setting and key live on the FakeSwarm (as `autolock`); only a manager's engine
# answers inspect_swarm and get_unlock_key, as the engine does (a locked one answers neither).

SWARM_KEY_FILE = f"{CERTS}/swarm-node.key"
SWARM_STATE_FILE = "/var/lib/docker/swarm/docker-state.json"
PLAIN_KEY, SEALED_KEY = "-----BEGIN PRIVATE KEY-----\n", "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
NOW = 1_800_000_000  # the nodes' clock (date +%s) in autolock scenes


def _autolock_of(swarm: FakeSwarm) -> Json:
    return swarm.__dict__.setdefault("autolock", {"on": False, "key": ""})


def _inspect_swarm(self: FakeAPI) -> Json:
    """`GET /swarm` (only a manager answers): its id and spec, with EncryptionConfig."""
    swarm = self.engine.manager_swarm()
    return {"ID": swarm.id, "Spec": {"Name": "default",
                                     "EncryptionConfig": {"AutoLockManagers": _autolock_of(swarm)["on"]}}}


def _get_unlock_key(self: FakeAPI) -> Json:
    """`GET /swarm/unlockkey` (only a manager answers): the key, '' while autolock is off."""
    return {"UnlockKey": _autolock_of(self.engine.manager_swarm())["key"]}


FakeAPI.inspect_swarm = _inspect_swarm  # type: ignore[attr-defined]
FakeAPI.get_unlock_key = _get_unlock_key  # type: ignore[attr-defined]


def set_autolock(lab: FakeLab, on: bool, key: str = "SWMKEY-1-first0key0printed0by0autolock0on0abcdef") -> None:
    """`docker swarm update --autolock=ON` (or `docker swarm unlock-key --rotate` with a new KEY): the managers'
    key files sealed with KEY, or back in the clear."""
    _autolock_of(lab.swarm).update(on=on, key=key if on else "")
    for node in lab.nodes.values():
        if node.role == "manager":
            node.outputs[f"head -n 1 {SWARM_KEY_FILE}"] = SEALED_KEY if on else PLAIN_KEY


def lock(lab: FakeLab, name: str = "manager1", up: int = 40, refused_ago: int | None = None) -> None:
    """NAME restarted UP seconds ago with autolock on: its engine answers, its swarm is locked. REFUSED_AGO:
    an unlock with a wrong key was tried that many seconds ago (it rewrote the swarm state file)."""
    node = lab[name]
    node.engine.local_state = "locked"
    started, written = NOW - up, NOW - (refused_ago if refused_ago is not None else up - 0.4)
    node.outputs |= {f"stat -c %.3Y /var/run/docker.pid {SWARM_STATE_FILE}": f"{started:.3f}\n{written:.3f}\n",
                     "date +%s.%3N": f"{NOW:.3f}\n"}


def unlock(lab: FakeLab, name: str = "manager1") -> None:
    """`docker swarm unlock` with the right key on NAME."""
    lab[name].engine.local_state = "active"


# --- lab trust (labs/13-trust.toml): node certificates on every disk, saved tokens, rotations ---------------

HOUR_NS = 3_600_000_000_000  # CAConfig.NodeCertExpiry is in nanoseconds
NODE_CERT_READ = f"openssl x509 -in {NODE_CERT} -noout -subject -serial -startdate -enddate"  # + -nameopt RFC2253
NODE_CERT_VERIFY = f"openssl verify -CAfile {CA_CERT} {NODE_CERT}"


def trust_lab() -> FakeLab:
    """A full swarm as `swarm inspect` shows it to the trust checks: CAConfig (90 days), TLSInfo of its root
    CA, no rotation in progress; every node holds a certificate of that CA on its disk."""
    return with_certs(swarm_lab())


def with_certs(lab: FakeLab) -> FakeLab:
    """LAB's swarm with its CA's settings (90 days) and TLSInfo, and a certificate of its role on every node."""
    lab.swarm.trust = {"Spec": {"CAConfig": {"NodeCertExpiry": NODE_CERT_DAYS * 24 * HOUR_NS}},
                       "TLSInfo": _tls_info(lab.swarm.ca_pem), "RootRotationInProgress": False}
    for name in lab.nodes:
        issue_cert(lab, name)
    return lab


def _tls_info(pem: str) -> Json:
    key = hashlib.sha256(f"key of {pem}".encode()).hexdigest()
    return {"TrustRoot": pem, "CertIssuerSubject": "MBMxETAPBgNVBAMTCHN3YXJtLWNh", "CertIssuerPublicKey": key}


def issue_cert(lab: FakeLab, name: str, at: float = 0.0, role: str | None = None) -> str:
    """The swarm's CA issues NAME a certificate at AT (OU from ROLE, else from its role in the swarm), valid for
    the swarm's NodeCertExpiry: on its disk, and in its node entry's TLSInfo. Its serial."""
    node, swarm = lab[name], lab.swarm
    entry = next(n for n in swarm.nodes if n["ID"] == node.engine.node_id)
    role = role or entry["Spec"]["Role"]
    number = int(hashlib.sha1(f"{name}/{lab.new_id()}".encode()).hexdigest()[:32], 16)  # 128 bits, as swarmkit's
    serial = openssl_serial(number)
    days = swarm.trust["Spec"]["CAConfig"]["NodeCertExpiry"] / HOUR_NS / 24
    node.files[CA_CERT] = swarm.ca_pem
    node.files[NODE_CERT] = real_pem(node.engine.node_id, f"swarm-{role}", swarm.id, number,
                                     ISSUED + timedelta(seconds=at), days)
    node.outputs[NODE_CERT_READ] = (f"subject=CN={node.engine.node_id},OU=swarm-{role},O={swarm.id}\n"
                                    f"serial={serial}\n" + openssl_dates(days, ISSUED + timedelta(seconds=at)))
    node.outputs[NODE_CERT_VERIFY] = f"{NODE_CERT}: OK\n"
    entry["Description"]["TLSInfo"] = copy.deepcopy(swarm.trust["TLSInfo"])
    return serial


def save_file(lab: FakeLab, name: str, path: str, text: str, at: float = 0.0) -> None:
    """`echo ... > PATH` on NAME at AT: the file, and its time as `stat -c %Y` tells."""
    lab[name].files[path] = text
    lab[name].outputs[f"stat -c %Y {path}"] = f"{int((T0 + timedelta(seconds=at)).timestamp())}\n"


def rotate_token(lab: FakeLab, role: str = "Worker") -> str:
    """`docker swarm join-token --rotate ROLE`: same CA digest, a new secret. The new token."""
    lab.swarm.tokens[role] = f"SWMTKN-1-{ca_digest(lab.swarm.ca_pem)}-{lab.new_id()}"
    return lab.swarm.tokens[role]


def leave_swarm(lab: FakeLab, name: str) -> None:
    """`docker swarm leave` on NAME: as FakeLab.leave, and its certificates are gone from its disk."""
    lab.leave(name)
    node = lab[name]
    for path in (NODE_CERT, CA_CERT):
        node.files.pop(path, None)
    node.outputs[NODE_CERT_READ] = (1, "", f"Could not open file or uri for loading certificate from {NODE_CERT}\n")
    node.outputs[NODE_CERT_VERIFY] = (2, "", f"Could not open file or uri for loading certificate from {NODE_CERT}\n")


def rejoin(lab: FakeLab, name: str, at: float, role: str = "worker") -> Json:
    """`docker swarm join` with the current ROLE token on NAME at AT: a new node entry and a certificate."""
    entry = lab.join(name, lab.swarm, role, at=at)
    issue_cert(lab, name, at)
    return entry


def set_role(lab: FakeLab, name: str, role: str, cert_follows: bool = True, reachability: str = "reachable") -> None:
    """`docker node promote|demote NAME`: its role; with CERT_FOLLOWS, the CA has issued it a certificate of
    that role already (else its disk still holds the old one)."""
    entry = lab.swarm.node(name)
    entry["Spec"]["Role"] = role
    if role == "manager":
        entry["ManagerStatus"] = {"Reachability": reachability, "Addr": f"{lab[name].address}:2377"}
    else:
        entry.pop("ManagerStatus", None)
    if cert_follows:
        issue_cert(lab, name)


def set_cert_expiry(lab: FakeLab, hours: float) -> None:
    """`docker swarm update --cert-expiry HOURSh`: for certificates issued from now on."""
    lab.swarm.trust["Spec"]["CAConfig"]["NodeCertExpiry"] = int(hours * HOUR_NS)


def rotate_ca(lab: FakeLab, behind: Sequence[str] = (), at: float = 0.0) -> None:
    """`docker swarm ca --rotate` at AT: a new root CA, new tokens (new digest, new secrets), ForceRotate + 1;
    every node but those of BEHIND holds a certificate of the new CA (while some are behind, the rotation is
    in progress)."""
    swarm = lab.swarm
    swarm.ca_pem = fake_pem(lab.new_id())
    swarm.tokens = {role: f"SWMTKN-1-{ca_digest(swarm.ca_pem)}-{lab.new_id()}" for role in ("Worker", "Manager")}
    config = swarm.trust["Spec"]["CAConfig"]
    config["ForceRotate"] = config.get("ForceRotate", 0) + 1
    swarm.trust["TLSInfo"] = _tls_info(swarm.ca_pem)
    swarm.trust["RootRotationInProgress"] = bool(behind)
    for name, node in lab.nodes.items():
        if node.engine.swarm is swarm and name not in behind:
            issue_cert(lab, name, at)


# --- lab managers (labs/12-managers.toml): three managers in Raft, an election, a lost quorum, a new cluster ---
# What the managers' Raft makes of the swarm lives on the FakeSwarm (as `raft`): the words every manager's API
# refuses with while the swarm has no leader ('' while it has one), and the node events the managers' engines
# give. A powered-off node remembers when it went off (Node.stopped_at), as its backend does.

NO_LEADER = ("rpc error: code = Unknown desc = The swarm does not have a leader. It's possible that too few managers "
             "are online. Make sure more than half of the managers are online.")
ELECTING = "rpc error: code = DeadlineExceeded desc = context deadline exceeded"  # an election under way
HELD = "held"  # a manager that has lost its leader and not noticed yet: it holds requests (ELECTING after 20 s)
DEADLINE = 20  # seconds dockerd waits for a leader


def managers_lab() -> FakeLab:
    """manager1 leads a swarm of three managers (manager2 and manager3 Reachable) and two workers, each with a
    certificate of its role on its disk."""
    lab = FakeLab(managers=3, workers=2)
    swarm = lab.init("manager1")
    for name in ("manager2", "manager3"):
        lab.join(name, swarm, "manager")
    for name in ("worker1", "worker2"):
        lab.join(name, swarm)
    return with_certs(lab)


def _raft_of(swarm: FakeSwarm) -> Json:
    return swarm.__dict__.setdefault("raft", {"refused": "", "events": []})


def _led(method: Any) -> Any:
    """A call only a manager answers, and only while its swarm has a leader: without one, the engine gives
    the managers' own words (a 500, its message as the explanation); a stopped engine does not answer. A
    manager that holds requests (HELD) answers ELECTING at dockerd's deadline, unless the client gives up
    first (requests' ReadTimeout)."""

    def call(self: FakeAPI, *args: Any, **kwargs: Any) -> Any:
        self.engine.reach()
        said = _raft_of(self.engine.swarm)["refused"] if self.engine.is_manager and self.engine.swarm else ""
        if said == HELD:
            _hold(self)
            said = ELECTING
        if said:
            raise docker.errors.APIError(f'500 Server Error: Internal Server Error ("{said}")', explanation=said)
        return method(self, *args, **kwargs)

    call.__doc__ = method.__doc__
    return call


for _call in ("nodes", "inspect_node", "services", "tasks"):
    setattr(FakeAPI, _call, _led(getattr(FakeAPI, _call)))


def _hold(api: FakeAPI) -> None:
    """A manager holds a question (HELD) until dockerd's deadline: the client waits that long, or gives up at
    its own timeout first (requests' ReadTimeout). The seconds waited add up in the swarm's `raft` ("waited")."""
    raft = _raft_of(api.engine.swarm)
    raft["waited"] = raft.get("waited", 0) + min(api.timeout, DEADLINE)
    if api.timeout < DEADLINE:
        raise requests.exceptions.ReadTimeout(f"Read timed out. (read timeout={api.timeout})")


def _info(self: FakeDocker) -> Json:
    """`docker info`: a manager that holds questions (HELD) holds this one too (dockerd asks its leader for the
    cluster's counts), and answers without them at the deadline."""
    if self.engine.is_manager and self.engine.swarm and _raft_of(self.engine.swarm)["refused"] == HELD:
        _hold(self.api)
    return _plain_info(self)


_plain_info = FakeDocker.info
FakeDocker.info = _info  # type: ignore[method-assign]


def _events(self: FakeAPI, since: int | None = None, until: int | None = None, filters: Json | None = None,
            decode: bool | None = None) -> Iterator[Json]:
    """`GET /events` as docker-py decodes it: the node events this manager's engine gave from SINCE to UNTIL
    (unix seconds, both included), filtered by `type` and `event`. An UNTIL still to come would stream live
    events until then: a check must not wait on that, so here it is a mistake."""
    self.engine.reach()
    assert decode, "without decode=True docker-py yields raw bytes"
    assert until is not None and until <= datetime.now(UTC).timestamp(), "the engine would stream until UNTIL"
    wanted = {key: _as_list(value) for key, value in (filters or {}).items()}
    assert set(wanted) <= {"type", "event"}, f"the fake engine does not filter events by {sorted(wanted)}"
    events = _raft_of(self.engine.swarm)["events"] if self.engine.is_manager and self.engine.swarm else []
    return iter([copy.deepcopy(e) for e in events if (since is None or e["time"] >= since) and e["time"] <= until
                 and e["Type"] in wanted.get("type", [e["Type"]])
                 and e["Action"] in wanted.get("event", [e["Action"]])])


FakeAPI.events = _events  # type: ignore[attr-defined]


def _stopped_at(self: FakeNode) -> str | None:
    """When the node went off (`power_off`), while it is off."""
    return self.__dict__.get("off_since") if self.state != "running" else None


FakeNode.stopped_at = _stopped_at  # type: ignore[method-assign]


def power_off(lab: FakeLab, name: str, at: float) -> None:
    """`labkit node stop NAME` at AT: its machine off, its engine silent; the managers have not noticed yet."""
    lab.stop_node(name)
    lab[name].__dict__["off_since"] = stamp(at)


def node_event(lab: FakeLab, at: float, name: str, old: str, new: str) -> None:
    """The managers' engines give a node update event at AT: NAME's state from OLD to NEW."""
    t = T0 + timedelta(seconds=at)
    nanos = int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000
    _raft_of(lab.swarm)["events"].append({
        "Type": "node", "Action": "update", "scope": "swarm", "time": int(t.timestamp()), "timeNano": nanos,
        "Actor": {"ID": lab.swarm.node(name)["ID"], "Attributes": {"name": name, "state.old": old, "state.new": new}}})


def unreachable(lab: FakeLab, name: str, at: float) -> None:
    """The managers miss manager NAME's heartbeats: Unreachable in Raft, Down as a node, from AT."""
    entry = lab.swarm.node(name)
    entry["ManagerStatus"]["Reachability"] = "unreachable"
    entry["ManagerStatus"].pop("Leader", None)
    lab.mark_node(name, "down", at)


def no_leader(lab: FakeLab, said: str = NO_LEADER) -> None:
    """The swarm has no leader: every manager's API refuses the calls of the control API with SAID (an election
    under way: ELECTING; too few managers on: NO_LEADER), or holds them (HELD: it has not noticed yet)."""
    lab.swarm.set_leader(None)
    _raft_of(lab.swarm)["refused"] = said


def elect(lab: FakeLab, name: str, at: float, heard: float = 4.0) -> None:
    """NAME takes office at AT: the managers answer again; its dispatcher marks every other Ready node unknown
    (node events at AT), and Ready again once their heartbeats come, HEARD seconds later."""
    lab.swarm.set_leader(name)
    _raft_of(lab.swarm)["refused"] = ""
    for entry in lab.swarm.nodes:
        other = entry["Description"]["Hostname"]
        if other != name and entry["Status"]["State"] == "ready":
            node_event(lab, at, other, "ready", "unknown")
            node_event(lab, at + heard, other, "unknown", "ready")


def force_new_cluster(lab: FakeLab, name: str, at: float) -> None:
    """`docker swarm init --force-new-cluster` on manager NAME at AT: the only manager in Raft, and its leader;
    services, tasks and nodes stay; the other managers keep their role, without a seat (no ManagerStatus)."""
    for entry in lab.swarm.nodes:
        if entry["Description"]["Hostname"] != name and entry["Spec"]["Role"] == "manager":
            entry.pop("ManagerStatus", None)
    lab.swarm.node(name)["ManagerStatus"] = {"Reachability": "reachable", "Addr": f"{lab[name].address}:2377"}
    lab.swarm.node(name)["UpdatedAt"] = stamp(at)
    elect(lab, name, at)


def power_on(lab: FakeLab, name: str, at: float, seated: bool = True) -> None:
    """`labkit node start NAME` at AT. A manager that lost its seat (`force_new_cluster`) waits for one: its engine
    answers, pending in swarm mode, Ready as a node, until SEATED: Reachable in Raft."""
    lab.start_node(name)
    lab[name].engine.local_state = "active" if seated else "pending"
    lab.mark_node(name, "ready", at)
    if seated:
        lab.swarm.node(name)["ManagerStatus"] = {"Reachability": "reachable", "Addr": f"{lab[name].address}:2377"}
