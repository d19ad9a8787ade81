"""An engine's folder on disk: copied with its image layers hard-linked, and its running containers set
to start with the engine (plain files: no engine needed)."""

from __future__ import annotations

import json
from pathlib import Path

from labkit import engine_state


def engine_folder(root: Path) -> Path:
    """A small engine folder: one image layer (abc), one container's layer (ctr), a database, and two
    containers, one running (with no restart policy, as a Swarm task) and one stopped."""
    layers = root / "overlay2"
    for layer in ("abc", "ctr"):
        (layers / layer / "diff" / "bin").mkdir(parents=True)
        (layers / layer / "diff" / "bin" / "sh").write_text(layer)
        (layers / layer / "link").write_text(layer.upper())
    (layers / "abc" / "diff" / "bin" / "sh").chmod(0o755)
    (layers / "abc" / "committed").write_text("")
    (layers / "l").mkdir()
    (layers / "l" / "ABC").symlink_to("../abc/diff")
    (root / "image/overlay2/layerdb/sha256/1234").mkdir(parents=True)
    (root / "image/overlay2/layerdb/sha256/1234/cache-id").write_text("abc")
    (root / "network/files").mkdir(parents=True)
    (root / "network/files/local-kv.db").write_bytes(b"bolt")
    for name, running in (("task", True), ("stopped", False)):
        folder = root / "containers" / name
        folder.mkdir(parents=True)
        (folder / "config.v2.json").write_text(json.dumps({"ID": name, "State": {"Running": running}}))
        (folder / "hostconfig.json").write_text(json.dumps({"RestartPolicy": {"Name": "", "MaximumRetryCount": 0},
                                                            "Memory": 0}))
    (root / "marker").touch()
    root.chmod(0o710)
    return root


def test_a_copy_links_the_image_layers_and_copies_what_an_engine_writes(tmp_path: Path) -> None:
    source = engine_folder(tmp_path / "source")
    target = tmp_path / "target"
    target.mkdir()

    engine_state.copy_engine(source, target, skip=frozenset({"marker"}))

    def same(path: str) -> bool:
        return (source / path).stat().st_ino == (target / path).stat().st_ino

    assert same("overlay2/abc/diff/bin/sh")  # an image layer's content: one file for every copy
    assert (target / "overlay2/abc/diff/bin/sh").stat().st_mode & 0o777 == 0o755
    assert not same("overlay2/ctr/diff/bin/sh")  # a container's layer is written: its own copy
    assert not same("overlay2/abc/link") and not same("overlay2/abc/committed")
    assert not same("network/files/local-kv.db") and (target / "network/files/local-kv.db").read_bytes() == b"bolt"
    assert (target / "overlay2/l/ABC").resolve() == (target / "overlay2/abc/diff").resolve()
    assert not (target / "marker").exists()
    assert target.stat().st_mode & 0o777 == 0o710


def test_the_containers_that_ran_start_with_the_engine_and_their_policies_are_kept(tmp_path: Path) -> None:
    folder = engine_folder(tmp_path / "engine")

    restarted = engine_state.start_with_engine(folder)

    assert restarted == [engine_state.Restarted("task", "no", 0)]
    task = json.loads((folder / "containers/task/hostconfig.json").read_text())
    assert task["RestartPolicy"] == {"Name": "always", "MaximumRetryCount": 0} and task["Memory"] == 0
    stopped = json.loads((folder / "containers/stopped/hostconfig.json").read_text())
    assert stopped["RestartPolicy"]["Name"] == ""


def test_empty_keeps_the_folder(tmp_path: Path) -> None:
    folder = engine_folder(tmp_path / "engine")
    engine_state.empty(folder)
    assert folder.is_dir() and not any(folder.iterdir())
