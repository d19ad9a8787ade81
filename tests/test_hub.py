"""A hosted room for real: JupyterHub started as `make hub` starts it (deploy/hub/jupyterhub_config.py),
two users' seats started by `labkit hub prespawn`, each user's JupyterLab reached through the hub's
proxy with that user's token, and a check passing in each user's own lab."""

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

from labkit import hosted, seat
from labkit.settings import PROJECT
from tests.conftest import labkit_cli

pytestmark = [pytest.mark.hub, pytest.mark.engine, pytest.mark.root]
USERS = ("ci-ada", "ci-bob")
CONFIG = PROJECT / "deploy" / "hub" / "jupyterhub_config.py"


def api(url: str, token: str, path: str, method: str = "GET") -> tuple[int, dict]:
    request = urllib.request.Request(f"{url}{path}", method=method, data=b"" if method == "POST" else None,
                                     headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = answer.read()
            return answer.status, json.loads(body) if body else {}
    except urllib.error.HTTPError as exc:
        return exc.code, {}


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
        yield url, token
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        remove_seats(host)


def test_prespawned_users_open_their_start_notebook_through_the_hub_and_a_check_passes(host, hub, tmp_path):
    url, token = hub
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
        result = container.exec_run(["labkit", "solve", "swarm-init:init"])
        assert result.exit_code == 0 and b"PASS swarm-init:init" in result.output, result.output
    networks = {n for u in USERS for n in host.containers.get(seat.container_name(u))
                .attrs["NetworkSettings"]["Networks"]}
    assert networks == {hosted.NETWORK}
    assert host.networks.get(hosted.NETWORK).attrs["Options"]["com.docker.network.bridge.enable_icc"] == "false"
