"""Faults are lab states: a stopped, paused or unreachable node is shown as such, every check says
which node is down and what to do, `labkit up` brings it back, and up/down leave nothing behind."""

from __future__ import annotations

import json
import subprocess
import time

import docker.errors
import pytest

import labkit
from labkit.errors import NodeDown
from labkit.topology import LABEL_KIND, LABEL_LAB, Names
from tests.conftest import labkit_cli, wait_until

pytestmark = pytest.mark.cluster


def no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    text = done.stdout + done.stderr
    for word in ("Traceback", "Exception", "ConnectionRefused", "APIError", "HTTPConnection"):
        assert word not in text, text


def status_of(lab: str) -> dict[str, str]:
    done = labkit_cli("status", "--json", lab=lab)
    assert done.returncode == 0, done.stderr
    return {n["name"]: n["engine"] for n in json.loads(done.stdout)["nodes"]}


def pause(container) -> None:
    """Pause CONTAINER. runc's freezer gives up ("unable to freeze") when a busy machine keeps the node's
    processes from stopping in time: try again, as a person would."""
    for attempt in range(5):
        try:
            container.pause()
            return
        except docker.errors.APIError as exc:
            if "unable to freeze" not in str(exc) or attempt == 4:
                raise
            time.sleep(1)


@pytest.mark.destructive
def test_stopped_and_paused_nodes_are_lab_states(own_lab: labkit.Cluster, host) -> None:
    lab = own_lab.lab
    names = Names(lab)
    host.containers.get(names.container("worker2")).stop(timeout=1)
    pause(host.containers.get(names.container("worker1")))
    try:
        assert status_of(lab) == {"manager1": "answering", "worker1": "paused", "worker2": "stopped"}

        # A check that needs the cluster says which node is down and how to bring it back.
        done = labkit_cli("check", "swarm-init:init", "--json", lab=lab)
        assert done.returncode == 1
        no_traceback(done)
        result = json.loads(done.stdout)["results"][0]
        assert result["summary"] == "Node worker1 is paused, so this step cannot be checked."
        assert f"`labkit up --lab {lab}`" in result["hint"]
        assert "worker2: stopped" in result["evidence"]
        assert result["pending"] is False

        # The same in a terminal, and for commands on the nodes.
        text = labkit_cli("check", "nodes:join", lab=lab)
        no_traceback(text)
        assert "worker1 is paused" in text.stdout
        ran = labkit_cli("exec", "worker2", "--", "true", lab=lab)
        no_traceback(ran)
        assert ran.returncode != 0 and "Node worker2 is stopped" in ran.stderr
        with pytest.raises(NodeDown) as down:
            own_lab["worker2"].docker.info()
        assert down.value.state == "stopped"

        doctor = labkit_cli("doctor", lab=lab)
        assert doctor.returncode == 1 and "worker1 is paused" in doctor.stdout.replace("\n", " ")
    finally:
        back = labkit_cli("up", lab=lab)
    assert back.returncode == 0, back.stderr
    assert "Bringing back worker1, worker2" in back.stderr
    assert status_of(lab) == {"manager1": "answering", "worker1": "answering", "worker2": "answering"}
    after = labkit_cli("check", "swarm-init:init", lab=lab)
    assert "Swarm mode is still inactive on manager1" in after.stdout  # an ordinary failure again


@pytest.mark.destructive
def test_an_engine_that_stopped_answering_inside_a_running_node(own_lab: labkit.Cluster, host) -> None:
    """The node's container runs, but its engine is frozen: status and checks say 'not answering'."""
    lab = own_lab.lab
    node = host.containers.get(Names(lab).container("worker1"))
    node.exec_run("pkill -STOP dockerd")
    try:
        assert status_of(lab)["worker1"] == "not answering"
        done = labkit_cli("check", "swarm-init:init", "--json", lab=lab)
        no_traceback(done)
        assert "Node worker1 is not answering" in json.loads(done.stdout)["results"][0]["summary"]
    finally:
        node.exec_run("pkill -CONT dockerd")
    wait_until(lambda: status_of(lab)["worker1"] == "answering", 30, "worker1's engine to answer again")


def test_up_and_down_leave_no_anonymous_volume(host) -> None:
    """Every volume the lab's nodes used (their named ones, and any anonymous one the node image's VOLUME
    would make) is gone after `down` (the hub's registry data is a cache, kept on purpose). Only this
    lab's are looked at: other tests run beside it."""
    lab = "civolumes"
    labkit_cli("down", lab=lab)
    assert labkit_cli("up", "--workers", "1", lab=lab).returncode == 0
    nodes = host.containers.list(all=True, filters={"label": [f"{LABEL_LAB}={lab}", f"{LABEL_KIND}=node"]})
    used = {m["Name"] for c in nodes for m in c.attrs.get("Mounts") or [] if m.get("Type") == "volume"}
    assert len(used) >= 2  # manager1's and worker1's /var/lib/docker
    assert labkit_cli("down", lab=lab).returncode == 0
    left = used & {v.name for v in host.volumes.list()}
    assert left == set(), f"up/down left volumes behind: {left}"
