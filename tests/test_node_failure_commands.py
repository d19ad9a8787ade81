"""Failing a node on purpose and bringing it back, with the real `labkit node ...` commands on a real swarm:
a node powered off is marked Down by the managers and comes back Ready when powered on; a node cut off the
lab network is Down for the managers while its own engine keeps answering, and comes back with its own
address on `labkit node connect` or `labkit up`."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

import labkit
from labkit.swarm import form_swarm
from labkit.topology import Names
from tests.conftest import labkit_cli, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.destructive]
DOWN_WITHIN = 30  # swarm marks a silent node Down after its heartbeat grace period (measured: 11-17 s)


@pytest.fixture(scope="module")
def swarm(own_lab: labkit.Cluster) -> labkit.Cluster:
    form_swarm(own_lab.nodes, lambda _: None)
    return own_lab


def one_line(done: subprocess.CompletedProcess[str], code: int = 0) -> str:
    """The command's single line: on stdout when it worked, on stderr when it did not; no traceback."""
    assert done.returncode == code, done.stdout + done.stderr
    text = done.stdout if code == 0 else done.stderr
    assert text.endswith("\n") and text.count("\n") == 1, repr(done.stdout + done.stderr)
    assert "Traceback" not in done.stdout + done.stderr
    return text.strip()


def status_of(lab: str) -> dict[str, dict[str, str]]:
    done = labkit_cli("status", "--json", lab=lab)
    assert done.returncode == 0, done.stderr
    return {n["name"]: n for n in json.loads(done.stdout)["nodes"]}


def seen_by_manager(cluster: labkit.Cluster) -> dict[str, str]:
    """What the manager's `docker node ls` says of each node: Ready, Down, ..."""
    done = cluster["manager1"].run("docker node ls --format '{{.Hostname}} {{.Status}}'")
    assert done.ok, done.stderr
    return dict(line.split() for line in done.stdout.splitlines())


def lab_address(host, lab: str, node: str) -> tuple[str, list[str]]:
    """The node container's address and aliases on the lab network ('' when it is not on it)."""
    names = Names(lab)
    networks = host.containers.get(names.container(node)).attrs["NetworkSettings"]["Networks"]
    endpoint = networks.get(names.network) or {}
    return endpoint.get("IPAddress", ""), endpoint.get("Aliases") or []


def test_a_stopped_node_is_marked_down_and_comes_back_ready(swarm: labkit.Cluster, own_lab: labkit.Cluster) -> None:
    lab = own_lab.lab
    assert seen_by_manager(swarm)["worker2"] == "Ready"
    started = time.monotonic()
    line = one_line(labkit_cli("node", "stop", "worker2", lab=lab))
    assert line.startswith("worker2 is off") and f"`labkit node start worker2 --lab {lab}`" in line
    assert status_of(lab)["worker2"]["engine"] == "stopped"
    try:
        wait_until(lambda: seen_by_manager(swarm)["worker2"] == "Down", DOWN_WITHIN, "the manager to mark worker2 Down")
        print(f"worker2 marked Down {time.monotonic() - started:.1f} s after `labkit node stop`")
        assert one_line(labkit_cli("node", "stop", "worker2", lab=lab)).startswith("worker2 was already off")
    finally:
        line = one_line(labkit_cli("node", "start", "worker2", lab=lab))
    assert line == "worker2 is on again and its engine answers."
    assert status_of(lab)["worker2"]["engine"] == "answering"
    wait_until(lambda: seen_by_manager(swarm)["worker2"] == "Ready", DOWN_WITHIN, "worker2 to be Ready again")
    assert one_line(labkit_cli("node", "start", "worker2", lab=lab)).startswith("worker2 was already on")


