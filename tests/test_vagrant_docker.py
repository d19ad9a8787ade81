"""Vagrant for real on this machine: Vagrant's docker provider, where each machine is a container of
labkit's box image (systemd, sshd, a vagrant user, no engine until provisioned). `labkit up --backend
vagrant` builds what it needs, `vagrant up` boots and provisions the machines over SSH with
install-engine.sh, offline, and the course runs on them through labkit's vagrant backend. The tests run
in file order on one Vagrant project: fresh machines, the seed labs, down; then LABKIT_SWARM=1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

import labkit
from labkit.runner import course
from labkit.topology import LABEL_KIND, LABEL_LAB, VAGRANT_SUBNET, AddressPlan
from tests.conftest import labkit_cli
from tests.test_notebooks import SANITIZE, nbval_argv
from tests.test_walkthrough import walk

pytestmark = [pytest.mark.vagrant, pytest.mark.cluster, pytest.mark.root]

LAB = "civagrant"
PROJECT = Path(__file__).resolve().parent.parent
SEED_LABS = 6  # swarm-init to cleanup: the slides' own commands
PLAN = AddressPlan(VAGRANT_SUBNET)


@pytest.fixture(scope="module")
def settings_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A Vagrant project of the tests' own (its .vagrant/ apart from a learner's): the Vagrantfile and the
    recipes it provisions with, as a learner's checkout has them."""
    if not shutil.which("vagrant"):
        pytest.fail("vagrant is not installed (`make test` installs it; Debian: apt-get install vagrant)")
    if os.geteuid() != 0:
        pytest.skip("building the box image needs root (debootstrap)")
    project = tmp_path_factory.mktemp("vagrant-project")
    shutil.copy(PROJECT / "Vagrantfile", project)
    shutil.copytree(PROJECT / "labkit" / "recipes", project / "labkit" / "recipes")
    return {"LABKIT_BACKEND": "vagrant", "LABKIT_VAGRANT_PROVIDER": "docker", "LABKIT_VAGRANT_DIR": str(project),
            "LABKIT_STATE_DIR": str(tmp_path_factory.mktemp("vagrant-state"))}


def box_volumes(host: docker.DockerClient) -> set[str]:
    """The volumes the machines use (not the hub's registry: a cache, kept on purpose). Only theirs are
    looked at: other tests' labs make and remove volumes meanwhile."""
    return {m["Name"] for c in host.containers.list(all=True) if c.name.startswith("labkit-vagrant")
            and c.labels.get(LABEL_KIND) != "hub" for m in c.attrs.get("Mounts") or [] if m.get("Type") == "volume"}


