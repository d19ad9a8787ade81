"""The local Docker Engine that hosts the lab: connect to it, or install and start it.

Only an engine that is not running is ever started; a running one is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import docker
import docker.errors

from labkit.client import DockerClient
from labkit.errors import EngineUnavailable
from labkit.report import Report

DOCKERD_LOG = Path("/var/log/labkit-dockerd.log")
HOST_PACKAGES = {"docker.io": "dockerd", "debootstrap": "debootstrap"}  # package: the command it brings


def connect(base_url: str | None = None, timeout: int = 60) -> docker.DockerClient:
    """A docker SDK client that speaks whatever API version the engine has (labkit.client's)."""
    if base_url is None:
        return DockerClient.from_env(version="auto", timeout=timeout)
    return DockerClient(base_url=base_url, version="auto", timeout=timeout)


def host_client() -> docker.DockerClient:
    """The engine labkit creates nodes on, or a one-line error saying what to do."""
    try:
        client = connect()
        client.ping()
        return client
    except docker.errors.DockerException as exc:
        raise EngineUnavailable(f"No Docker engine answers ({_short(exc)}). {_advice()}") from None


def _short(exc: Exception) -> str:
    text = str(exc).split("\n")[0]
    if "FileNotFoundError" in text or "No such file" in text:
        return "no socket at /var/run/docker.sock"
    if "Permission denied" in text or "PermissionError" in text:
        return "permission denied on the Docker socket"
    return text[:160]


def _advice() -> str:
    if not shutil.which("dockerd"):
        return (
            "Install Docker Engine (Debian/Ubuntu: `sudo apt-get install docker.io`) and start it, "
            "or run `sudo labkit setup`, which does both on Debian and Ubuntu."
        )
    if os.geteuid() != 0:
        return "Start the engine, and make sure your user may use it (the 'docker' group), then retry."
    return "Start it (`dockerd &` where there is no systemd) or run `labkit setup`, then retry."


def engine_running() -> bool:
    try:
        connect(timeout=5).ping()
        return True
    except docker.errors.DockerException:
        return False


def dockerd_process_exists() -> bool:
    """True when some dockerd runs on this machine, answering or not."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().strip() == "dockerd":
                    return True
            except OSError:
                continue
    return False


def ensure_engine(report: Report = print, install: bool = True) -> docker.DockerClient:
    """Make sure a local engine answers: install docker.io with apt and start dockerd
    in the background when none runs (Debian/Ubuntu, as root, no systemd needed)."""
    if engine_running():
        return host_client()
    if dockerd_process_exists():
        raise EngineUnavailable(
            "A dockerd process runs but does not answer on /var/run/docker.sock. "
            f"Look at its log (maybe {DOCKERD_LOG}); labkit does not touch a running engine."
        )
    missing = [p for p, exe in zip(HOST_PACKAGES, ["dockerd", "debootstrap"], strict=False) if not shutil.which(exe)]
    if missing:
        if not install or os.geteuid() != 0 or not shutil.which("apt-get"):
            raise EngineUnavailable(f"Missing {', '.join(missing)}. {_advice()}")
        report(f"Installing {' '.join(missing)} with apt")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise EngineUnavailable(f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-300:]}")
    if os.geteuid() != 0:
        raise EngineUnavailable(f"No Docker engine runs. {_advice()}")
    report(f"Starting dockerd in the background (log: {DOCKERD_LOG})")
    with DOCKERD_LOG.open("ab") as log:
        subprocess.Popen(["dockerd"], stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if engine_running():
            return host_client()
        time.sleep(0.3)
    raise EngineUnavailable(f"dockerd did not answer within 60 s; see {DOCKERD_LOG}.")
