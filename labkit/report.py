"""Small types that travel up through every layer: progress callbacks and doctor findings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Report = Callable[[str], None]
"""A progress callback: one short line for the person waiting ("Creating manager1, worker1")."""


def quiet(_: str) -> None:
    """A Report that says nothing."""


@dataclass(frozen=True)
class Finding:
    """One line of `labkit doctor`: what was looked at, ok/warn/fail, and what it means."""

    name: str
    level: str  # ok | warn | fail
    detail: str
