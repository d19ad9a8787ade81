"""`labkit doctor`: what this machine can do for the labs, and what a gap means."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labkit import engine, images
from labkit.backends.dind import DindBackend
from labkit.cluster import Cluster
from labkit.errors import LabkitError


@dataclass(frozen=True)
class Finding:
    name: str
    level: str  # ok | warn | fail
    detail: str


def kernel_findings(proc: Path = Path("/proc"), sys: Path = Path("/sys")) -> list[Finding]:
    """Kernel features the labs use, read from /proc and /sys (no engine needed)."""
    found: list[Finding] = []
    filesystems = (proc / "filesystems").read_text() if (proc / "filesystems").exists() else ""
    found.append(
        Finding("overlay filesystem", "ok", "present (inner engines use overlay2)")
        if "overlay" in filesystems
        else Finding("overlay filesystem", "warn", "absent: inner engines fall back to the slow vfs driver")
    )
    vxlan = (sys / "module/vxlan").exists()
    found.append(
        Finding("vxlan", "ok", "loaded: overlay networks span nodes")
        if vxlan
        else Finding(
            "vxlan",
            "warn",
            "module not loaded yet: overlay networks need it (Docker loads it "
            "on first use where modules can be loaded)",
        )
    )
    ipvs = (proc / "sys/net/ipv4/vs").exists() or (sys / "module/ip_vs").exists()
    found.append(
        Finding("IPVS", "ok", "present: the routing mesh and service VIPs work")
        if ipvs
        else Finding(
            "IPVS",
            "warn",
            "absent: the routing mesh (ingress-published ports) and service "
            "virtual IPs do not work on this machine; use host-mode published ports "
            "and --endpoint-mode dnsrr here instead.",
        )
    )
    cgroup2 = (sys / "fs/cgroup/cgroup.controllers").exists()
    found.append(Finding("cgroups", "ok", "v2" if cgroup2 else "v1"))
    return found


def diagnose(cluster: Cluster) -> list[Finding]:
    """Everything doctor reports for CLUSTER's backend."""
    found = local_findings(cluster.backend) if isinstance(cluster.backend, DindBackend) else []
    found.append(Finding("backend", "ok", cluster.backend.name))
    nodes = cluster.nodes
    if nodes:
        answering = [n.name for n in nodes if n.engine_answers()]
        level = "ok" if len(answering) == len(nodes) else "fail"
        found.append(Finding("lab", level, f"{len(answering)} of {len(nodes)} node engines answer"))
    else:
        found.append(Finding("lab", "ok", f"lab '{cluster.lab}' is not running (`labkit up` starts it)"))
    if isinstance(cluster.backend, DindBackend):  # the nodes share this machine's kernel
        found += kernel_findings()
    return found


def local_findings(backend: DindBackend) -> list[Finding]:
    """The local engine, the images, and whether nodes run privileged or in the fallback mode."""
    try:
        host = engine.host_client()
        version = host.version()
    except LabkitError as exc:
        return [Finding("engine", "fail", str(exc))]
    found = [
        Finding(
            "engine",
            "ok",
            f"Docker {version.get('Version')} (API {version.get('ApiVersion')}), {host.info().get('Driver')} storage",
        )
    ]
    current = images.images_are_current(host)
    found.append(
        Finding(
            "images",
            "ok" if current else "warn",
            "node, alpine and nginx images are current"
            if current
            else "not built yet (or their recipe changed): `labkit up` builds them (about a minute)",
        )
    )
    mode = backend.privileged_mode()
    if mode is None and current:
        mode = f"{backend.probe_privileged()} (would be used by `labkit up`)"
    if mode is None:
        found.append(Finding("node mode", "warn", "unknown until the node image is built"))
    elif mode.startswith("privileged"):
        found.append(Finding("node mode", "ok", mode))
    else:
        found.append(
            Finding(
                "node mode",
                "ok",
                f"{mode}: --privileged is refused here, so nodes run with all "
                "capabilities but SYS_RESOURCE and writable cgroups",
            )
        )
    return found
