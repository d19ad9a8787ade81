"""{fields} in lab commands: `{manager1.address}`, `{worker_token}`, `{service}`, ...

Filled from the live cluster wherever a command is shown or run (the CLI, the
notebooks' %%node cells, solutions). Only single-brace names are fields, so a
Go template such as `--format '{{.Name}}'` passes through untouched.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from labkit.errors import InvalidInput
from labkit.progress import Progress
from labkit.swarm import ping_services, task_containers
from labkit.topology import parse_node_name

if TYPE_CHECKING:
    from labkit.cluster import Cluster

FIELD_RE = re.compile(r"(?<!\{)\{([a-z_][a-z0-9_]*(?:\.[a-z_]+)?)\}(?!\})")
NAMED = {
    "worker_token": "the worker join token",
    "manager_token": "the manager join token",
    "service": "the name of your ping service",
    "task_container": "a container of your service on the node the command runs on",
    "unlock_key": "the unlock key autolock printed",
}
UNLOCK_KEYS = "unlock_keys"  # kept by labkit (labkit/progress.py) for the autolock lab: each key seen, newest last
NODE_ATTRS = ("address", "name")


def fields_in(text: str) -> list[str]:
    return FIELD_RE.findall(text)


def problem(name: str) -> str | None:
    """Why NAME is not a field, or None when it is one."""
    if name in NAMED:
        return None
    root, _, attr = name.partition(".")
    if attr in NODE_ATTRS:
        try:
            parse_node_name(root)
            return None
        except InvalidInput:
            return f"'{root}' is not a node name"
    return (f"unknown field {{{name}}}; use {{NODE.address}}, {{NODE.name}} or "
            + ", ".join(f"{{{n}}}" for n in NAMED))


def render(text: str, cluster: Cluster, node: str | None = None) -> str:
    """TEXT with its fields filled from the live cluster (NODE: where the command runs)."""
    cache: dict[str, str] = {}

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in cache:
            cache[name] = _value(name, cluster, node)
        return cache[name]

    return FIELD_RE.sub(value, text)


def _value(name: str, cluster: Cluster, node: str | None) -> str:
    getters: dict[str, Callable[[], str | None]] = {
        "worker_token": lambda: _token(cluster, "Worker"),
        "manager_token": lambda: _token(cluster, "Manager"),
        "service": lambda: _service(cluster),
        "task_container": lambda: _task_container(cluster, node),
        "unlock_key": lambda: _unlock_key(cluster),
    }
    if name in getters:
        try:
            found = getters[name]()
        except Exception:  # a command must still be shown when the cluster cannot tell
            found = None
        return found or f"<{NAMED[name]}>"
    root, _, attr = name.partition(".")
    for n in cluster.nodes:
        if n.name == root:
            return n.address if attr == "address" else n.name
    return f"<{root} {attr}>"


def _token(cluster: Cluster, role: str) -> str | None:
    managers = cluster.managers
    return str(managers[0].docker.swarm.attrs["JoinTokens"][role]) if managers else None


def _service(cluster: Cluster) -> str | None:
    managers = cluster.managers
    if not managers or managers[0].docker.info()["Swarm"].get("LocalNodeState") != "active":
        return None
    services = ping_services(managers[0].docker.api)
    return services[0]["Spec"]["Name"] if len(services) == 1 else None


def _task_container(cluster: Cluster, node: str | None) -> str | None:
    service = _service(cluster)
    if service is None or node is None:
        return None
    found = task_containers(cluster[node].docker, service)
    return found[0].name if found else None


def _unlock_key(cluster: Cluster) -> str | None:
    """The swarm's unlock key: from the first manager while it is unlocked, else the one labkit kept on this
    computer (a locked manager cannot tell it, and the key must not sit on its disk)."""
    managers = cluster.managers
    if managers:
        try:
            key = managers[0].docker.api.get_unlock_key().get("UnlockKey")
            if key:
                return str(key)
        except Exception:  # locked, or no swarm: the kept key, if any
            pass
    keys = Progress(cluster.lab).kept(UNLOCK_KEYS)
    return str(keys[-1]) if isinstance(keys, list) and keys else None
