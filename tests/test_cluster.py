"""The lab cluster on real engines: what the course's first slides need to work."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest
import testinfra

import labkit
from labkit.swarm import task_containers
from labkit.topology import LABEL_LAB, Names
from tests.conftest import TEST_LAB, labkit_cli, wait_until

pytestmark = pytest.mark.cluster


def running_tasks(manager: labkit.Node, service: str) -> list[dict]:
    tasks = manager.docker.api.tasks(filters={"service": service, "desired-state": "running"})
    return [t for t in tasks if t["Status"]["State"] == "running"]


def node_names_by_id(manager: labkit.Node) -> dict[str, str]:
    return {n["ID"]: n["Description"]["Hostname"] for n in manager.docker.api.nodes()}


def test_every_node_is_a_separate_answering_engine(lab: labkit.Cluster) -> None:
    assert [n.name for n in lab] == ["manager1", "worker1", "worker2"]
    ids = set()
    for node in lab:
        assert node.docker.ping()
        info = node.docker.info()
        assert info["Name"] == node.name
        assert info["Swarm"]["LocalNodeState"] == "inactive", "up must give bare engines: lab 1 is swarm init"
        ids.add(info["ID"])
        assert node.run("hostname").stdout.strip() == node.name
    assert len(ids) == 3


def test_run_returns_exit_code_and_both_streams(lab: labkit.Cluster) -> None:
    result = lab["worker1"].run("echo out; echo err >&2; exit 3")
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")


def test_read_text_gives_what_cat_on_the_node_gives(lab: labkit.Cluster) -> None:
    """Files on the node's disk as the checks read them: straight from its filesystem where labkit may, on
    the engine's volume too; a path through a symbolic link (the node's to resolve) as `cat` resolves it."""
    node = lab["worker1"]
    script = ("mkdir -p /var/lib/docker/labkit-test && echo engine > /var/lib/docker/labkit-test/f && "
              "ln -sfn /var/lib/docker/labkit-test /root/link && echo home > /root/f && mkfifo /root/fifo")
    assert node.run(script).ok
    try:
        for path in ("/var/lib/docker/labkit-test/f", "/root/f", "/root/link/f", "/etc/hostname"):
            assert node.read_text(path) == node.run(["cat", path]).stdout != "", path
        assert node.read_text("/root/missing") is None
        assert node.read_text("/root/fifo") is None  # not a file (`cat` would wait for a writer)
    finally:
        node.run("rm -rf /var/lib/docker/labkit-test /root/link /root/f /root/fifo")


@pytest.mark.destructive
def test_swarm_init_and_join_give_a_leader_and_two_ready_workers(own_lab: labkit.Cluster) -> None:
    lab = own_lab  # forms a swarm: on this module's own lab, so the shared one stays bare engines
    manager = lab["manager1"]
    init = manager.run(f"docker swarm init --advertise-addr {manager.address}")
    assert init.ok, init.stderr
    token = manager.run("docker swarm join-token -q worker").stdout.strip()
    assert token.startswith("SWMTKN-1-")
    for worker in lab.workers:
        joined = worker.run(f"docker swarm join --token {token} manager1:2377")
        assert joined.ok, joined.stderr

    def nodes() -> list[dict]:
        found = manager.docker.api.nodes()
        return found if all(n["Status"]["State"] == "ready" for n in found) and len(found) == 3 else []

    found = wait_until(nodes, 30, "three Ready nodes")
    leaders = [n["Description"]["Hostname"] for n in found if n.get("ManagerStatus", {}).get("Leader")]
    workers = sorted(n["Description"]["Hostname"] for n in found if n["Spec"]["Role"] == "worker")
    assert leaders == ["manager1"]
    assert workers == ["worker1", "worker2"]


@pytest.fixture
def swarm(own_lab: labkit.Cluster) -> labkit.Cluster:
    """This module's own lab, in a swarm (formed once; each test removes the services it makes)."""
    from labkit.swarm import form_swarm

    form_swarm(own_lab.nodes, lambda _: None)
    return own_lab


