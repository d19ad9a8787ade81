"""Forming a swarm for people who skip ahead (`labkit up --swarm`).

The first lab teaches these very steps; this is the shortcut, done with the SDK.
"""

from __future__ import annotations

import docker.errors

from labkit.backends.base import Node, Report
from labkit.errors import LabkitError

SWARM_PORT = 2377


def form_swarm(nodes: list[Node], report: Report) -> None:
    """Init on the first manager, join the other managers and the workers. Idempotent."""
    managers = [n for n in nodes if n.role == "manager"]
    if not managers:
        raise LabkitError("The lab has no manager to init a swarm on.")
    first = managers[0]
    info = first.docker.info()["Swarm"]
    if info.get("LocalNodeState") != "active":
        report(f"docker swarm init on {first.name}")
        first.docker.swarm.init(advertise_addr=first.address, listen_addr=f"0.0.0.0:{SWARM_PORT}")
    elif not info.get("ControlAvailable"):
        raise LabkitError(
            f"{first.name} is in a swarm but not as a manager. Run `labkit down` and "
            "`labkit up --swarm` for a fresh one."
        )
    first.docker.swarm.reload()
    tokens = first.docker.swarm.attrs["JoinTokens"]
    for node in nodes:
        if node is first or node.docker.info()["Swarm"].get("LocalNodeState") == "active":
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
            raise LabkitError(f"{node.name} could not join the swarm: {exc.explanation}") from None