def test_a_disconnected_node_is_down_for_the_managers_but_its_engine_answers(
    swarm: labkit.Cluster, own_lab: labkit.Cluster, host
) -> None:
    lab = own_lab.lab
    address, _ = lab_address(host, lab, "worker1")
    assert address == own_lab["worker1"].address
    started = time.monotonic()
    line = one_line(labkit_cli("node", "disconnect", "worker1", lab=lab))
    assert line.startswith("worker1 is cut off from the lab network")
    try:
        assert lab_address(host, lab, "worker1")[0] == ""
        wait_until(lambda: seen_by_manager(swarm)["worker1"] == "Down", DOWN_WITHIN, "the manager to mark worker1 Down")
        print(f"worker1 marked Down {time.monotonic() - started:.1f} s after `labkit node disconnect`")
        # Its own engine still answers, and still believes it is a swarm worker.
        assert own_lab["worker1"].engine_answers()
        seen = status_of(lab)["worker1"]
        assert (seen["engine"], seen["swarm"], seen["network"]) == ("answering", "worker", "disconnected")
        assert "disconnected" in labkit_cli("status", lab=lab).stdout
        # A partition is a state to observe, not a fault: checks still run instead of saying a node is down.
        done = labkit_cli("check", "swarm-init:init", "--json", lab=lab)
        assert "Traceback" not in done.stderr
        assert "Node worker1" not in json.loads(done.stdout)["results"][0]["summary"]
        again = one_line(labkit_cli("node", "disconnect", "worker1", lab=lab))
        assert again.startswith("worker1 was already cut off")
    finally:
        line = one_line(labkit_cli("node", "connect", "worker1", lab=lab))
    assert line == f"worker1 is back on the lab network at {address}."
    reconnected, aliases = lab_address(host, lab, "worker1")
    assert reconnected == address and "worker1" in aliases
    assert status_of(lab)["worker1"]["network"] == "connected"
    wait_until(lambda: seen_by_manager(swarm)["worker1"] == "Ready", DOWN_WITHIN, "worker1 to be Ready again")
    addr = swarm["manager1"].run("docker node inspect worker1 --format '{{.Status.Addr}}'").stdout.strip()
    assert addr == address
    assert one_line(labkit_cli("node", "connect", "worker1", lab=lab)).startswith("worker1 was already on")


def test_up_reconnects_and_restarts_every_node(swarm: labkit.Cluster, own_lab: labkit.Cluster, host) -> None:
    lab = own_lab.lab
    one_line(labkit_cli("node", "disconnect", "worker1", lab=lab))
    one_line(labkit_cli("node", "stop", "worker2", lab=lab))
    one_line(labkit_cli("node", "disconnect", "worker2", lab=lab))
    # A swarm node's engine cannot start without its network: said at once, in one line.
    refused = one_line(labkit_cli("node", "start", "worker2", lab=lab), code=1)
    assert "cut off from the lab network" in refused and f"`labkit node connect worker2 --lab {lab}`" in refused
    assert {n: s["network"] for n, s in status_of(lab).items()} == {
        "manager1": "connected", "worker1": "disconnected", "worker2": "disconnected"}

    back = labkit_cli("up", lab=lab)
    assert back.returncode == 0, back.stderr
    assert "Reconnecting worker1, worker2 to the lab network" in back.stderr
    assert "Bringing back worker2" in back.stderr
    for name, seen in status_of(lab).items():
        assert (seen["engine"], seen["network"]) == ("answering", "connected"), name
        assert lab_address(host, lab, name)[0] == own_lab[name].address
    wait_until(lambda: set(seen_by_manager(swarm).values()) == {"Ready"}, DOWN_WITHIN, "every node to be Ready")


def test_an_unknown_node_is_one_clean_error_line(own_lab: labkit.Cluster) -> None:
    for action in ("stop", "start", "disconnect", "connect"):
        line = one_line(labkit_cli("node", action, "worker9", lab=own_lab.lab), code=1)
        assert line.startswith(f"error: There is no node 'worker9' in lab '{own_lab.lab}'"), line


def test_a_restarted_node_shuts_down_cleanly_and_comes_back(swarm: labkit.Cluster, own_lab: labkit.Cluster,
                                                            host) -> None:
    lab = own_lab.lab
    container = host.containers.get(Names(lab).container("worker1"))
    started_before = container.attrs["State"]["StartedAt"]
    shutdowns = container.logs().count(b"Daemon shutdown complete")
    line = one_line(labkit_cli("node", "restart", "worker1", lab=lab))
    assert line == "worker1 restarted: its engine shut down cleanly, started again and answers."
    container.reload()
    assert container.attrs["State"]["StartedAt"] != started_before
    # the node's entry point ends dockerd only once its shutdown is done (see its stop_engine)
    assert container.logs().count(b"Daemon shutdown complete") == shutdowns + 1
    assert own_lab["worker1"].engine_answers()
    wait_until(lambda: seen_by_manager(swarm).get("worker1") == "Ready", DOWN_WITHIN, "worker1 Ready again")
