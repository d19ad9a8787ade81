"""Every ``LABKIT_*`` variable, read into one object when a command, a notebook or
``labkit.cluster()`` starts (never at import), so a test or a notebook can change the
environment and get a fresh view.

>>> from labkit.settings import Settings
>>> Settings.from_env({"LABKIT_LAB": "course-2"}).lab
'course-2'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
SEAT_MEMORY = "3g"  # a seat's memory cap: its engine, its lab's nodes and JupyterLab (README: Seats)
SEAT_PIDS = 4096

# name: (what it sets, default as the README shows it)
VARIABLES: dict[str, tuple[str, str]] = {
    "LABKIT_LAB": ("the lab to act on (`--lab`)", "lab"),
    "LABKIT_BACKEND": ("the backend (`--backend`): dind or vagrant", "dind"),
    "LABKIT_STATE_DIR": ("where progress and answers are kept", "~/.local/share/labkit"),
    "LABKIT_RUN_DIR": ("where each lab's node sockets and resolver file live (and Vagrant's kept ssh-config)",
                       "/run/labkit (root), $XDG_RUNTIME_DIR/labkit, ~/.local/state/labkit/run"),
    "LABKIT_CACHE": ("where the image build keeps its work files", "/var/cache/labkit"),
    "LABKIT_DEBIAN_MIRROR": ("the Debian 12 mirror the node image is built from", "read from apt's sources"),
    "LABKIT_LABS": ("the folder of lab definitions", "labs/ in the project"),
    "LABKIT_NOTEBOOKS": ("the folder `labkit lab` serves", "notebooks/ in the project"),
    "LABKIT_VAGRANT_DIR": ("the folder holding the Vagrantfile", "the project"),
    "LABKIT_VAGRANT_PROVIDER": ("Vagrant's provider: docker (machines as containers, no VT-x needed), "
                                "virtualbox, libvirt", "Vagrant's default"),
    "LABKIT_STRICT": ("1: a failing step fails its notebook cell (the regression run)", "unset"),
    "LABKIT_ROOM_URL": ("in a hosted room's seat: the room service, reached with the seat's JupyterHub token "
                        "instead of `labkit room join`", "unset (set by the hub)"),
    # The hosted room (`make hub`, labkit.hosted):
    "LABKIT_HUB_PORT": ("where JupyterHub listens, on 127.0.0.1", "8000"),
    "LABKIT_HUB_ADMIN_TOKEN": ("the hub's admin service token, for `labkit hub prespawn`", "unset: no admin service"),
    "LABKIT_HUB_PASSWORD": ("one password for every user (JupyterHub's DummyAuthenticator: trials and tests only)",
                            "unset: set an authenticator in deploy/hub/jupyterhub_config.py"),
    "LABKIT_HUB_MODE": ("the seats' flags: privileged or fallback", "probed on the engine"),
    "LABKIT_HUB_MEMORY": ("memory cap per seat", SEAT_MEMORY),
    "LABKIT_HUB_PIDS": ("pids limit per seat", str(SEAT_PIDS)),
    "LABKIT_HUB_IDLE": ("seconds without activity before a seat is stopped (its work is kept)", "3600"),
}


@dataclass(frozen=True)
class Settings:
    lab: str | None  # None: the default lab (topology.lab_name validates it)
    backend: str
    state_dir: Path
    run_dir: Path
    cache_dir: Path
    debian_mirror: str | None
    labs_dir: Path
    notebooks_dir: Path
    vagrant_dir: Path
    vagrant_provider: str | None  # None: Vagrant chooses
    strict: bool
    room_url: str | None = None  # a hosted room's service (the seat's hub token identifies the learner)
    hub_token: str | None = None  # $JUPYTERHUB_API_TOKEN, in a seat JupyterHub spawned

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, euid: int | None = None) -> Settings:
        env = os.environ if environ is None else environ
        euid = os.geteuid() if euid is None else euid
        home = Path(env.get("HOME") or Path.home())
        return cls(
            lab=env.get("LABKIT_LAB") or None,
            backend=env.get("LABKIT_BACKEND") or "dind",
            state_dir=Path(env.get("LABKIT_STATE_DIR") or home / ".local/share/labkit"),
            run_dir=Path(env.get("LABKIT_RUN_DIR") or _run_dir(env, euid, home)),
            cache_dir=Path(env.get("LABKIT_CACHE") or "/var/cache/labkit"),
            debian_mirror=env.get("LABKIT_DEBIAN_MIRROR") or None,
            labs_dir=Path(env.get("LABKIT_LABS") or PROJECT / "labs"),
            notebooks_dir=Path(env.get("LABKIT_NOTEBOOKS") or PROJECT / "notebooks"),
            vagrant_dir=Path(env.get("LABKIT_VAGRANT_DIR") or PROJECT),
            vagrant_provider=env.get("LABKIT_VAGRANT_PROVIDER") or None,
            strict=env.get("LABKIT_STRICT", "") not in ("", "0"),
            room_url=env.get("LABKIT_ROOM_URL") or None,
            hub_token=env.get("JUPYTERHUB_API_TOKEN") or None,
        )


@dataclass(frozen=True)
class HubSettings:
    """The hosted room's settings (LABKIT_HUB_*), read when JupyterHub loads its config."""

    port: int
    admin_token: str | None
    password: str | None
    mode: str | None  # None: probed on the engine
    memory: str
    pids: int
    idle_seconds: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HubSettings:
        env = os.environ if environ is None else environ
        return cls(
            port=int(env.get("LABKIT_HUB_PORT") or 8000),
            admin_token=env.get("LABKIT_HUB_ADMIN_TOKEN") or None,
            password=env.get("LABKIT_HUB_PASSWORD") or None,
            mode=env.get("LABKIT_HUB_MODE") or None,
            memory=env.get("LABKIT_HUB_MEMORY") or SEAT_MEMORY,
            pids=int(env.get("LABKIT_HUB_PIDS") or SEAT_PIDS),
            idle_seconds=int(env.get("LABKIT_HUB_IDLE") or 3600),
        )


def _run_dir(env: Mapping[str, str], euid: int, home: Path) -> Path:
    """Runtime files private to the user: /run/labkit for root, else $XDG_RUNTIME_DIR/labkit, else state."""
    if euid == 0:
        return Path("/run/labkit")
    xdg = env.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg) and os.access(xdg, os.W_OK):
        return Path(xdg) / "labkit"
    return home / ".local/state/labkit/run"


def settings() -> Settings:
    """The settings as the environment says now."""
    return Settings.from_env()
