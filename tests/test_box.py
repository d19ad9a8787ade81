"""The Vagrant box for the docker provider: what goes into it, decided without an engine. (It is built and
booted for real in test_vagrant_docker.py.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from labkit import box, images
from labkit.backends.vagrant import DOCKER_LAB, SSH_NETWORK
from labkit.topology import VAGRANT_SSH_SUBNET, VAGRANT_SUBNET, AddressPlan

VAGRANTFILE = (Path(__file__).resolve().parent.parent / "Vagrantfile").read_text()
PLAN = AddressPlan(VAGRANT_SUBNET)


def test_the_box_carries_exactly_the_packages_install_engine_installs() -> None:
    line = re.search(r'^PACKAGES="([^"]*)"', box.INSTALL_ENGINE.read_text(), re.MULTILINE)
    assert line is not None and box.engine_packages() == line.group(1).split()
    assert "docker.io" in box.engine_packages()
    assert "docker.io" not in box.box_packages()  # no engine until Vagrant provisions the machine
    assert {"openssh-server", "sudo", "systemd-sysv"} <= set(box.box_packages())


def test_a_box_reaches_only_the_lab_hub() -> None:
    files = box.generated_files()
    daemon = json.loads(files["etc/docker/daemon.json"])
    assert daemon == {"registry-mirrors": [f"http://{PLAN.hub}:5000"], "insecure-registries": [f"{PLAN.hub}:5000"],
                      "dns": [PLAN.hub]}
    assert files["etc/apt/sources.list"] == f"deb [trusted=yes] file:{box.DEBS} ./\n"  # the only apt source
    assert f"LAB_GATEWAY={PLAN.gateway}" in files["etc/labkit/box.env"]


def test_the_vagrantfile_and_labkit_name_the_same_networks_and_hub() -> None:
    assert f'LAB_NETWORK = "{DOCKER_LAB.network}"' in VAGRANTFILE
    assert f'SSH_NETWORK = "{SSH_NETWORK}"' in VAGRANTFILE
    subnet = re.search(r'^SUBNET = "([\d.]+)"', VAGRANTFILE, re.MULTILINE)
    assert subnet is not None and f"{subnet.group(1)}.0/24" == str(VAGRANT_SUBNET)
    assert re.search(r'^HUB = "#\{SUBNET\}\.(\d+)"', VAGRANTFILE, re.MULTILINE).group(1) == PLAN.hub.rsplit(".", 1)[1]
    assert VAGRANT_SSH_SUBNET.is_link_local  # Swarm never advertises a link-local address
    assert 'd.image = ENV.fetch("LABKIT_BOX_IMAGE", "' + box.BOX_IMAGE + '")' in VAGRANTFILE


def test_the_box_has_a_recipe_hash_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Editing the box's files rebuilds the box, not the node image; editing install-engine.sh rebuilds both."""
    assert not any("box" in p.relative_to(images.RECIPES).parts[:1] for p in images.image_recipe_files())
    before = box.box_recipe_hash()
    script = tmp_path / "install-engine.sh"
    script.write_text(box.INSTALL_ENGINE.read_text().replace("openssl", "openssl curl"))
    monkeypatch.setattr(box, "INSTALL_ENGINE", script)
    assert box.box_recipe_hash() != before
    assert box.engine_packages()[-1] == "curl"


@pytest.mark.skipif(not shutil.which("dpkg-deb"), reason="dpkg-deb (Debian's dpkg) is not here")
def test_the_local_repository_index_names_each_deb_with_its_size_and_hash(tmp_path: Path) -> None:
    package = tmp_path / "hello"
    (package / "DEBIAN").mkdir(parents=True)
    (package / "DEBIAN" / "control").write_text(
        "Package: labkit-hello\nVersion: 1.0\nArchitecture: all\nMaintainer: labkit\nDescription: test\n")
    deb = tmp_path / "labkit-hello_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--build", str(package), str(deb)], check=True, capture_output=True)
    index = images.packages_index([deb])
    assert index.startswith("Package: labkit-hello\n")
    assert f"Filename: ./{deb.name}\nSize: {deb.stat().st_size}\n" in index
    assert re.search(r"^SHA256: [0-9a-f]{64}$", index, re.MULTILINE)
