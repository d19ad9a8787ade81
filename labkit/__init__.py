"""labkit: learn Docker Swarm mode by doing it, on a real multi-node swarm.

import labkit
lab = labkit.cluster()          # the running lab (``labkit up`` starts one)
lab["manager1"].run("docker info")
lab["worker1"].docker.containers.list()
"""

from __future__ import annotations

from labkit import errors
from labkit.backends.base import Node, RunResult
from labkit.cluster import Cluster, cluster
from labkit.errors import LabkitError

__version__ = "0.1.0"
__all__ = ["Cluster", "LabkitError", "Node", "RunResult", "cluster", "errors"]
