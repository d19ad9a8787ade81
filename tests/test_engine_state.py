"""An engine's folder on disk: copied with its image layers hard-linked, and its running containers set
to start with the engine (plain files: no engine needed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from labkit import agent_tasks, engine_state

DATA = Path(__file__).parent / "data"
OVERLAY_TASK = "a997w13hqwdzs9tj4ls72kdnq"  # running, in DATA/agent-tasks.db (see test_agent_tasks)


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

    restarts = engine_state.start_with_engine(folder)

    assert restarts == engine_state.Restarts([engine_state.Restarted("task", "no", 0)], [])
    task = json.loads((folder / "containers/task/hostconfig.json").read_text())
    assert task["RestartPolicy"] == {"Name": "always", "MaximumRetryCount": 0} and task["Memory"] == 0
    stopped = json.loads((folder / "containers/stopped/hostconfig.json").read_text())
    assert stopped["RestartPolicy"]["Name"] == ""


def test_empty_keeps_the_folder(tmp_path: Path) -> None:
    folder = engine_folder(tmp_path / "engine")
    engine_state.empty(folder)
    assert folder.is_dir() and not any(folder.iterdir())


def overlay_task(root: Path, record: bool = True, needs: dict | None = None) -> Path:
    """ENGINE_FOLDER plus a running Swarm task's container that needs its agent (NEEDS, in its config; by
    default: on the overlay network front) (container otc, its layer and -init layer with short names),
    and the agent's record of the task (RECORD)."""
    engine_folder(root)
    folder = root / "containers" / "otc"
    folder.mkdir()
    (folder / "config.v2.json").write_text(json.dumps({
        "ID": "otc", "State": {"Running": True}, "Config": {"Labels": {engine_state.TASK_LABEL: OVERLAY_TASK}},
        **(needs or {"NetworkSettings": {"Networks": {"front": {}}}})}))
    (folder / "hostconfig.json").write_text(json.dumps({"RestartPolicy": {"Name": ""}}))
    mount = root / "image/overlay2/layerdb/mounts/otc"
    mount.mkdir(parents=True)
    for name, layer in (("mount-id", "otl"), ("init-id", "otl-init")):
        (mount / name).write_text(layer)
        (root / "overlay2" / layer / "diff").mkdir(parents=True)
        (root / "overlay2" / layer / "link").write_text(layer.upper())
        (root / "overlay2/l" / layer.upper()).symlink_to(f"../{layer}/diff")
    if record:
        (root / agent_tasks.TASKS_DB).parent.mkdir(parents=True)
        shutil.copy(DATA / "agent-tasks.db", root / agent_tasks.TASKS_DB)
    return root


def test_a_task_on_an_overlay_network_is_left_to_swarms_agent_the_same_task(tmp_path: Path) -> None:
    """Its container could not start with the engine (the overlay is made again by the agent): it goes,
    and the agent, its task set back to accepted, prepares the task and makes it a new one."""
    folder = overlay_task(tmp_path / "engine")

    restarts = engine_state.start_with_engine(folder)

    assert restarts == engine_state.Restarts([engine_state.Restarted("task", "no", 0)], [OVERLAY_TASK])
    assert agent_tasks.task_states(folder)[OVERLAY_TASK] == agent_tasks.ACCEPTED
    assert not (folder / "containers/otc").exists() and not (folder / "image/overlay2/layerdb/mounts/otc").exists()
    assert not any((folder / "overlay2" / name).exists() for name in ("otl", "otl-init", "l/OTL", "l/OTL-INIT"))
    assert (folder / "overlay2/abc/diff/bin/sh").exists() and (folder / "overlay2/l/ABC").is_symlink()
    assert (folder / "containers/task").exists()


def test_without_the_agents_record_the_engine_tries_as_for_any_other(tmp_path: Path) -> None:
    folder = overlay_task(tmp_path / "engine", record=False)

    restarts = engine_state.start_with_engine(folder)

    assert restarts.by_agent == [] and {r.container for r in restarts.by_engine} == {"task", "otc"}
    assert json.loads((folder / "containers/otc/hostconfig.json").read_text())["RestartPolicy"]["Name"] == "always"