@pytest.fixture(scope="module")
def vagrant_lab(host: docker.DockerClient, settings_env: dict[str, str]) -> Iterator[labkit.Cluster]:
    """`labkit up --backend vagrant` with the docker provider, as a workshop machine without VT-x runs it."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in settings_env.items():
            patch.setenv(key, value)
        done = labkit_cli("up", lab=LAB, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        yield labkit.cluster(LAB)
        labkit_cli("down", lab=LAB, timeout=600)


def test_machines_are_provisioned_offline_with_the_labs_addresses(vagrant_lab: labkit.Cluster,
                                                                  host: docker.DockerClient) -> None:
    status = json.loads(labkit_cli("status", "--json", lab=LAB).stdout)
    nodes = {n["name"]: n for n in status["nodes"]}
    assert {n: (v["address"], v["engine"]) for n, v in nodes.items()} == {
        "manager1": ("192.168.56.11", "answering"), "worker1": ("192.168.56.21", "answering"),
        "worker2": ("192.168.56.22", "answering")}
    manager = vagrant_lab["manager1"]
    info = manager.docker.info()
    assert info["RegistryConfig"]["Mirrors"] == [f"http://{PLAN.hub}:5000/"]  # the lab hub, nothing public
    # Provisioned by Vagrant over SSH, from the box's local repository only.
    assert manager.run("cat /etc/apt/sources.list").stdout.strip() == "deb [trusted=yes] file:/opt/labkit/debs ./"
    assert manager.run("id -nG vagrant").stdout.split().count("docker") == 1
    # The only way out is the internal lab network: the default route goes to its gateway.
    assert manager.run("ip route show default").stdout.split()[:3] == ["default", "via", PLAN.gateway]
    boxes = host.containers.list(filters={"label": [f"{LABEL_LAB}=vagrant", "labkit.kind=box"]})
    assert len(boxes) == 3
    for box in boxes:
        assert host.networks.get("labkit-vagrant").attrs["Internal"] is True
        assert set(box.attrs["NetworkSettings"]["Networks"]) == {"labkit-vagrant", "labkit-vagrant-ssh"}
    # Lab names resolve, public ones fail at once (the hub never forwards).
    assert manager.run("getent hosts worker2").stdout.split()[0] == "192.168.56.22"
    assert not manager.run("getent hosts example.com").ok


def test_the_seed_labs_walk_through_on_vagrant_machines(vagrant_lab: labkit.Cluster,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        settings_env: dict[str, str]) -> None:
    """Swarm init to cleanup, on the machines just made: every step fails before its solution and passes
    after it. (A reset on Vagrant is `vagrant destroy` and `vagrant up` again: bench/vagrant.py times it.)"""
    for key, value in settings_env.items():
        monkeypatch.setenv(key, value)
    walk(vagrant_lab, course()[:SEED_LABS], fresh=True)


def test_down_leaves_nothing_behind(vagrant_lab: labkit.Cluster, host: docker.DockerClient,
                                    settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in settings_env.items():
        monkeypatch.setenv(key, value)
    machine_volumes = box_volumes(host)
    assert len(machine_volumes) >= 3  # each machine's /var/lib/docker
    done = labkit_cli("down", lab=LAB, timeout=600)
    assert done.returncode == 0, done.stderr
    assert host.containers.list(all=True, filters={"label": f"{LABEL_LAB}=vagrant"}) == []
    assert host.networks.list(filters={"label": f"{LABEL_LAB}=vagrant"}) == []
    assert [c.name for c in host.containers.list(all=True) if c.name.startswith("labkit-vagrant")] == []
    assert machine_volumes & {v.name for v in host.volumes.list()} == set()
    assert not list((Path(settings_env["LABKIT_VAGRANT_DIR"]) / ".vagrant" / "machines").glob("*/*/id"))
    status = labkit_cli("status", lab=LAB)
    assert "no nodes" in (status.stdout + status.stderr).lower() or status.returncode != 0


def test_the_swarm_option_forms_the_swarm_and_a_notebook_passes_nbval_on_it(
        host: docker.DockerClient, settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """`LABKIT_SWARM=1` (for those who skip the first labs): manager1 inits, the workers join with the token
    it shares through the synced folder, so the nodes lab's check passes at once; then the first-service
    notebook, recorded on dind nodes, gives the same outputs on these machines under nbval."""
    for key, value in settings_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LABKIT_SWARM", "1")
    try:
        done = labkit_cli("up", lab=LAB, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        check = labkit_cli("check", "nodes:join", lab=LAB)
        assert check.returncode == 0 and "3 nodes are Ready" in check.stdout, check.stdout + check.stderr
        tokens = Path(settings_env["LABKIT_VAGRANT_DIR"]) / ".labkit"
        assert {p.name: p.stat().st_mode & 0o777 for p in tokens.iterdir()} == {
            "worker.token": 0o600, "manager.token": 0o600}
        notebook = PROJECT / "notebooks" / "03-first-service.ipynb"
        env = {**os.environ, "LABKIT_LAB": LAB, "LABKIT_STRICT": "1", "LABKIT_STATE_DIR": str(tmp_path / "nb")}
        done = subprocess.run(nbval_argv([notebook]), capture_output=True, text=True, timeout=1200, env=env,
                              cwd=notebook.parent)
        assert done.returncode == 0, done.stdout[-8000:]
        assert " passed" in done.stdout and SANITIZE.exists()
    finally:
        labkit_cli("down", lab=LAB, timeout=600)
    assert host.containers.list(all=True, filters={"label": f"{LABEL_LAB}=vagrant"}) == []
