"""Reading a file beneath a node's root without following its symbolic links (dind's `read_text`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labkit.backends.dind import read_beneath


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "var/lib/docker/swarm").mkdir(parents=True)
    (tmp_path / "var/lib/docker/swarm/cert").write_bytes(b"PEM\n")
    (tmp_path / "var/link").symlink_to("/etc")  # a link in the node points into the node, not the host
    (tmp_path / "var/lib/docker/swarm/file-link").symlink_to("cert")
    os.mkfifo(tmp_path / "fifo")
    return tmp_path


def test_a_file_is_read_part_by_part(root: Path) -> None:
    assert read_beneath(root, "/var/lib/docker/swarm/cert") == b"PEM\n"
    assert read_beneath(root, "var/./lib/docker/swarm/cert") == b"PEM\n"


def test_a_symbolic_link_anywhere_on_the_way_is_left_to_the_node(root: Path) -> None:
    assert read_beneath(root, "/var/link/hostname") is None
    assert read_beneath(root, "/var/lib/docker/swarm/file-link") is None
    assert read_beneath(root, "/var/lib/../lib/docker/swarm/cert") is None


def test_no_regular_file_there_is_said_so(root: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_beneath(root, "/var/lib/docker/swarm/missing")
    with pytest.raises(FileNotFoundError):
        read_beneath(root, "/fifo")  # opened without waiting for a writer
    with pytest.raises(FileNotFoundError):
        read_beneath(root, "/var/lib/docker")


def test_a_root_out_of_reach_is_left_to_the_node(tmp_path: Path) -> None:
    assert read_beneath(tmp_path / "gone", "/etc/hostname") is None
    assert read_beneath(tmp_path, "/") is None
