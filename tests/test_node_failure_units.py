"""Failing a node on purpose, without an engine: the lines said, backends that cannot do it yet, the CLI's
node commands, the status field, the notebook's functions and the cluster map's buttons."""

from __future__ import annotations

from dataclasses import asdict

import pytest
from typer.testing import CliRunner

from labkit import diagrams, nb
from labkit.backends.base import NodeStatus, failure_line
from labkit.backends.vagrant import VagrantBackend
from labkit.cli import app
from labkit.errors import BackendError
from labkit.widgets import ClusterMap
from tests.fakes import FakeBackend, FakeLab, swarm_lab


def test_each_action_says_the_new_state_and_how_to_undo_it() -> None:
    assert failure_line("worker2", "stop", True) == (
        "worker2 is off: its container was killed, like pulling the plug. `labkit node start worker2` powers it on.")
    assert failure_line("worker2", "stop", False, "l2").endswith("`labkit node start worker2 --lab l2` powers it on.")
    assert failure_line("worker2", "start", True) == "worker2 is on again and its engine answers."
    assert failure_line("worker2", "start", False).startswith("worker2 was already on")
    assert failure_line("manager1", "restart", True) == (
        "manager1 restarted: its engine shut down cleanly, started again and answers.")
    assert failure_line("manager1", "restart", False) == "manager1 was off; it is on again and its engine answers."
    assert "`labkit node connect worker1 --lab l2`" in failure_line("worker1", "disconnect", True, "l2")
    assert failure_line("worker1", "connect", True, address="172.30.11.21") == (
        "worker1 is back on the lab network at 172.30.11.21.")
    assert failure_line("worker1", "connect", False, address="172.30.11.21").startswith("worker1 was already on")
    with pytest.raises(ValueError):
        failure_line("worker1", "reboot", True)


@pytest.mark.parametrize("backend", [FakeBackend([]), VagrantBackend("lab")], ids=["fake", "vagrant"])
def test_a_backend_that_cannot_fail_nodes_says_so(backend) -> None:
    with pytest.raises(BackendError, match=f"The {backend.name} backend cannot power a node off yet"):
        backend.power("worker2", False, lambda _: None)
    with pytest.raises(BackendError, match=f"The {backend.name} backend cannot reconnect a node yet"):
        backend.partition("worker2", True, lambda _: None)


def test_status_json_keys_stay_and_network_is_added_last() -> None:
    status = FakeLab().cluster.status()
    assert list(asdict(status[0])) == ["name", "role", "engine", "swarm", "address", "network"]
    assert {s.network for s in status} == {"connected"}  # a backend that cannot cut nodes off
    assert NodeStatus("w", "worker", "stopped", "-", "1.2.3.4").network == "connected"


def test_the_node_commands_exist_and_fail_in_one_line() -> None:
    runner = CliRunner()
    help_text = runner.invoke(app, ["node", "--help"], env={"COLUMNS": "200"}).output
    for action in ("stop", "start", "restart", "disconnect", "connect"):
        assert action in help_text
    done = runner.invoke(app, ["node", "restart", "manager1", "--backend", "vagrant"], env={"COLUMNS": "200"})
    assert (done.exit_code, done.output.strip()) == (
        1, "error: The vagrant backend cannot restart a node yet: only the default backend (dind) can so far.")
    done = runner.invoke(app, ["node", "stop", "worker2", "--backend", "vagrant"], env={"COLUMNS": "200"})
    assert done.exit_code == 1
    assert done.output.strip().splitlines() == [
        "error: The vagrant backend cannot power a node off yet: only the default backend (dind) can so far."]


class Recording(FakeBackend):
    """A fake backend that does what it is asked (and says so), for the notebook's functions and buttons."""

    def __init__(self, lab: FakeLab) -> None:
        super().__init__(list(lab.nodes.values()))
        self.calls: list[tuple[str, str, bool]] = []

    def power(self, node: str, on: bool, report) -> str:
        self.calls.append(("power", node, on))
        return failure_line(node, "start" if on else "stop", True)

    def partition(self, node: str, connected: bool, report) -> str:
        self.calls.append(("partition", node, connected))
        return failure_line(node, "connect" if connected else "disconnect", True, address="10.0.0.1")


def test_the_notebook_functions_print_one_line_each(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    fake = FakeLab()
    backend = Recording(fake)
    fake.cluster.backend = backend
    monkeypatch.setattr(nb, "lab", lambda: fake.cluster)
    nb.node_stop("worker2")
    nb.node_start("worker2")
    nb.node_disconnect("worker1")
    nb.node_connect("worker1")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[0].startswith("worker2 is off") and lines[3].startswith("worker1 is back")
    assert backend.calls == [("power", "worker2", False), ("power", "worker2", True),
                             ("partition", "worker1", False), ("partition", "worker1", True)]


def test_map_buttons_call_the_backend_and_show_its_line() -> None:
    fake = swarm_lab()
    backend = Recording(fake)
    fake.cluster.backend = backend
    live = ClusterMap(fake.cluster, live_for=0)
    power, network = live.buttons["worker2"]
    assert (power.description, network.description) == ("stop", "disconnect")
    power.click()
    network.click()
    assert backend.calls == [("power", "worker2", False), ("partition", "worker2", False)]
    assert "worker2 is cut off from the lab network" in live.message.value and "<code>" in live.message.value


def test_map_buttons_show_failures_never_raise_and_the_text_record_is_unchanged() -> None:
    fake = swarm_lab()
    live = ClusterMap(fake.cluster, live_for=0)  # the fake backend cannot fail nodes: it raises BackendError
    assert set(live.buttons) == {"manager1", "worker1", "worker2"}
    live.buttons["worker1"][1].click()
    assert "✘" in live.message.value and "cannot disconnect a node yet" in live.message.value
    assert not live.buttons["worker1"][1].disabled
    bundle = live._repr_mimebundle_()
    assert bundle["text/plain"] == diagrams.tasks_text(diagrams.snapshot(fake.cluster))
    assert bundle["text/html"].startswith("<img")
    quiet = ClusterMap(fake.cluster, live_for=0, controls=False)
    assert quiet.buttons == {} and quiet._repr_mimebundle_()["text/plain"] == bundle["text/plain"]