def test_an_unreadable_record_is_as_none(tmp_path: Path) -> None:
    folder = overlay_task(tmp_path / "engine")
    (folder / agent_tasks.TASKS_DB).write_bytes(b"\0" * 8192)

    restarts = engine_state.start_with_engine(folder)

    assert restarts.by_agent == [] and (folder / "containers/otc").exists()


def test_a_manager_put_back_waits_for_its_own_manager(tmp_path: Path) -> None:
    """Its agent would dial the managers it knew (itself, on the swarm port) before its node is ready."""
    folder = engine_folder(tmp_path / "engine")
    engine_state.wait_for_own_manager(folder)  # no swarm: nothing to change
    assert not (folder / engine_state.SWARM_PEERS).exists()
    (folder / "swarm").mkdir()
    (folder / engine_state.SWARM_PEERS).write_text('[{"node_id":"n1","addr":"172.30.10.11:2377"}]')
    engine_state.wait_for_own_manager(folder)
    assert json.loads((folder / engine_state.SWARM_PEERS).read_text()) == []


@pytest.mark.parametrize("needs", [
    {"NetworkSettings": {"Networks": {"ingress": {}, "bridge": {}}}},  # a published port: the routing mesh
    {"NetworkSettings": {"Networks": {"bridge": {}}}, "SecretReferences": [{"SecretName": "db_password"}]},
    {"NetworkSettings": {"Networks": {"bridge": {}}}, "ConfigReferences": [{"ConfigName": "site"}]},
])
def test_a_task_with_secrets_configs_or_swarm_networks_is_left_to_its_agent(tmp_path: Path, needs: dict) -> None:
    """Started with its engine, a task with a secret failed ("secret store is not initialized": the agent
    holds secrets in memory) and Swarm replaced it after its 5 s restart delay."""
    folder = overlay_task(tmp_path / "engine", needs=needs)
    assert engine_state.start_with_engine(folder).by_agent == [OVERLAY_TASK]


def test_a_task_on_the_engines_own_networks_alone_starts_with_it(tmp_path: Path) -> None:
    folder = overlay_task(tmp_path / "engine", needs={"NetworkSettings": {"Networks": {"bridge": {}}},
                                                      "SecretReferences": [], "ConfigReferences": None})
    restarts = engine_state.start_with_engine(folder)
    assert restarts.by_agent == [] and {r.container for r in restarts.by_engine} == {"task", "otc"}


def test_a_task_swarm_was_stopping_stays_stopped(tmp_path: Path) -> None:
    """Its container ran when the state was saved, but Swarm no longer wanted its task running."""
    folder = overlay_task(tmp_path / "engine", needs={"NetworkSettings": {"Networks": {"bridge": {}}}})
    restarts = engine_state.start_with_engine(folder, tasks={"another"})
    assert restarts.by_agent == [] and {r.container for r in restarts.by_engine} == {"task"}  # not a task: on
    assert json.loads((folder / "containers/otc/hostconfig.json").read_text())["RestartPolicy"]["Name"] == ""
    assert "otc" in {r.container for r in engine_state.start_with_engine(folder, tasks={OVERLAY_TASK}).by_engine}


def test_a_worker_put_back_dials_the_saved_leader_first(tmp_path: Path) -> None:
    """A worker that knew a manager stopped in the state (manager1) dials the leader (manager3) first when
    put back; the leader's entry comes from the leader's own list (a manager lists itself)."""
    leader, worker = tmp_path / "manager3", tmp_path / "worker1"
    for folder in (leader, worker):
        (folder / engine_state.SWARM_PEERS).parent.mkdir(parents=True)
    (leader / engine_state.SWARM_PEERS).write_text(json.dumps(
        [{"node_id": "n1", "addr": "172.30.10.11:2377"}, {"node_id": "n3", "addr": "172.30.10.13:2377"}]))
    (worker / engine_state.SWARM_PEERS).write_text(json.dumps([{"node_id": "n1", "addr": "172.30.10.11:2377"}]))
    peer = engine_state.known_manager(leader, "172.30.10.13")
    assert peer == {"node_id": "n3", "addr": "172.30.10.13:2377"}
    assert engine_state.known_manager(leader, "172.30.10.1") is None  # not "172.30.10.13" by its prefix
    engine_state.dial_first(worker, peer)
    assert json.loads((worker / engine_state.SWARM_PEERS).read_text()) == [peer]
    assert engine_state.known_manager(tmp_path / "gone", "172.30.10.13") is None