@pytest.mark.destructive
def test_three_replicas_of_alpine_pinging_manager1_run_one_per_node(swarm: labkit.Cluster) -> None:
    manager = swarm["manager1"]
    created = manager.run("docker service create -d --name pinger --replicas 3 alpine ping manager1")
    assert created.ok, created.stderr
    assert "could not be accessed on a registry" not in created.stderr
    tasks = wait_until(
        lambda: len(running_tasks(manager, "pinger")) == 3 and running_tasks(manager, "pinger"),
        60,
        "3 running pinger tasks",
    )
    names = node_names_by_id(manager)
    assert sorted(names[t["NodeID"]] for t in tasks) == ["manager1", "worker1", "worker2"]
    # The task really pings manager1 by name.
    worker_task = next(t for t in tasks if names[t["NodeID"]] == "worker1")
    cid = worker_task["Status"]["ContainerStatus"]["ContainerID"]
    logs = wait_until(lambda: swarm["worker1"].docker.containers.get(cid).logs().decode(), 10, "ping output")
    assert f"({manager.address})" in logs


@pytest.mark.destructive
def test_a_killed_task_container_is_replaced_by_the_orchestrator(swarm: labkit.Cluster) -> None:
    manager, worker = swarm["manager1"], swarm["worker2"]
    if not running_tasks(manager, "pinger"):
        manager.run("docker service create -d --name pinger --replicas 3 alpine ping manager1")
        wait_until(lambda: len(running_tasks(manager, "pinger")) == 3, 60, "3 running tasks")
    victim = wait_until(
        lambda: task_containers(worker.docker, "pinger"),
        30,
        "a pinger container on worker2",
    )[0]
    removed = worker.run(f"docker container rm -f {victim.id}")
    assert removed.ok, removed.stderr

    def healed() -> bool:
        tasks = running_tasks(manager, "pinger")
        ids = {t["Status"].get("ContainerStatus", {}).get("ContainerID") for t in tasks}
        return len(tasks) == 3 and victim.id not in ids

    wait_until(healed, 30, "the orchestrator to replace the removed container")
    failed = manager.docker.api.tasks(filters={"service": "pinger", "desired-state": "shutdown"})
    assert failed, "the replaced task stays in the history"
    assert manager.run("docker service rm pinger").ok


@pytest.mark.destructive
def test_tasks_on_an_overlay_network_reach_each_other_across_nodes(swarm: labkit.Cluster) -> None:
    manager = swarm["manager1"]
    assert manager.run("docker network create -d overlay labnet").ok
    for name, node in (("left", "manager1"), ("right", "worker1")):
        done = manager.run(
            f"docker service create -d --name {name} --network labnet --endpoint-mode dnsrr "
            f"--constraint node.hostname=={node} alpine sleep 1d"
        )
        assert done.ok, done.stderr
    for name in ("left", "right"):
        wait_until(lambda n=name: running_tasks(manager, n), 60, f"service {name} running")
    left = task_containers(manager.docker, "left")[0]
    right_task = running_tasks(manager, "right")[0]
    right_ip = right_task["NetworksAttachments"][0]["Addresses"][0].split("/")[0]
    assert ipaddress.ip_address(right_ip) in ipaddress.ip_network("10.0.0.0/8")
    by_ip = left.exec_run(["ping", "-c", "2", "-W", "2", right_ip])
    assert by_ip.exit_code == 0, by_ip.output.decode()
    by_name = left.exec_run(["ping", "-c", "1", "-W", "2", "right"])
    assert by_name.exit_code == 0, by_name.output.decode()
    manager.run("docker service rm left right; sleep 1; docker network rm labnet")


def test_nginx_serves_its_default_page_pulled_through_the_lab_registry(lab: labkit.Cluster) -> None:
    worker = lab["worker2"]
    started = worker.run("docker run -d --name web -p 8080:80 nginx")
    assert started.ok, started.stderr
    fetch = "docker run --rm alpine wget -q -O- http://worker2:8080/"
    page = wait_until(lambda: lab["worker1"].run(fetch).stdout, 30, "the nginx page, fetched from worker1")
    assert "Welcome to nginx!" in page
    worker.run("docker rm -f web")


