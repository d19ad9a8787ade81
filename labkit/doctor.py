"""`labkit doctor`: what this machine can do for the labs, and what a gap means.

Each backend reports its own findings (``Backend.findings()``); doctor adds the lab's nodes.
"""

from __future__ import annotations

from labkit.cluster import Cluster
from labkit.kernel import kernel_findings
from labkit.report import Finding

__all__ = ["Finding", "diagnose", "kernel_findings"]


def diagnose(cluster: Cluster) -> list[Finding]:
    """Everything doctor reports for CLUSTER's backend."""
    found = cluster.backend.findings()
    found.append(Finding("backend", "ok", cluster.backend.name))
    nodes = cluster.nodes
    if nodes:
        health = {n.name: n.health() for n in nodes}
        down = [f"{name} is {state}" for name, state in health.items() if state != "running"]
        level = "fail" if down else "ok"
        detail = f"{len(nodes) - len(down)} of {len(nodes)} node engines answer"
        if down:
            detail += f" ({', '.join(down)}: `labkit up` brings {'it' if len(down) == 1 else 'them'} back)"
        found.append(Finding("lab", level, detail))
    else:
        found.append(Finding("lab", "ok", f"lab '{cluster.lab}' is not running (`labkit up` starts it)"))
    return found
