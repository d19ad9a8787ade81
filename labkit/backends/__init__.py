"""Cluster backends: how nodes come to exist. Chosen by name, never remembered."""

from __future__ import annotations

import os

from labkit.backends.base import Backend, Node, NodeStatus, RunResult
from labkit.errors import LabkitError

BACKENDS = ("dind", "vagrant")

__all__ = ["BACKENDS", "Backend", "Node", "NodeStatus", "RunResult", "get_backend"]


def get_backend(name: str | None, lab: str) -> Backend:
    """The backend NAME (or $LABKIT_BACKEND, else dind) for lab LAB."""
    name = name or os.environ.get("LABKIT_BACKEND") or "dind"
    if name == "dind":
        from labkit.backends.dind import DindBackend

        return DindBackend(lab)
    if name == "vagrant":
        from labkit.backends.vagrant import VagrantBackend

        return VagrantBackend(lab)
    raise LabkitError(f"Unknown backend '{name}'. Choose one of: {', '.join(BACKENDS)}.")
