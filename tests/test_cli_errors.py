"""Bad input gets one clear line and a non-zero exit, and nothing labkit did not create is touched."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import docker.errors
import pytest

from labkit import images
from labkit.topology import LABEL_LAB
from tests.conftest import labkit_cli, wait_until

pytestmark = pytest.mark.cluster


def assert_clean_error(done: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error:"), done.stderr
    for phrase in phrases:
        assert phrase in done.stderr, done.stderr


def test_unknown_node_name(lab) -> None:
    assert_clean_error(labkit_cli("exec", "nosuch", "--", "true"), "no node 'nosuch'", "manager1")
    assert_clean_error(labkit_cli("exec", "worker7", "--", "true"), "no node 'worker7'")


def test_zero_managers_is_refused() -> None:
    assert_clean_error(labkit_cli("up", "--managers", "0", lab="cizero"), "between 1 and 9 managers")


def test_invalid_lab_name() -> None:
    assert_clean_error(labkit_cli("status", "--lab", "Bad_Name", lab=None), "not a valid lab name")


def test_no_engine_reachable() -> None:
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    done = subprocess.run([sys.executable, "-m", "labkit", "status"], capture_output=True, text=True, env=env)
    assert_clean_error(done, "No Docker engine answers")


def test_a_clashing_container_is_reported_and_left_alone(host) -> None:
    with contextlib.suppress(docker.errors.NotFound):  # left by an interrupted run of this test
        host.containers.get("ciclash-worker1").remove(force=True, v=True)
    stranger = host.containers.create(images.NODE_IMAGE, entrypoint=["sleep", "60"], name="ciclash-worker1")
    try:
        assert_clean_error(labkit_cli("up", lab="ciclash"), "ciclash-worker1", "did not create")
        assert labkit_cli("down", lab="ciclash").returncode == 0
        stranger.reload()  # still there: labkit never removes what it did not create
        assert stranger.name == "ciclash-worker1"
    finally:
        stranger.remove(force=True, v=True)  # its image declares a volume: no leftover
        labkit_cli("down", lab="ciclash")


def test_down_while_a_lab_is_half_started(host) -> None:
    lab = "cihalf"
    env = {**os.environ, "LABKIT_LAB": lab}
    proc = subprocess.Popen(
        [sys.executable, "-m", "labkit", "up", "--workers", "3"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    label = {"label": f"{LABEL_LAB}={lab}"}
    try:
        wait_until(
            lambda: host.containers.list(all=True, filters={"label": [f"{LABEL_LAB}={lab}", "labkit.kind=node"]},
                                         ignore_removed=True),  # up replaces containers as it goes
            60,
            "the first node container",
        )
    finally:
        proc.kill()
        proc.wait()
    done = labkit_cli("down", lab=lab)
    assert done.returncode == 0, done.stderr
    time.sleep(0.2)
    assert host.containers.list(all=True, filters=label) == []
    assert host.volumes.list(filters=label) == []
    assert host.networks.list(filters=label) == []
