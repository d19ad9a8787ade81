"""A hosted room on JupyterHub: each attendee logs in and gets a seat of their own (DockerSpawner).

``deploy/hub/jupyterhub_config.py`` calls :func:`configure`; ``make hub`` starts JupyterHub with it on
127.0.0.1:8000. What the room gets:

- one seat per user (``labkit/seat``), spawned by DockerSpawner with a nested engine's flags (the same as
  lab nodes: privileged where the engine allows it, else the fallback set), a memory cap and a pids limit;
- every seat on one bridge, ``labkit-seats``, with inter-container traffic off (no seat reaches another
  seat) and no masquerading (nothing leaves the machine); the hub reaches each seat at its address;
- a seat stops, but is kept with its work, after an hour without activity (jupyterhub-idle-culler):
  longer than a coffee break, so nobody's lab disappears at the break;
- an admin service token (``LABKIT_HUB_ADMIN_TOKEN``) for ``labkit hub prespawn``: the instructor starts
  every attendee's seat before the doors open.

Settings come from the environment (``LABKIT_HUB_*``, ``settings.HubSettings``), so one config file
serves tests, a laptop and a workshop host.
"""

from __future__ import annotations

import asyncio
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import docker
import docker.errors

from labkit import seat
from labkit.backends.dind import FALLBACK_HOST_CONFIG, UNMASKED_PATHS, DindBackend
from labkit.errors import BackendError
from labkit.report import Report
from labkit.settings import HubSettings

