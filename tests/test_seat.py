"""Seats for real: the labkit/seat image built here with no network, two seats side by side on this engine,
each with its own engine, lab and JupyterLab, and neither able to reach the other or the host's engine;
then a hosted room: JupyterHub started as `make hub` starts it (deploy/hub/jupyterhub_config.py), two
users' seats started by `labkit hub prespawn`, each user's JupyterLab reached through the hub's proxy
with that user's token, and a check passing in each user's own lab. One module, so that one worker
builds the seat image once."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit import engine, engine_state, hosted, seat
from labkit.settings import PROJECT
from tests.conftest import labkit_cli

pytestmark = [pytest.mark.engine, pytest.mark.root]
SEATS = ("ci-seat-a", "ci-seat-b")


def in_seat(name: str, *cmd: str) -> tuple[int, str]:
    """Run CMD in seat NAME's container; its exit code and output."""
    done = engine.connect().containers.get(seat.container_name(name)).exec_run(list(cmd))
    return done.exit_code, done.output.decode(errors="replace")


@pytest.fixture(scope="module")
def seats(host) -> Iterator[dict[str, seat.Seat]]:
    seat.ensure_seat_image(host, lambda _: None)
    for name in SEATS:
        if name in {s.name for s in seat.seats(host)}:
            seat.remove_seat(host, name)
    try:
        for name in SEATS:
            seat.run_seat(host, name, None, lambda _: None)
        yield {name: seat.wait_ready(host, name) for name in SEATS}
    finally:
        for name in SEATS:
            if name in {s.name for s in seat.seats(host)}:
                seat.remove_seat(host, name)


@pytest.mark.seat
def test_each_seat_has_its_lab_up_and_the_first_check_passes_there(seats: dict[str, seat.Seat]) -> None:
    for name in SEATS:
        code, out = in_seat(name, "labkit", "status", "--json")
        assert code == 0, out
        nodes = {n["name"]: n for n in json.loads(out)["nodes"]}
        assert sorted(nodes) == ["manager1", "worker1", "worker2"], out
        code, out = in_seat(name, "labkit", "check", "swarm-init:init")
        assert code != 0 and "docker swarm init" in out, out  # a fresh lab: the first step is still to do
        code, out = in_seat(name, "labkit", "solve", "swarm-init:init")
        assert code == 0 and "PASS swarm-init:init" in out, out
        code, out = in_seat(name, "labkit", "check", "swarm-init:init")
        assert code == 0 and "PASS swarm-init:init" in out, out


@pytest.mark.seat
def test_seats_share_the_image_layers_of_one_template_and_never_write_them(host, seats: dict[str, seat.Seat]) -> None:
    template = seat.engine_template(host)
    assert template is not None  # root, beside the engine: seats are filled from the template
    done = template / seat.TEMPLATE_DONE
    some_layer_file = next(p for p in (template / engine_state.LAYERS).glob("*/diff/**/*") if p.is_file())
    for name in SEATS:
        code, out = in_seat(name, "labkit", "solve", "swarm-init:init")  # the seat's engine and lab at work
        assert code == 0, out
        mount = next(m for m in host.containers.get(seat.container_name(name)).attrs["Mounts"]
                     if m["Destination"] == seat.ENGINE_DIR)
        own = Path(mount["Source"])
        assert own != template
        shared = own / some_layer_file.relative_to(template)
        assert shared.stat().st_ino == some_layer_file.stat().st_ino  # hard-linked, not copied
        kv = own / "network" / "files" / "local-kv.db"  # a database written in place: the seat's own copy
        assert kv.stat().st_ino != (template / "network" / "files" / "local-kv.db").stat().st_ino
    changed = [str(p) for p in template.rglob("*") if p.lstat().st_mtime > done.stat().st_mtime]
    assert not changed, changed


@pytest.mark.seat
def test_jupyterlab_answers_on_127_0_0_1_with_the_token_only(seats: dict[str, seat.Seat]) -> None:
    for s in seats.values():
        with urllib.request.urlopen(f"http://127.0.0.1:{s.port}/api/contents/start.ipynb?token={s.token}") as r:
            assert json.load(r)["name"] == "start.ipynb"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{s.port}/api/contents/start.ipynb")
        assert refused.value.code == 403
        ports = engine.connect().containers.get(seat.container_name(s.name)).attrs["NetworkSettings"]["Ports"]
        assert {b["HostIp"] for b in ports[f"{seat.PORT}/tcp"]} == {"127.0.0.1"}


@pytest.mark.seat
def test_a_seat_reaches_neither_another_seat_nor_the_hosts_engine(host, seats: dict[str, seat.Seat]) -> None:
    a, b = SEATS
    b_address = network_of(host, b)["IPAddress"]
    a_gateway = network_of(host, a)["Gateway"]  # the host, as seat A sees it
    # B's JupyterLab: at B's own address, and at the host's side of A's network (B publishes on 127.0.0.1 only).
    for address, port in ((b_address, seat.PORT), (a_gateway, seats[b].port)):
        code, out = in_seat(a, "wget", "-q", "-T", "3", "-O-", f"http://{address}:{port}/api/status")
        assert code != 0, f"seat {a} reached {address}:{port}: {out}"
    code, out = in_seat(a, "ip", "route")
    assert "default" not in out, out  # no route out of the machine
    # A's docker command reaches A's own engine: its containers are A's lab, none of the host's.
    code, names = in_seat(a, "docker", "ps", "-a", "--format", "{{.ID}}")
    assert code == 0 and names.split(), names
    host_ids = {c.id[:12] for c in host.containers.list(all=True)}
    assert not set(names.split()) & host_ids, names


def network_of(host, name: str) -> dict:
    return next(iter(host.containers.get(seat.container_name(name)).attrs["NetworkSettings"]["Networks"].values()))


