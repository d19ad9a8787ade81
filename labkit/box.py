"""The Vagrant box for Vagrant's docker provider, built on the local engine from Debian packages.

``labkit/box`` is a machine as a VM box would give it, but a container: Debian 12 booting
systemd, sshd, a ``vagrant`` user with passwordless sudo and Vagrant's well-known insecure key
(Vagrant swaps it for a key of its own at first boot), and **no engine**: Vagrant's
provisioning runs ``install-engine.sh`` over SSH, as on any VM. That script's packages, and
all they depend on, are in the box as a local apt repository (``/opt/labkit/debs``, the box's
only apt source), so provisioning needs no network at all.

Nothing in a box can leave the machine: its default route goes through the internal lab network
(``topology.VAGRANT_SUBNET``), never Docker's default bridge, its resolver is the lab hub, and the
engine it gets uses the hub as registry mirror and as its containers' only DNS server.

The image carries the hash of its recipe (``recipes/box/``, ``install-engine.sh``, the
entrypoint and this module's parameters); a build runs only when it differs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import docker

from labkit import images
from labkit.aptsources import debian_mirror
from labkit.errors import ImageBuildError
from labkit.report import Report
from labkit.settings import settings
from labkit.topology import REGISTRY_PORT, VAGRANT_SUBNET, AddressPlan

BOX_IMAGE = "labkit/box:latest"
BOX_RECIPES = images.RECIPES / "box"
INSTALL_ENGINE = images.RECIPES / "install-engine.sh"
DEBS = "/opt/labkit/debs"  # in the box: the local apt repository of the engine's packages
USER = "vagrant"
BOX_CHANGES = (
    f'ENTRYPOINT ["{images.ENTRYPOINT}", "box"]',
    "ENV container=docker",
    "VOLUME /var/lib/docker",
    'LABEL org.opencontainers.image.description="labkit Vagrant box (docker provider): Debian 12, '
    'systemd, sshd, no engine until provisioned"',
)
# Units a container has no use for (hardware, consoles, kernel file systems it cannot mount).
MASKED = (
    "systemd-udevd.service", "systemd-udevd-control.socket", "systemd-udevd-kernel.socket",
    "systemd-modules-load.service", "systemd-remount-fs.service", "systemd-firstboot.service",
    "sys-kernel-config.mount", "sys-kernel-debug.mount", "sys-kernel-tracing.mount", "dev-hugepages.mount",
    "getty.target", "console-getty.service", "systemd-logind.service",
)


def engine_packages() -> list[str]:
    """The packages install-engine.sh installs (its PACKAGES line is the one place they are named)."""
    found = re.search(r'^PACKAGES="([^"]*)"', INSTALL_ENGINE.read_text(), re.MULTILINE)
    if found is None:
        raise ImageBuildError("install-engine.sh names no PACKAGES: the box cannot carry the engine's packages.")
    return found.group(1).split()


def box_packages() -> list[str]:
    return images.package_list(BOX_RECIPES / "packages.txt")


def generated_files() -> dict[str, str]:
    """Files written from the lab network's plan (the same addresses as every backend's)."""
    plan = AddressPlan(VAGRANT_SUBNET)
    registry = f"{plan.hub}:{REGISTRY_PORT}"
    daemon = {"registry-mirrors": [f"http://{registry}"], "insecure-registries": [registry], "dns": [plan.hub]}
    return {
        "etc/labkit/box.env": f"LAB_SUBNET={VAGRANT_SUBNET}\nLAB_GATEWAY={plan.gateway}\n",
        "etc/docker/daemon.json": json.dumps(daemon, indent=2) + "\n",
        "etc/apt/sources.list": f"deb [trusted=yes] file:{DEBS} ./\n",
        "etc/sudoers.d/vagrant": f"{USER} ALL=(ALL) NOPASSWD:ALL\n",
    }


def box_recipe_hash() -> str:
    digest = hashlib.sha256()
    parts: list[tuple[str, bytes]] = [
        ("SUITE", images.SUITE.encode()),
        ("CHANGES", repr(BOX_CHANGES).encode()),
        ("MASKED", repr(MASKED).encode()),
        ("DEBS", DEBS.encode()),
        ("install-engine.sh", INSTALL_ENGINE.read_bytes()),
        ("node-entrypoint.sh", (images.RECIPES / "node-entrypoint.sh").read_bytes()),
        *((f"box/{p.relative_to(BOX_RECIPES).as_posix()}", p.read_bytes())
          for p in sorted(BOX_RECIPES.rglob("*")) if p.is_file()),
        *((f"generated/{k}", v.encode()) for k, v in sorted(generated_files().items())),
    ]
    for name, data in parts:
        digest.update(f"{name}\0{len(data)}\0".encode() + data)
    return digest.hexdigest()[:16]


def ensure_box(client: docker.DockerClient, report: Report = print, force: bool = False) -> None:
    """Build labkit/box unless a current one is there (about a minute: debootstrap, then the engine's debs)."""
    recipe = box_recipe_hash()
    if not force and images.image_is_current(client, BOX_IMAGE, recipe):
        return
    if os.geteuid() != 0:
        raise ImageBuildError(
            "The Vagrant box image (labkit/box) is missing or out of date, and building it needs root "
            "(debootstrap). Run `sudo .venv/bin/labkit up --backend vagrant` once."
        )
    if not shutil.which("debootstrap"):
        raise ImageBuildError("debootstrap is not installed (apt-get install debootstrap); `labkit setup` installs it.")
    build_dir = settings().cache_dir / f"box-{recipe}"
    shutil.rmtree(build_dir, ignore_errors=True)
    rootfs = build_dir / "rootfs"
    build_dir.mkdir(parents=True)
    try:
        _debootstrap(rootfs, build_dir, report)
        report(f"Downloading the engine's packages into the box ({', '.join(engine_packages())})")
        _engine_debs(rootfs, build_dir)
        _lay_out(rootfs)
        report("Importing the Vagrant box image")
        images.import_root(client, rootfs, BOX_IMAGE, recipe, list(BOX_CHANGES))
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    report("Box image ready")


def _debootstrap(rootfs: Path, build_dir: Path, report: Report) -> None:
    mirror = settings().debian_mirror or debian_mirror(images.SUITE)
    packages = box_packages()
    report(f"debootstrap {images.SUITE} for the Vagrant box, with {len(packages)} packages (about a minute)")
    cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", images.SUITE, str(rootfs), mirror]
    log = build_dir / "debootstrap.log"
    with log.open("w") as out:
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-5:])
        raise ImageBuildError(f"debootstrap of the box failed (exit {done.returncode}):\n{tail}")


