"""Fixtures for tests against a real lab: real engines, a real multi-node swarm.

Markers (pyproject.toml, --strict-markers) say what a test needs: `engine` or `cluster` for a Docker
engine, `destructive` for a test that changes a lab (it gets a lab of its own, so no result depends on
test order), `browser`, `notebooks`, `vagrant`, `root`. `make unit` runs every test with none of
them, with DOCKER_HOST pointing nowhere; a test that asks for an engine fixture without saying so
is refused at collection.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

import labkit
from labkit import engine

T = TypeVar("T")
# A lab of its own, so tests never touch a learner's lab; one per pytest-xdist worker (make test runs two).
TEST_LAB = "citest" + os.environ.get("PYTEST_XDIST_WORKER", "").removeprefix("gw")
# The slowest modules first, so that `pytest -n 2 --dist loadfile` starts them at once on both workers
# instead of leaving one of them for the end (figures from --durations on this 2-core machine).
SLOWEST_FIRST = ["test_walkthrough", "test_notebooks", "test_vagrant_docker", "test_seat",
                 "test_node_failure_commands", "test_cluster", "test_faults", "test_browser"]


# The markers of tests that need more than Python (pyproject.toml; the Makefile's UNIT_MARKERS leaves them out).
NEEDS_MORE = ("engine", "cluster", "browser", "notebooks", "vagrant", "root", "seat", "hub")


@pytest.fixture(autouse=True)
def own_state_folder(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that needs no engine keeps what it records (progress, kept keys) in a folder of its own,
    never in the learner's (~/.local/share/labkit: its fake labs are named like real ones, "lab")."""
    if not any(request.node.get_closest_marker(marker) for marker in NEEDS_MORE):
        monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path_factory.mktemp("state")))


def labkit_cli(*args: str, lab: str | None = TEST_LAB, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the real `labkit` command, as a user would."""
    argv = [sys.executable, "-m", "labkit", *args]
    env = {**os.environ, **({"LABKIT_LAB": lab} if lab else {})}
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


def wait_until(fn: Callable[[], T], timeout: float, what: str, interval: float = 0.25) -> T:
    """Poll FN until it returns something truthy; fail saying WHAT was awaited."""
    deadline = time.monotonic() + timeout
    last: T = fn()
    while not last:
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")
        time.sleep(interval)
        last = fn()
    return last


@pytest.fixture(scope="session")
def host():
    if not engine.engine_running():
        pytest.fail("No Docker engine answers: run `labkit setup` (make test does) first.")
    return engine.host_client()


@pytest.fixture(scope="session")
def lab(host) -> Iterator[labkit.Cluster]:
    """A fresh 3-node lab (bare engines, no swarm), removed at the end."""
    labkit_cli("down")
    done = labkit_cli("up")
    assert done.returncode == 0, done.stderr
    yield labkit.cluster(TEST_LAB)
    labkit_cli("down")


ENGINE_FIXTURES = {"host", "lab", "own_lab"}
NEEDS_ENGINE = {"engine", "cluster"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        module = item.nodeid.partition("::")[0].rpartition("/")[2].removesuffix(".py")
        return SLOWEST_FIRST.index(module) if module in SLOWEST_FIRST else len(SLOWEST_FIRST)

    items.sort(key=rank)  # stable: the order within a module is kept
    for item in items:
        marks = {m.name for m in item.iter_markers()}
        uses = ENGINE_FIXTURES & set(getattr(item, "fixturenames", ()))
        if uses and not marks & NEEDS_ENGINE:
            raise pytest.UsageError(f"{item.nodeid} uses {', '.join(sorted(uses))} but is not marked engine or "
                                    "cluster: `make unit` would run it without an engine.")
        if "destructive" in marks and "own_lab" not in getattr(item, "fixturenames", ()):
            raise pytest.UsageError(f"{item.nodeid} is destructive but does not use the own_lab fixture.")


@pytest.fixture(scope="module")
def own_lab(request: pytest.FixtureRequest, host) -> Iterator[labkit.Cluster]:
    """A fresh 3-node lab for this test module alone (named after it), for tests that change a lab."""
    name = "ci" + re.sub(r"[^a-z0-9]", "", request.module.__name__.rpartition(".")[2].removeprefix("test_"))[:24]
    labkit_cli("down", lab=name)
    done = labkit_cli("up", lab=name)
    assert done.returncode == 0, done.stderr
    yield labkit.cluster(name)
    labkit_cli("down", lab=name)
