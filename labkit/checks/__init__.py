"""Checks: plain functions that look at the live cluster and return a Result.

A check is registered by name (the ``check`` of a step in ``labs/``). A check
for a step that only looks (a step with a ``question``) also registers how to
find the right answer, which is what ``labkit solve`` gives. Checks never
raise on an unexpected state: the runner turns any exception into a failed
result that says what happened.
"""

from __future__ import annotations

from labkit.checks.base import ANSWERS, CHECKS, Context, Result

# Importing the modules registers their checks.
from labkit.checks import configs, failures, health, managers, networks, pki, placement, services, swarm, trust, updates  # noqa: F401  isort: skip
from labkit.checks import stacks  # noqa: F401  isort: skip
from labkit.checks import secrets  # noqa: F401  isort: skip
from labkit.checks import autolock  # noqa: F401  isort: skip

__all__ = ["ANSWERS", "CHECKS", "Context", "Result"]