def test_lab_stays_on_this_machine(lab: labkit.Cluster, host) -> None:
    network = host.networks.get(Names(TEST_LAB).network)
    assert network.attrs["Internal"] is True
    hub = lab["manager1"].run("getent hosts labkit-hub").stdout.split()[0]
    for node in lab:
        resolv = testinfra.get_host(f"docker://{Names(TEST_LAB).container(node.name)}").file("/etc/resolv.conf")
        assert resolv.content_string.split() == ["nameserver", hub]
        inner = node.run("docker run --rm alpine cat /etc/resolv.conf")
        assert inner.ok, inner.stderr
        servers = [line.split()[1] for line in inner.stdout.splitlines() if line.startswith("nameserver")]
        assert servers == [hub], f"inner containers on {node.name} must only get the lab DNS, got {servers}"
    # A name outside the lab is refused at once by the lab DNS, never forwarded.
    lookup = lab["worker1"].run("docker run --rm alpine nslookup registry.example; echo rc=$?")
    assert "NXDOMAIN" in lookup.stdout


def test_up_twice_keeps_the_same_nodes(lab: labkit.Cluster, host) -> None:
    before = {c.name: c.id for c in host.containers.list(filters={"label": f"{LABEL_LAB}={TEST_LAB}"})}
    again = labkit_cli("up")
    assert again.returncode == 0, again.stderr
    after = {c.name: c.id for c in host.containers.list(filters={"label": f"{LABEL_LAB}={TEST_LAB}"})}
    assert after == before


def test_status_shows_every_node(lab: labkit.Cluster) -> None:
    shown = labkit_cli("status")
    assert shown.returncode == 0, shown.stderr
    for node in lab:
        line = next(line for line in shown.stdout.splitlines() if node.name in line)
        assert "answering" in line and node.address in line


def test_down_removes_everything_of_the_lab_and_twice_is_fine(host) -> None:
    lab = "cidown"
    labkit_cli("down", lab=lab)
    assert labkit_cli("up", "--workers", "1", lab=lab).returncode == 0
    assert labkit_cli("down", lab=lab).returncode == 0
    label = {"label": f"{LABEL_LAB}={lab}"}
    assert host.containers.list(all=True, filters=label) == []
    assert host.networks.list(filters=label) == []
    assert host.volumes.list(filters=label) == []
    again = labkit_cli("down", lab=lab)
    assert again.returncode == 0 and "Nothing to remove" in again.stderr


def test_cluster_api_without_a_lab_says_what_to_do() -> None:
    with pytest.raises(labkit.LabkitError, match="labkit up"):
        labkit.cluster("nolabhere")


def test_doctor_names_the_node_mode_and_what_missing_kernel_features_mean(lab: labkit.Cluster, host) -> None:
    shown = labkit_cli("doctor")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    text = " ".join(shown.stdout.split())
    privileged = host.containers.get(Names(TEST_LAB).container("manager1")).attrs["HostConfig"]["Privileged"]
    assert f"node mode {'privileged' if privileged else 'fallback'}" in text
    assert "3 of 3 node engines answer" in text
    for feature in ("overlay filesystem", "vxlan", "cgroups"):
        assert feature in text
    if Path("/proc/sys/net/ipv4/vs").exists():
        assert "ok IPVS" in text
    else:
        assert "warn IPVS absent: the routing mesh" in text


def test_shell_opens_a_shell_on_the_node(lab: labkit.Cluster) -> None:
    env = {**os.environ, "LABKIT_LAB": TEST_LAB}
    done = subprocess.run([sys.executable, "-m", "labkit", "shell", "worker2"], input="hostname; exit 0\n",
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "worker2"


def test_clean_refuses_while_a_lab_runs(lab: labkit.Cluster) -> None:
    refused = labkit_cli("clean")
    assert refused.returncode == 1 and "labkit down" in refused.stderr
    assert labkit_cli("status").returncode == 0
