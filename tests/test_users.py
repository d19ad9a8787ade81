"""A user in the docker group, not root, uses labkit as the README promises: `up`, a check, `down`.

Runs the real `labkit` command as uid 65534 (nobody) with the Docker socket's group, through setpriv:
no user account is needed. The images are built beforehand (make test's `labkit setup` does, as root).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.topology import LABEL_LAB

pytestmark = [pytest.mark.cluster, pytest.mark.root]

USER = 65534
OTHER_USER = 65533
DOCKER_SOCKET = Path("/var/run/docker.sock")


def as_user(uid: int, home: Path, *args: str, lab: str) -> subprocess.CompletedProcess[str]:
    """`labkit ARGS` as UID, in the docker group, with HOME and nothing of root's environment."""
    argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", f"--groups={DOCKER_SOCKET.stat().st_gid}",
            sys.executable, "-m", "labkit", *args]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LABKIT_LAB": lab}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, cwd="/")


@pytest.fixture
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("switching to another uid needs root (CI runs as root)")
    if not shutil.which("setpriv"):
        pytest.fail("setpriv is missing (Debian: util-linux)")
    made = tmp_path_factory.mktemp("user-home")
    made.chmod(0o755)
    for parent in made.parents:  # pytest's temp dirs are private to root: let the user through
        if parent == Path("/") or parent.stat().st_mode & stat.S_IXOTH:
            break
        parent.chmod(parent.stat().st_mode | stat.S_IXOTH)
    os.chown(made, USER, USER)
    probe = as_user(USER, made, "--version", lab="ciuser")
    if probe.returncode != 0:
        pytest.fail(f"uid {USER} cannot run {sys.executable} (make the virtualenv with a Python other users may "
                    f"run, e.g. PYTHON=/usr/bin/python3): {probe.stderr.strip()[:300]}")
    return made


def test_a_docker_group_user_runs_a_lab_of_their_own(host, home: Path) -> None:
    lab = "ciuser"
    try:
        up = as_user(USER, home, "up", lab=lab)
        assert up.returncode == 0, up.stderr
        assert "Traceback" not in up.stderr
        # Runtime files live in the user's own directory, private to them.
        run = home / ".local/state/labkit/run" / lab
        assert (run / "manager1" / "docker.sock").is_socket()
        assert run.stat().st_uid == USER
        assert stat.S_IMODE(run.stat().st_mode) == 0o700

        check = as_user(USER, home, "check", "swarm-init:info", "--answer", "inactive", lab=lab)
        assert check.returncode == 0, check.stdout + check.stderr
        assert "PASS swarm-init:info" in check.stdout
        # With no argument, `check` checks the next unfinished step, and says which.
        nxt = as_user(USER, home, "check", lab=lab)
        assert "Your next step: swarm-init:init" in nxt.stderr
        assert "FAIL swarm-init:init" in nxt.stdout

        # Another user reaching for this lab is told whose it is, in one line.
        other_home = home.parent / "other-home"
        other_home.mkdir()
        os.chown(other_home, OTHER_USER, OTHER_USER)
        other = as_user(OTHER_USER, other_home, "status", lab=lab)
        assert other.returncode != 0
        assert "Traceback" not in other.stderr
        assert f"started by another user (uid {USER})" in other.stderr

        down = as_user(USER, home, "down", lab=lab)
        assert down.returncode == 0, down.stderr
        assert host.containers.list(all=True, filters={"label": f"{LABEL_LAB}={lab}"}) == []
        assert not run.exists()
    finally:
        subprocess.run([sys.executable, "-m", "labkit", "down", "--lab", lab], capture_output=True, timeout=120)


def test_root_and_a_user_run_labs_side_by_side(lab, home: Path) -> None:
    """Root's test lab runs while the user starts, checks and removes their own."""
    mine = "ciuser2"
    try:
        assert as_user(USER, home, "up", "--workers", "1", lab=mine).returncode == 0
        status = as_user(USER, home, "status", lab=mine)
        assert status.returncode == 0 and status.stdout.count("answering") == 2, status.stdout + status.stderr
        assert lab["manager1"].engine_answers()  # root's lab is untouched
    finally:
        as_user(USER, home, "down", lab=mine)
        subprocess.run([sys.executable, "-m", "labkit", "down", "--lab", mine], capture_output=True, timeout=120)
