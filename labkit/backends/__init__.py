"""Cluster backends: how nodes come to exist. Chosen by name, never remembered.

``BACKENDS`` is the one table of them: the loader, the CLI's help and the tests all read it.
Adding a backend is one module and one line here.
"""

from __future__ import annotations

import importlib

from labkit.backends.base import Backend, Node, NodeStatus, RunResult
from labkit.errors import InvalidInput
from labkit.settings import settings

BACKENDS: dict[str, str] = {
    "dind": "labkit.backends.dind.DindBackend",  # containers running dockerd on the local engine
    "vagrant": "labkit.backends.vagrant.VagrantBackend",  # VMs from the project's Vagrantfile
}

__all__ = ["BACKENDS", "Backend", "Node", "NodeStatus", "RunResult", "backend_class", "get_backend"]


def backend_class(name: str) -> type[Backend]:
    """The class registered as NAME."""
    if name not in BACKENDS:
        raise InvalidInput(f"Unknown backend '{name}'. Choose one of: {', '.join(BACKENDS)}.")
    module, _, cls = BACKENDS[name].rpartition(".")
    found: type[Backend] = getattr(importlib.import_module(module), cls)
    return found


def get_backend(name: str | None, lab: str) -> Backend:
    """The backend NAME (or $LABKIT_BACKEND, else dind) for lab LAB."""
    return backend_class(name or settings().backend)(lab)
