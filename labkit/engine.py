"""The local Docker Engine that hosts the lab: connect to it, or install and start it.

Only an engine that is not running is ever started; a running one is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import docker
import docker.errors

from labkit.client import DockerClient
from labkit.errors import EngineUnavailable
from labkit.report import Report

DOCKERD_LOG = Path("/var/log/labkit-dockerd.log")
HOST_PACKAGES = {"docker.io": "dockerd", "debootstrap": "debootstrap"}  # package: the command it brings
PID_FILES = {  # left behind by a killed engine: the file, and the program whose pid it should hold
    Path("/var/run/docker.pid"): "dockerd",
    Path("/var/run/docker/containerd/containerd.pid"): "containerd",
}
START_TIMEOUT = 120  # seconds; dockerd restoring many containers and networks can be slow


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
    for stale in stale_pid_files(PID_FILES):
        report(f"Removing {stale}: the process it names is gone or is no longer {PID_FILES[stale]}")
        stale.unlink(missing_ok=True)
    report(f"Starting dockerd in the background (log: {DOCKERD_LOG})")
    with DOCKERD_LOG.open("ab") as log:
        start = log.tell()
        dockerd = subprocess.Popen(["dockerd"], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if engine_running():
            return host_client()
        if dockerd.poll() is not None:
            raise EngineUnavailable(f"dockerd stopped as it started (exit code {dockerd.returncode}): "
                                    f"{_last_line(DOCKERD_LOG, start)} See {DOCKERD_LOG}.")
        time.sleep(0.3)
    raise EngineUnavailable(f"dockerd did not answer within {START_TIMEOUT} s; its log's last line: "
                            f"{_last_line(DOCKERD_LOG, start)} See {DOCKERD_LOG}.")


def stale_pid_files(files: Mapping[Path, str], proc: Path = Path("/proc")) -> list[Path]:
    """The pid files whose process is gone or is now another program.

    An engine that was killed leaves them behind. After the machine restarts, the pid can belong to
    anything: dockerd then refuses to start, or waits on a containerd that is not there and gives up.
    """
    stale = []
    for path, program in files.items():
        try:
            pid = path.read_text().strip()
        except OSError:
            continue
        try:
            alive_as = (proc / pid / "comm").read_text().strip() if pid.isdigit() else ""
        except OSError:
            alive_as = ""
        if alive_as != program:
            stale.append(path)
    return stale


def _last_line(log: Path, start: int) -> str:
    """The last line this start wrote to the log, or a note that there is none."""
    try:
        with log.open("rb") as f:
            f.seek(start)
            lines = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)."
    return lines[-1][-300:] if lines else "(nothing written)."