@pytest.mark.seat
def test_seat_ls_lists_each_seat_ready_with_its_url(host, seats: dict[str, seat.Seat]) -> None:
    listed = {s.name: s for s in seat.seats(host)}
    for name in SEATS:
        assert listed[name].ready and listed[name].url == seats[name].url


@pytest.mark.seat
def test_seat_rm_leaves_no_container_network_or_volume(host, seats: dict[str, seat.Seat]) -> None:
    name = SEATS[1]
    volumes = [m["Name"] for m in host.containers.get(seat.container_name(name)).attrs["Mounts"]
               if m["Type"] == "volume"]
    assert volumes  # the seat's engine keeps its images and lab in a volume of its own
    seat.remove_seat(host, name)
    assert name not in {s.name for s in seat.seats(host)}
    assert not host.networks.list(filters={"label": f"{seat.LABEL_SEAT}={name}"})
    left = {v.name for v in host.volumes.list()}
    assert not set(volumes) & left


# ------------------------------------------------------------------ a hosted room

USERS = ("ciada", "cibob")  # no dash: DockerSpawner escapes it (ci-ada becomes ci-2dada)
CONFIG = PROJECT / "deploy" / "hub" / "jupyterhub_config.py"


def api(url: str, token: str, path: str, method: str = "GET", scheme: str = "token") -> tuple[int, dict]:
    """JupyterHub's API (SCHEME token), or the room's through the hub's proxy (SCHEME Bearer)."""
    request = urllib.request.Request(f"{url}{path}", method=method, data=b"" if method == "POST" else None,
                                     headers={"Authorization": f"{scheme} {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = answer.read()
            return answer.status, json.loads(body) if body else {}
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    except urllib.error.URLError:
        return 0, {}  # not listening (yet)


def remove_seats(host) -> None:
    for s in seat.seats(host):
        if s.name in USERS:
            seat.remove_seat(host, s.name)


@pytest.fixture(scope="module")
def hub(host, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    if not shutil.which("configurable-http-proxy"):
        pytest.fail("configurable-http-proxy is missing: `make hub-deps` installs Debian's.")
    seat.ensure_seat_image(host, lambda _: None)
    remove_seats(host)
    workdir = tmp_path_factory.mktemp("hub")
    port, token = seat.free_port(), secrets.token_hex(24)
    env = {**os.environ, "LABKIT_HUB_PORT": str(port), "LABKIT_HUB_ADMIN_TOKEN": token,
           "LABKIT_HUB_PASSWORD": secrets.token_hex(8)}
    log = (workdir / "hub.log").open("w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "jupyterhub"), "-f", str(CONFIG)], cwd=workdir,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while api(url, token, "/hub/api/")[0] != 200:
            assert proc.poll() is None and time.monotonic() < deadline, (workdir / "hub.log").read_text()[-3000:]
            time.sleep(0.5)
        yield url, token, workdir
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        remove_seats(host)


@pytest.mark.hub
def test_prespawned_users_open_their_start_notebook_through_the_hub_and_a_check_passes(host, hub, tmp_path,
                                                                                     monkeypatch) -> None:
    url, token, workdir = hub
    monkeypatch.setenv("LABKIT_HUB_ADMIN_TOKEN", token)  # as the instructor's shell has it
    roster = tmp_path / "users.txt"
    roster.write_text("# the room\n" + "\n".join(USERS) + "\n")
    done = labkit_cli("hub", "prespawn", str(roster), "--url", url, lab=None)
    assert done.returncode == 0 and f"{len(USERS)} seats" in done.stdout, done.stdout + done.stderr
    deadline = time.monotonic() + 240
    for user in USERS:
        while not api(url, token, f"/hub/api/users/{user}")[1].get("servers", {}).get("", {}).get("ready"):
            assert time.monotonic() < deadline, api(url, token, f"/hub/api/users/{user}")
            time.sleep(1)
    for user in USERS:
        status, made = api(url, token, f"/hub/api/users/{user}/tokens", "POST")
        assert status == 201, made
        status, notebook = api(url, made["token"], f"/user/{user}/api/contents/start.ipynb")
        assert status == 200 and notebook["name"] == "start.ipynb"
        other = next(u for u in USERS if u != user)
        assert api(url, made["token"], f"/user/{other}/api/contents/start.ipynb")[0] in (403, 404)
        s = seat.wait_ready(host, user)
        container = host.containers.get(seat.container_name(user))
        assert container.labels[seat.LABEL_SEAT] == user and s.ready
        engine_volume = next(m for m in container.attrs["Mounts"] if m["Destination"] == seat.ENGINE_DIR)
        assert engine_volume.get("Name") == container.name  # filled from the template by the hub's hook
        result = container.exec_run(["labkit", "solve", "swarm-init:init"])
        assert result.exit_code == 0 and b"PASS swarm-init:init" in result.output, result.output
    networks = {n for u in USERS for n in host.containers.get(seat.container_name(u))
                .attrs["NetworkSettings"]["Networks"]}
    assert networks == {hosted.NETWORK}
    assert host.networks.get(hosted.NETWORK).attrs["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    # The room, a service of the hub: each seat's check reached it with the seat's hub token (no join code),
    # and the instructor reads both attendees through the hub's proxy.
    instructor = (workdir / "room.db.instructor").read_text().strip()
    deadline = time.monotonic() + 60
    while True:
        status, room = api(url, instructor, "/services/room/api/room", scheme="Bearer")
        passed = {a["name"] for a in room.get("attendees", []) if a["steps"].get("swarm-init:init", {}).get("state")
                  == "passed"}
        if passed == set(USERS) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert status == 200 and passed == set(USERS), room
