"""The entrypoint's cgroup decisions (node and seat modes), on fake cgroup trees: cgroup v2 hosts (Docker
Desktop, recent Ubuntu) and cgroup v1 hosts (this machine). LABKIT_DRY_RUN prints each mount instead."""

from __future__ import annotations

import subprocess
from pathlib import Path

from labkit.images import RECIPES

ENTRYPOINT = RECIPES / "node-entrypoint.sh"


def cgroups(root: Path, mounts: str, own: str = "") -> list[str]:
    """Run `labkit-entrypoint cgroups` on the fake tree ROOT with /proc/mounts MOUNTS and /proc/self/cgroup
    OWN; the mounts it would do."""
    (root.parent / "mounts").write_text(mounts)
    (root.parent / "self-cgroup").write_text(own)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CGROUP_ROOT": str(root),
           "PROC_MOUNTS": str(root.parent / "mounts"), "PROC_SELF_CGROUP": str(root.parent / "self-cgroup"),
           "LABKIT_DRY_RUN": "1"}
    done = subprocess.run(["sh", str(ENTRYPOINT), "cgroups"], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def v2_tree(tmp_path: Path) -> Path:
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "cgroup.procs").write_text("1\n23\n42\n")
    (root / "cgroup.subtree_control").write_text("")
    return root


def test_cgroup_v2_moves_every_process_into_a_child_and_delegates_every_controller(tmp_path: Path) -> None:
    root = v2_tree(tmp_path)
    done = cgroups(root, f"cgroup2 {root} cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n")
    assert done == []  # already writable: no remount
    assert (root / "init/cgroup.procs").read_text().split() == ["1", "23", "42"]
    assert (root / "cgroup.subtree_control").read_text().split() == ["+cpuset", "+cpu", "+io", "+memory", "+pids"]


def test_a_read_only_cgroup_v2_mount_is_made_writable_first(tmp_path: Path) -> None:
    root = v2_tree(tmp_path)
    assert cgroups(root, f"cgroup2 {root} cgroup2 ro,nosuid,nodev,noexec,relatime 0 0\n") == [
        f"mount -o remount,rw {root}"]


def test_cgroup_v1_mounts_each_read_only_controller_afresh_and_leaves_writable_ones(tmp_path: Path) -> None:
    """Where /proc/self/cgroup names no group of its own (a container at the hierarchy's root)."""
    root = tmp_path / "cgroup"
    root.mkdir()
    mounts = "\n".join([
        f"tmpfs {root} tmpfs ro,nosuid,nodev,noexec,mode=755 0 0",
        f"cgroup {root}/cpu,cpuacct cgroup ro,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0",
        f"cgroup {root}/systemd cgroup ro,nosuid,nodev,noexec,relatime,xattr,name=systemd 0 0",
        f"cgroup {root}/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0",
        f"cgroup {root}/elogind cgroup ro,relatime,name=elogind 0 0",
        "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0",
    ]) + "\n"
    assert cgroups(root, mounts) == [
        f"mount -o remount,rw {root}",
        f"umount {root}/cpu,cpuacct",
        f"mount -t cgroup -o cpu,cpuacct cgroup {root}/cpu,cpuacct",
        f"umount {root}/systemd",
        f"mount -t cgroup -o none,xattr,name=systemd cgroup {root}/systemd",
        f"umount {root}/elogind",
        f"mount -t cgroup -o none,name=elogind cgroup {root}/elogind",
    ]
    assert not (root / "init").exists()  # the v2 dance is for v2 only


def test_cgroup_v1_puts_the_containers_own_group_in_place_so_nested_containers_stay_under_its_limits(
        tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    root.mkdir()
    mounts = "\n".join([
        f"cgroup {root}/memory cgroup ro,nosuid,nodev,noexec,relatime,memory 0 0",
        f"cgroup {root}/cpu,cpuacct cgroup ro,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0",
        f"cgroup {root}/systemd cgroup ro,nosuid,nodev,noexec,relatime,xattr,name=systemd 0 0",
    ]) + "\n"
    own = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n0::/\n"
    stage = "/run/labkit-cgroups"
    assert cgroups(root, mounts, own) == [
        f"mkdir -p {stage}/memory",
        f"mount -t cgroup -o memory cgroup {stage}/memory",
        f"umount {root}/memory",
        f"mount --bind {stage}/memory/docker/abc {root}/memory",
        f"umount {stage}/memory",
        f"mkdir -p {stage}/cpu,cpuacct",
        f"mount -t cgroup -o cpu,cpuacct cgroup {stage}/cpu,cpuacct",
        f"umount {root}/cpu,cpuacct",
        f"mount --bind {stage}/cpu,cpuacct/docker/abc {root}/cpu,cpuacct",
        f"umount {stage}/cpu,cpuacct",
        f"mkdir -p {stage}/systemd",
        f"mount -t cgroup -o none,xattr,name=systemd cgroup {stage}/systemd",
        f"umount {root}/systemd",
        f"mount --bind {stage}/systemd/docker/abc {root}/systemd",
        f"umount {stage}/systemd",
    ]
