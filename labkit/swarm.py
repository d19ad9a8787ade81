"""Swarm facts several layers need, in one place: what a node's engine says about its swarm,
the learner's ping service, and forming a swarm for people who skip ahead (`labkit up --swarm`).

Everything here talks to docker SDK clients only; it knows no backend.
"""

from __future__ import annotations

from typing import Any, Protocol

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container

from labkit.errors import BackendError, LabNotRunning
from labkit.report import Report

SWARM_PORT = 2377
SERVICE_LABEL = "com.docker.swarm.service.name"  # on every task container: its service's name


class SwarmNode(Protocol):
    """What forming a swarm needs of a node (every backend's Node has it)."""

    name: str
    role: str
    address: str

    @property
    def docker(self) -> docker.DockerClient: ...


def local_state(client: docker.DockerClient) -> dict[str, Any]:
    """The engine's own view of its swarm: LocalNodeState, NodeID, ControlAvailable, Cluster, ..."""
    return dict(client.info().get("Swarm") or {})


def swarm_state(client: docker.DockerClient) -> str:
    """inactive, pending, error, worker, manager or leader, as the engine itself tells (error too when a
    CLIENT with a short timeout gets no answer: a manager without a leader holds `docker info`)."""
    try:
        swarm = local_state(client)
        state = str(swarm.get("LocalNodeState", "inactive"))
        if state != "active":
            return state
        if not swarm.get("ControlAvailable"):
            return "worker"
        node = client.api.inspect_node(swarm.get("NodeID"))
        return "leader" if node.get("ManagerStatus", {}).get("Leader") else "manager"
    except (docker.errors.DockerException, requests.exceptions.Timeout):
        return "error"


def task_containers(client: docker.DockerClient, service: str | None = None,
                    stopped: bool = False) -> list[Container]:
    """This engine's task containers (of SERVICE, or of every service; STOPPED: exited ones too).
    A container removed while the list is read is left out: tasks come and go as Swarm converges."""
    label = SERVICE_LABEL if service is None else f"{SERVICE_LABEL}={service}"
    return client.containers.list(all=stopped, filters={"label": label}, ignore_removed=True)


def leader_hostname(api: docker.APIClient) -> str:
    """The hostname of the swarm's leader, as a manager sees it ('' when there is none)."""
    for n in api.nodes():
        if n.get("ManagerStatus", {}).get("Leader"):
            return str(n["Description"]["Hostname"])
    return ""


def ping_services(api: docker.APIClient) -> list[dict[str, Any]]:
    """Services that run `alpine ping ...`, whatever they are called."""
    found = []
    for service in api.services():
        spec = service["Spec"]["TaskTemplate"]["ContainerSpec"]
        argv = [*spec.get("Command", []), *spec.get("Args", [])]
        if spec.get("Image", "").split("@")[0].split(":")[0] in ("alpine", "library/alpine") and argv[:1] == ["ping"]:
            found.append(service)
    return found


def form_swarm(nodes: list[Any], report: Report) -> None:
    """Init on the first manager, join the other managers and the workers. Idempotent.
    NODES: SwarmNode-like objects (a cluster's nodes)."""
    managers = [n for n in nodes if n.role == "manager"]
    if not managers:
        raise LabNotRunning("The lab has no manager to init a swarm on. Start it with `labkit up`.")
    first = managers[0]
    info = local_state(first.docker)
    if info.get("LocalNodeState") != "active":
        report(f"docker swarm init on {first.name}")
        first.docker.swarm.init(advertise_addr=first.address, listen_addr=f"0.0.0.0:{SWARM_PORT}")
    elif not info.get("ControlAvailable"):
        raise BackendError(
            f"{first.name} is in a swarm but not as a manager. Run `labkit down` and "
            "`labkit up --swarm` for a fresh one."
        )
    first.docker.swarm.reload()
    tokens = first.docker.swarm.attrs["JoinTokens"]
    for node in nodes:
        if node is first or local_state(node.docker).get("LocalNodeState") == "active":
            continue
        report(f"docker swarm join on {node.name} as a {node.role}")
        try:
            node.docker.swarm.join(
                remote_addrs=[f"{first.address}:{SWARM_PORT}"],
                join_token=tokens["Manager" if node.role == "manager" else "Worker"],
                advertise_addr=node.address,
                listen_addr=f"0.0.0.0:{SWARM_PORT}",
            )
        except docker.errors.APIError as exc:
            raise BackendError(f"{node.name} could not join the swarm: {exc.explanation}") from None
