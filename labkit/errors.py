"""Every exception labkit raises, in one tree. Each message says what happened and what to do;
the CLI prints it as one line and exits non-zero, a notebook shows it in one red line. Callers
catch types, tests assert types.

LabkitError                 a problem the user can fix
├── InvalidInput            a bad lab name, node name, node count or step reference
├── LabDefinitionError      a file in labs/ is malformed (names the file, the step, the problem)
├── EngineUnavailable       no local Docker engine answers, or it cannot be installed or started
├── ImageBuildError         the lab images cannot be built (root needed, debootstrap failed, ...)
├── BackendError            a backend cannot do what was asked (vagrant missing, a VM did not boot)
├── NotPermitted            the lab or file belongs to another user
├── LabNotRunning           the lab has no nodes: `labkit up` starts it
├── NodeNotFound            no node by that name in the lab
├── NodeDown                a node is stopped, paused or does not answer: `labkit up` restores it
├── SolutionFailed          a lab's solution did not bring the cluster to the step's end state
├── JoinRefused             a room refused a join (wrong code, joining closed, a taken name)
└── CommandFailed           a command typed into a notebook cell exited non-zero
    └── StepNotDone         in a regression run, a step whose check fails
"""

from __future__ import annotations


class LabkitError(Exception):
    """A problem the user can fix. Its message says what happened and what to do."""


class InvalidInput(LabkitError):
    """A bad lab name, node name, node count or step reference."""


class LabDefinitionError(LabkitError):
    """A lab file is malformed; the message names the file, the step and the problem."""


class EngineUnavailable(LabkitError):
    """No local Docker engine answers, or it cannot be installed or started."""


class ImageBuildError(LabkitError):
    """The lab images cannot be built."""


class BackendError(LabkitError):
    """A backend cannot do what was asked."""


class NotPermitted(LabkitError):
    """The lab or file belongs to another user."""


class LabNotRunning(LabkitError):
    """The lab has no nodes."""


class NodeNotFound(InvalidInput):
    """No node by that name in the lab."""


class NodeDown(LabkitError):
    """A node is stopped, paused or does not answer."""

    def __init__(self, node: str, state: str, lab: str = "lab") -> None:
        self.node, self.state = node, state
        flag = "" if lab == "lab" else f" --lab {lab}"
        super().__init__(f"Node {node} is {state}. `labkit up{flag}` brings it back; your swarm and "
                         "services come back with it.")


class SolutionFailed(LabkitError):
    """A lab's solution did not bring the cluster to the step's end state."""


class JoinRefused(LabkitError):
    """A room refused a join: a wrong code, joining closed, or a name already taken."""


class CommandFailed(LabkitError):
    """A command typed into a notebook cell exited non-zero."""


class StepNotDone(CommandFailed):
    """In a regression run, a step whose check fails."""
