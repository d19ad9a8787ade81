"""Fixtures for tests against a real lab: real engines, a real multi-node swarm."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

import labkit
from labkit import engine

T = TypeVar("T")
TEST_LAB = "citest"  # a lab of its own, so tests never touch a learner's lab


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