NETWORK = "labkit-seats"
ROOM = "room"  # the room service's name in the hub
ROOM_PORT = 8765
DEBIAN_NODE_MODULES = "/usr/share/nodejs"
SEAT_NOTEBOOKS = "/home/learner/notebooks"  # the learner's copy, in the seat (the Dockerfile's LABKIT_NOTEBOOKS)
def seat_host_config(mode: str, memory: str, pids: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """DockerSpawner's extra_host_config (create_host_config arguments) and the raw HostConfig fields that
    create_host_config cannot set (the unmasked /proc and /sys paths of the fallback mode), for a seat."""
    host: dict[str, Any] = {"mem_limit": memory, "pids_limit": pids, "init": True}
    host.update({"privileged": True} if mode == "privileged" else FALLBACK_HOST_CONFIG)
    return host, {} if mode == "privileged" else dict(UNMASKED_PATHS)


def prepare(client: docker.DockerClient) -> tuple[str, str]:
    """Before JupyterHub starts: the seats' network (made if missing) and the seats' mode, probed on the
    engine. Its gateway (the host, on that network) and the mode."""
    try:
        network = client.networks.get(NETWORK)
    except docker.errors.NotFound:
        network = client.networks.create(NETWORK, driver="bridge", labels={"labkit.kind": "seats"}, options={
            "com.docker.network.bridge.enable_icc": "false",  # no seat reaches another
            "com.docker.network.bridge.enable_ip_masquerade": "false",  # nothing leaves the machine
        })
        network.reload()
    gateway = network.attrs["IPAM"]["Config"][0]["Gateway"]
    return gateway, DindBackend("seats", client).probe_privileged()


def configure(c: Any, gateway: str, mode: str, hub: HubSettings | None = None) -> None:
    """Apply the room's settings (HUB, else the environment's) to the JupyterHub config object C: the hub's
    API on GATEWAY (the seats' network's, never every interface), seats in MODE (privileged or fallback)."""
    hub = hub or HubSettings.from_env()
    mode = hub.mode or mode

    c.JupyterHub.ip = "127.0.0.1"
    c.JupyterHub.port = hub.port
    c.JupyterHub.hub_ip = gateway  # the seats reach the hub's API there; nothing else does
    c.JupyterHub.cleanup_servers = False  # a restarted hub finds the seats still running
    c.JupyterHub.spawner_class = "docker"
    c.DockerSpawner.image = seat.SEAT_IMAGE
    c.DockerSpawner.cmd = ["jupyterhub-singleuser"]
    c.DockerSpawner.network_name = NETWORK
    c.DockerSpawner.use_internal_ip = True
    c.DockerSpawner.remove = False  # stopped (by the culler or the user) is kept: work and lab come back
    c.DockerSpawner.name_template = "labkit-seat-{username}"
    c.DockerSpawner.pull_policy = "never"
    c.DockerSpawner.start_timeout = 180
    c.DockerSpawner.http_timeout = 120
    host, raw = seat_host_config(mode, hub.memory, hub.pids)
    c.DockerSpawner.extra_host_config = host
    c.DockerSpawner.extra_create_kwargs = {"labels": {seat.LABEL_SEAT: "{username}", "labkit.kind": "seat"},
                                           **({"host_config": raw} if raw else {})}
    room_url = f"http://{gateway}:{ROOM_PORT}"  # the room service; its routes are under its hub prefix
    seats_room = f"{room_url}/services/{ROOM}"  # where seats post their checks, with their hub token
    c.DockerSpawner.environment = {"LABKIT_SEAT_NO_ROUTE": "1", "LABKIT_ROOM_URL": seats_room}
    # A seat's token may reach the room service (and nothing more than a server's usual token).
    c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server", f"access:services!service={ROOM}"]
    c.Spawner.notebook_dir = SEAT_NOTEBOOKS
    c.Spawner.default_url = "/lab/tree/start.ipynb"
    c.Spawner.args = ["--allow-root"]  # a seat runs its engine as root, and so its JupyterLab
    c.Spawner.pre_spawn_hook = engine_volume_hook

    if hub.password:
        c.JupyterHub.authenticator_class = "dummy"
        c.DummyAuthenticator.password = hub.password
        c.Authenticator.allow_all = True

    services: list[dict[str, Any]] = [
        {"name": "idle-culler", "command": [
            sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={hub.idle_seconds}", "--cull-every=60"]},
        # The room (labkit room serve --hub): its dashboard at /services/room/ through the hub, with the
        # instructor's URL in the hub's log; its data in room.db where the hub runs.
        {"name": ROOM, "url": room_url, "command": [sys.executable, "-m", "labkit", "room", "serve", "--hub",
                                                      "--db", "room.db"]},
    ]
    roles: list[dict[str, Any]] = [
        {"name": "idle-culler", "services": ["idle-culler"], "scopes": [
            "list:users", "read:users:activity", "read:servers", "delete:servers"]},
        {"name": "user", "scopes": ["self", f"access:services!service={ROOM}"]},  # every user may post there
    ]
    if hub.admin_token:
        services.append({"name": "labkit-admin", "api_token": hub.admin_token})
        roles.append({"name": "labkit-admin", "services": ["labkit-admin"],
                      "scopes": ["admin:users", "admin:servers", "tokens"]})
    c.JupyterHub.services = services
    c.JupyterHub.load_roles = roles
    # Debian's configurable-http-proxy finds its modules in /usr/share/nodejs, which Debian's node
    # searches by itself; another node (NodeSource's, say) needs to be told.
    if Path(DEBIAN_NODE_MODULES).is_dir():
        c.ConfigurableHTTPProxy.command = ["env", f"NODE_PATH={DEBIAN_NODE_MODULES}", "configurable-http-proxy"]


async def engine_volume_hook(spawner: Any) -> None:
    """Before a seat spawns: its engine's volume, filled from the seat image's template with hard links
    (a second, where Docker's own copy takes several), or kept from its last run. Where the hub cannot
    fill it (not root beside the engine), the seat gets Docker's copy as usual."""
    def fill() -> str | None:
        labels = {seat.LABEL_SEAT: spawner.user.name, "labkit.kind": "seat"}
        return seat.engine_volume(docker.from_env(), spawner.object_name, labels)

    volume = await asyncio.to_thread(fill)
    if volume:
        spawner.volumes = {volume: seat.ENGINE_DIR}


def prespawn(url: str, token: str, users: list[str], report: Report) -> list[str]:
    """Create USERS on the hub at URL (with the admin service's TOKEN) and start each one's seat, before the
    doors open. The users whose seat is starting or running."""
    started = []
    for name in users:
        _hub_api(url, token, "POST", f"users/{name}", ok=(201, 409))  # 409: the user exists already
        status = _hub_api(url, token, "POST", f"users/{name}/server", ok=(201, 202, 400))  # 400: running
        report(f"{name}: {'already running' if status == 400 else 'starting'}")
        started.append(name)
    return started


def _hub_api(url: str, token: str, method: str, path: str, ok: tuple[int, ...]) -> int:
    request = urllib.request.Request(f"{url.rstrip('/')}/hub/api/{path}", method=method, data=b"",
                                     headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        raise BackendError(f"JupyterHub at {url} does not answer ({exc}). Is `make hub` running?") from exc
    if status not in ok:
        raise BackendError(f"JupyterHub refused {method} {path} ({status}): check LABKIT_HUB_ADMIN_TOKEN.")
    return status
