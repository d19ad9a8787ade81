"""Kernel features the labs use, read from /proc and /sys of this machine (no engine needed).
Dind nodes share this kernel, so these facts hold inside every node too."""

from __future__ import annotations

from pathlib import Path

from labkit.report import Finding


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
            "virtual IPs do not work on this machine; host-mode published ports "
            "(`--publish mode=host`) and `--endpoint-mode dnsrr` do.",
        )
    )
    cgroup2 = (sys / "fs/cgroup/cgroup.controllers").exists()
    found.append(Finding("cgroups", "ok", "v2" if cgroup2 else "v1"))
    return found
