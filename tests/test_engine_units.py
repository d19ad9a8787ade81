"""Starting the host's engine after a killed one: which pid files are stale, what the log said.

Real processes and files stand in for a killed engine's leftovers; no engine is started here.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit.engine import _last_line, stale_pid_files


@pytest.fixture
def running_as(tmp_path: Path) -> Iterator[dict[str, int]]:
    """Live processes named dockerd and sleep, as /proc shows them: the pid of each."""
    dockerd = tmp_path / "dockerd"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", dockerd)
    procs = {name: subprocess.Popen([exe, "60"]) for name, exe in
             {"dockerd": str(dockerd), "sleep": shutil.which("sleep") or "/bin/sleep"}.items()}
    yield {name: p.pid for name, p in procs.items()}
    for p in procs.values():
        p.kill()
        p.wait()


def pid_file(tmp_path: Path, name: str, pid: int | str) -> Path:
    path = tmp_path / name
    path.write_text(f"{pid}\n")
    return path


def test_a_pid_file_naming_a_running_engine_is_kept(tmp_path: Path, running_as: dict[str, int]) -> None:
    live = pid_file(tmp_path, "docker.pid", running_as["dockerd"])
    assert stale_pid_files({live: "dockerd"}) == []


def test_a_pid_now_held_by_another_program_is_stale(tmp_path: Path, running_as: dict[str, int]) -> None:
    # After the machine restarts, the killed engine's pid can belong to anything: dockerd then waited
    # 15 s on a containerd that was not there, and gave up (seen in CI).
    reused = pid_file(tmp_path, "containerd.pid", running_as["sleep"])
    assert stale_pid_files({reused: "containerd"}) == [reused]


def test_a_pid_of_no_process_and_a_garbled_file_are_stale(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = pid_file(tmp_path, "docker.pid", gone.pid)
    garbled = pid_file(tmp_path, "containerd.pid", "not a pid")
    assert stale_pid_files({dead: "dockerd", garbled: "containerd"}) == [dead, garbled]


def test_no_pid_file_is_nothing_to_remove(tmp_path: Path) -> None:
    assert stale_pid_files({tmp_path / "docker.pid": "dockerd"}) == []


def test_the_log_line_shown_is_the_last_one_this_start_wrote(tmp_path: Path) -> None:
    log = tmp_path / "dockerd.log"
    log.write_text("an earlier start's last line\n")
    start = log.stat().st_size
    with log.open("a") as f:
        f.write("level=info msg=starting\nfailed to start containerd: timeout waiting for containerd to start\n")
    assert _last_line(log, start) == "failed to start containerd: timeout waiting for containerd to start"
    assert _last_line(log, log.stat().st_size) == "(nothing written)."
    assert _last_line(tmp_path / "missing.log", 0) == "(no log)."
