"""What a lab is made of: node names, roles, addresses, labels and resource names.

Pure logic, no Docker: every backend and command derives names from here, so a
lab is found again from its labels alone, from any shell, after any crash.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from labkit.errors import InvalidInput
from labkit.settings import settings

DEFAULT_LAB = "lab"
DEFAULT_MANAGERS = 1
DEFAULT_WORKERS = 2
MAX_MANAGERS = 9
MAX_WORKERS = 89

# Labels carried by everything labkit creates.
LABEL_LAB = "labkit.lab"  # the lab's name
LABEL_KIND = "labkit.kind"  # node | hub | network | volume
LABEL_NODE = "labkit.node"  # node name, on node containers and volumes
LABEL_ROLE = "labkit.role"  # manager | worker
LABEL_RECIPE = "labkit.recipe"  # content hash of an image's recipe
LABEL_CACHE = "labkit.cache"  # caches kept across `down` (images, registry data)

HUB_HOSTNAME = "labkit-hub"
REGISTRY_PORT = 5000
# The Vagrant machines' private network (inside VirtualBox's default host-only range); the docker
# provider's internal lab network has the same subnet, so every backend gives the same addresses.
VAGRANT_SUBNET = ipaddress.ip_network("192.168.56.0/24")
# The docker provider publishes each box's SSH port on a network of its own: link-local, so Swarm never
# takes it for a node's address (a box then has one address to advertise, as a dind node has).
VAGRANT_SSH_SUBNET = ipaddress.ip_network("169.254.56.0/24")
_NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,30}")


@dataclass(frozen=True)
class NodeSpec:
    """One node of a lab as planned: its name, role and index within the role."""

    name: str
    role: str  # "manager" or "worker"
    index: int

    @property
    def host_octet(self) -> int:
        """Last octet of the node's address: managers .11-.19, workers .21-.109."""
        return (10 if self.role == "manager" else 20) + self.index


@dataclass(frozen=True)
class Topology:
    managers: int = DEFAULT_MANAGERS
    workers: int = DEFAULT_WORKERS

    def __post_init__(self) -> None:
        if not 1 <= self.managers <= MAX_MANAGERS:
            raise InvalidInput(
                f"A swarm needs between 1 and {MAX_MANAGERS} managers, not {self.managers}. "
                "Try --managers 1 (or 3 for a fault-tolerant Raft quorum)."
            )
        if not 0 <= self.workers <= MAX_WORKERS:
            raise InvalidInput(f"Workers must be between 0 and {MAX_WORKERS}, not {self.workers}. Try --workers 2.")

    @property
    def nodes(self) -> list[NodeSpec]:
        return [NodeSpec(f"manager{i}", "manager", i) for i in range(1, self.managers + 1)] + [
            NodeSpec(f"worker{i}", "worker", i) for i in range(1, self.workers + 1)
        ]


def parse_node_name(name: str) -> NodeSpec:
    """The spec a node name stands for (manager3 -> manager, index 3)."""
    m = re.fullmatch(r"(manager|worker)([1-9][0-9]*)", name)
    if not m:
        raise InvalidInput(
            f"'{name}' is not a lab node name. Nodes are called manager1, manager2, ... and "
            "worker1, worker2, ...; `labkit status` lists them."
        )
    return NodeSpec(name, m.group(1), int(m.group(2)))


def lab_name(name: str | None = None) -> str:
    """The lab to act on: the argument, else $LABKIT_LAB, else the default."""
    name = name or settings().lab or DEFAULT_LAB
    if not _NAME_RE.fullmatch(name):
        raise InvalidInput(
            f"{name!r} is not a valid lab name (from --lab or $LABKIT_LAB): use up to 31 lower-case "
            "letters, digits and dashes, starting with a letter."
        )
    return name


@dataclass(frozen=True)
class Names:
    """Docker resource names of one lab. The default lab's nodes are named exactly
    like the nodes (so `docker exec -it manager1 sh` works); other labs prefix them."""

    lab: str

    def container(self, node: str) -> str:
        return node if self.lab == DEFAULT_LAB else f"{self.lab}-{node}"

    @property
    def network(self) -> str:
        return f"labkit-{self.lab}"

    @property
    def hub(self) -> str:
        return f"labkit-{self.lab}-hub"

    def volume(self, node: str) -> str:
        return f"labkit-{self.lab}-{node}-docker"

    def home(self, node: str) -> str:
        """The volume of NODE's /root: what the learner writes there is saved with a state, as its engine is."""
        return f"labkit-{self.lab}-{node}-home"

    def labels(self, kind: str, **extra: str) -> dict[str, str]:
        return {LABEL_LAB: self.lab, LABEL_KIND: kind, **extra}


@dataclass(frozen=True)
class AddressPlan:
    """Fixed addresses on the lab network: gateway .1, hub .2, nodes by role and index."""

    subnet: ipaddress.IPv4Network

    def __post_init__(self) -> None:
        if self.subnet.prefixlen > 24:
            raise InvalidInput(f"The lab network {self.subnet} is too small: use a /24 or larger.")

    def _host(self, octet: int) -> str:
        return str(self.subnet.network_address + octet)

    @property
    def gateway(self) -> str:
        return self._host(1)

    @property
    def hub(self) -> str:
        return self._host(2)

    def node(self, spec: NodeSpec) -> str:
        return self._host(spec.host_octet)

    def hosts(self, topology: Topology) -> dict[str, str]:
        """Name -> address of every node and the hub, for /etc/hosts and the lab DNS."""
        entries = {spec.name: self.node(spec) for spec in topology.nodes}
        entries[HUB_HOSTNAME] = self.hub
        return entries


# Candidate lab subnets: outside 10.0.0.0/8 (Swarm's default pool for overlay
# networks inside the lab) and outside the inner engines' default bridges.
CANDIDATE_SUBNETS = [ipaddress.ip_network(f"172.30.{i}.0/24") for i in range(10, 250)]


def pick_subnet(taken: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """The first candidate subnet that overlaps none already in use on the engine."""
    for candidate in CANDIDATE_SUBNETS:
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    raise InvalidInput(
        "No free subnet for the lab network in 172.30.0.0/16. Remove unused Docker networks "
        "(`docker network prune`) and try again."
    )
