"""The hosted room's JupyterHub settings (labkit.hosted.configure), on a plain traitlets Config: what a
room of attendees relies on, checked without starting a hub."""

from __future__ import annotations

from traitlets.config import Config

from labkit import hosted, seat
from labkit.settings import HubSettings


def configured(mode: str = "fallback", **env: str) -> Config:
    c = Config()
    hosted.configure(c, "172.31.0.1", mode, HubSettings.from_env(env))
    return c


def test_each_user_gets_a_seat_on_the_seats_network_with_a_memory_cap_and_a_pids_limit() -> None:
    c = configured(LABKIT_HUB_MEMORY="2g", LABKIT_HUB_PIDS="1000")
    assert c.JupyterHub.spawner_class == "docker"
    assert c.DockerSpawner.image == seat.SEAT_IMAGE and c.DockerSpawner.pull_policy == "never"
    assert c.DockerSpawner.network_name == hosted.NETWORK and c.DockerSpawner.use_internal_ip
    host = c.DockerSpawner.extra_host_config
    assert (host["mem_limit"], host["pids_limit"]) == ("2g", 1000)
    assert c.DockerSpawner.environment["LABKIT_SEAT_NO_ROUTE"] == "1"  # no route out of the machine
    assert c.DockerSpawner.extra_create_kwargs["labels"][seat.LABEL_SEAT] == "{username}"  # `labkit seat ls`
    assert c.Spawner.default_url == "/lab/tree/start.ipynb"


def test_the_seats_flags_follow_the_engines_mode() -> None:
    fallback = configured("fallback").DockerSpawner
    assert "SYS_RESOURCE" in fallback.extra_host_config["cap_drop"]
    assert "privileged" not in fallback.extra_host_config
    assert fallback.extra_create_kwargs["host_config"] == {"MaskedPaths": [], "ReadonlyPaths": []}
    privileged = configured("privileged").DockerSpawner
    assert privileged.extra_host_config["privileged"] is True
    assert "host_config" not in privileged.extra_create_kwargs
    assert configured("privileged", LABKIT_HUB_MODE="fallback").DockerSpawner.extra_host_config["cap_add"] == ["ALL"]


def test_the_hub_listens_on_loopback_and_its_api_on_the_seats_gateway_only() -> None:
    c = configured(LABKIT_HUB_PORT="8123")
    assert (c.JupyterHub.ip, c.JupyterHub.port) == ("127.0.0.1", 8123)
    assert c.JupyterHub.hub_ip == "172.31.0.1"


def test_idle_seats_are_culled_after_more_than_a_coffee_break_and_kept() -> None:
    c = configured()
    culler = next(s for s in c.JupyterHub.services if s["name"] == "idle-culler")
    timeout = int(next(a for a in culler["command"] if a.startswith("--timeout=")).split("=")[1])
    assert timeout >= 45 * 60
    assert c.DockerSpawner.remove is False  # culled means stopped: the learner's work and lab stay
    role = next(r for r in c.JupyterHub.load_roles if r["name"] == "idle-culler")
    assert "delete:servers" in role["scopes"]
    assert int(next(a for a in next(s for s in configured(LABKIT_HUB_IDLE="5400").JupyterHub.services
                                    if s["name"] == "idle-culler")["command"] if a.startswith("--timeout="))
               .split("=")[1]) == 5400


def test_the_admin_service_and_the_shared_password_exist_only_when_set() -> None:
    bare = configured()
    assert [s["name"] for s in bare.JupyterHub.services] == ["idle-culler", hosted.ROOM]
    assert "authenticator_class" not in bare.JupyterHub
    c = configured(LABKIT_HUB_ADMIN_TOKEN="t0k", LABKIT_HUB_PASSWORD="pw")
    admin = next(s for s in c.JupyterHub.services if s["name"] == "labkit-admin")
    assert admin["api_token"] == "t0k"
    assert {"admin:users", "admin:servers"} <= set(next(r for r in c.JupyterHub.load_roles
                                                        if r["name"] == "labkit-admin")["scopes"])
    assert c.JupyterHub.authenticator_class == "dummy" and c.DummyAuthenticator.password == "pw"


def test_the_hub_opens_the_notebooks_where_the_seat_keeps_them() -> None:
    dockerfile = (seat.SEAT_RECIPES / "Dockerfile").read_text()
    assert f"LABKIT_NOTEBOOKS={hosted.SEAT_NOTEBOOKS} " in dockerfile
    c = configured()
    assert c.Spawner.notebook_dir == hosted.SEAT_NOTEBOOKS and c.Spawner.default_url == "/lab/tree/start.ipynb"


def test_the_room_runs_as_a_hub_service_and_every_seat_may_post_to_it() -> None:
    c = configured()
    room = next(s for s in c.JupyterHub.services if s["name"] == hosted.ROOM)
    assert room["url"] == f"http://172.31.0.1:{hosted.ROOM_PORT}"  # on the seats' gateway, like the hub's API
    assert room["command"][-4:] == ["serve", "--hub", "--db", "room.db"]
    assert c.DockerSpawner.environment["LABKIT_ROOM_URL"] == room["url"] + "/services/room"  # its hub prefix
    assert f"access:services!service={hosted.ROOM}" in c.Spawner.server_token_scopes
    user = next(r for r in c.JupyterHub.load_roles if r["name"] == "user")
    assert "self" in user["scopes"] and f"access:services!service={hosted.ROOM}" in user["scopes"]