def _engine_debs(rootfs: Path, build_dir: Path) -> None:
    """Download install-engine.sh's packages (and what they need beyond the box) into the box's repository."""
    script = build_dir / "download-debs.sh"
    script.write_text(  # `apt-get clean` first: debootstrap leaves the debs it installed in apt's cache
        "set -eu\nexport DEBIAN_FRONTEND=noninteractive\napt-get clean\napt-get update -qq\n"
        f"apt-get install -y -qq --download-only --no-install-recommends {' '.join(engine_packages())}\n"
    )
    images.run_in_root(rootfs, script, build_dir / "download-debs.log")
    repo = rootfs / DEBS.lstrip("/")
    repo.mkdir(parents=True)
    for deb in sorted((rootfs / "var/cache/apt/archives").glob("*.deb")):
        shutil.move(str(deb), repo / deb.name)
    if not any(repo.glob("docker.io_*.deb")):
        raise ImageBuildError("The engine's packages were not downloaded into the box; see download-debs.log.")
    (repo / "Packages").write_text(images.packages_index(sorted(repo.glob("*.deb"))))


def _lay_out(rootfs: Path) -> None:
    """The vagrant user, sudo, units, host keys made at first boot, the lab's resolver and mirror."""
    images.chroot(rootfs, "useradd", "--create-home", "--shell", "/bin/bash", USER)
    ssh_dir = rootfs / "home" / USER / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    shutil.copy(BOX_RECIPES / "vagrant.pub", ssh_dir / "authorized_keys")
    (ssh_dir / "authorized_keys").chmod(0o600)
    images.chroot(rootfs, "chown", "-R", f"{USER}:{USER}", f"/home/{USER}/.ssh")
    for rel, content in generated_files().items():
        dest = rootfs / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.unlink(missing_ok=True)
        dest.write_text(content)
    (rootfs / "etc/sudoers.d/vagrant").chmod(0o440)
    for unit in sorted((BOX_RECIPES / "units").glob("*.service")):
        shutil.copy(unit, rootfs / "etc/systemd/system" / unit.name)
        images.chroot(rootfs, "systemctl", "enable", unit.name)
    images.chroot(rootfs, "systemctl", "mask", *MASKED)
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()  # every box makes its own at first boot
    entrypoint = rootfs / images.ENTRYPOINT.lstrip("/")
    shutil.copy(images.RECIPES / "node-entrypoint.sh", entrypoint)
    entrypoint.chmod(0o755)
    (rootfs / "etc/hostname").unlink(missing_ok=True)
    for rel in (*images.TRIM, "var/cache/apt/archives"):
        target = rootfs / rel
        if target.is_dir():
            shutil.rmtree(target)
            target.mkdir()
