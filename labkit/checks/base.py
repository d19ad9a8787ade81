"""What every check gets (Context) and gives (Result), and the registry."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, TypeVar, cast

import docker

from labkit.backends.base import Node
from labkit.cluster import Cluster
from labkit.errors import LabDefinitionError, LabNotRunning
from labkit.labs import Step
from labkit.swarm import leader_hostname, local_state, task_containers

ASK = "Run the command(s), then answer"  # how a question step's summary begins while it awaits the answer
ASK_PREDICT = "Predict, run the command(s), then answer"


@dataclass(frozen=True)
class Result:
    """The outcome of a check, in plain words."""

    passed: bool
    summary: str  # one sentence: what is right, or what is wrong
    evidence: tuple[str, ...] = ()  # what was seen on the cluster
    hint: str | None = None  # what to try (failures only)
    pending: bool = False  # the cluster is still converging: waiting may help
    seconds: float = 0.0  # how long the check took, waits included

    @property
    def awaits_answer(self) -> bool:
        """Whether it only waits for the learner's answer (the cluster is as the step wants)."""
        return not self.passed and self.summary.startswith((ASK, ASK_PREDICT))


T = TypeVar("T")


def sections(out: str) -> dict[str, str]:
    """OUT of a script that leads each part with an '== name' line (`echo '== name'; command; ...`): each
    part's text by name, its lines as printed."""
    found: dict[str, str] = {}
    name = ""
    for line in out.splitlines(keepends=True):
        if line.startswith("== "):
            name = line[3:].strip()
            found[name] = ""
        elif name:
            found[name] += line
    return found


def per_look(helper: Callable[[Context], T]) -> Callable[[Context], T]:
    """HELPER(ctx) asked once per look at the cluster: a question's true answer and its check, asked one
    after the other on the same look (Context.look), share what it found, where each asked again (a helper
    that sends requests from containers costs an exec or a container run each time). HELPER must not
    depend on the learner's answer."""
    key = f"{helper.__module__}.{helper.__qualname__}"

    @functools.wraps(helper)
    def once(ctx: Context) -> T:
        if key not in ctx.look:
            ctx.look[key] = helper(ctx)
        return cast(T, ctx.look[key])

    return once


@dataclass
class Context:
    """The cluster and the step being checked, with the learner's answer if any."""

    cluster: Cluster
    step: Step
    answer: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    look: dict[str, Any] = field(default_factory=dict)  # what one look found, shared: see per_look

    def __post_init__(self) -> None:
        self.params = {**self.step.params, **self.params}

    @cached_property
    def manager(self) -> Node:
        """The manager the checks ask: with several managers, the leader (else the first whose engine answers
        and manages the swarm); else manager1."""
        managers = self.cluster.managers
        if not managers:
            raise LabNotRunning(f"Lab '{self.cluster.lab}' has no manager node. Start the lab with `labkit up`.")
        if len(managers) == 1:
            return managers[0]
        answering = [n for n in managers if n.engine_answers()]
        for node in answering:  # the leader, as the first manager that knows one says (only a manager with
            try:                # control lists the nodes): a manager back from a lost cluster claims control
                leader = leader_hostname(node.docker.api)  # until it learns it has none
            except docker.errors.APIError:  # not a manager now, or no quorum, so no leader to name: the next
                continue
            return next((n for n in answering if n.name == leader), node)
        able = [n for n in answering if local_state(n.docker).get("ControlAvailable")]
        return able[0] if able else managers[0]

    @cached_property
    def api(self) -> docker.APIClient:
        """Low-level API of the first manager's engine."""
        return self.manager.docker.api

    def swarm_state(self, node: Node) -> dict[str, Any]:
        return local_state(node.docker)

    def swarm_active(self) -> bool:
        """Whether the first manager leads or manages a swarm (so its engine answers the control API)."""
        state = self.swarm_state(self.manager)
        return state.get("LocalNodeState") == "active" and bool(state.get("ControlAvailable"))

    def not_initialised(self) -> Result:
        """The result for any step that needs a swarm when there is none yet (or manager1 is only a worker)."""
        state = self.swarm_state(self.manager)
        name = self.manager.name
        if state.get("LocalNodeState") == "active":
            return Result(False, f"{name} is in a swarm, but as a worker: it cannot manage it.",
                          (f"{name}: Swarm: active, worker",),
                          hint=f"On {name} run `docker swarm leave --force` (and on any node that ran init "
                          f"instead), then `docker swarm init` on {name} and join the others to it.")
        return Result(False, f"Swarm mode is not active on {name} yet.",
                      (f"{name}: Swarm: {state.get('LocalNodeState')}",),
                      hint=f"Run `docker swarm init` on {name} first (lab swarm-init, step init).")

    def service(self, name: str) -> dict[str, Any] | None:
        """The swarm service called NAME, as the first manager lists it (None when there is none)."""
        return next((s for s in self.api.services() if s["Spec"]["Name"] == name), None)

    def required_service(self, name: str) -> tuple[dict[str, Any] | None, Result | None]:
        """The service NAME, or the failure that says why there is none: no swarm yet, or not created
        (with the step's first hint)."""
        if not self.swarm_active():
            return None, self.not_initialised()
        service = self.service(name)
        if service is None:
            return None, Result(False, f"There is no service called {name} yet.", hint=self.step.hints[0])
        return service, None

    def running_tasks(self, service: dict[str, Any]) -> list[dict[str, Any]]:
        """SERVICE's tasks that are meant to run and do."""
        tasks = self.api.tasks(filters={"service": service["ID"], "desired-state": "running"})
        return [t for t in tasks if t["Status"]["State"] == "running"]

    def not_running(self, service: dict[str, Any]) -> list[str]:
        """SERVICE's tasks that are meant to run and do not yet, each with its node, state and Swarm's words:
        what a learner (or a failed regression run) needs to tell a slow start from a stuck one."""
        tasks = self.api.tasks(filters={"service": service["ID"], "desired-state": "running"})
        hosts = self.hostnames()
        name = service["Spec"]["Name"]
        found = []
        for t in sorted(tasks, key=lambda t: t.get("Slot", 0)):
            status = t["Status"]
            if status["State"] == "running":
                continue
            where = f" on {hosts.get(t.get('NodeID', ''), '?')}" if t.get("NodeID") else ""
            why = status.get("Err") or status.get("Message", "")
            said = f" ({why})" if why and why != status["State"] else ""
            found.append(f"{name}.{t.get('Slot', '?')}{where}: {status['State']}{said}")
        return found

    def task_container(self, service: str) -> tuple[Node, Any] | None:
        """A running container of SERVICE, as its node's own engine lists it, and that node (None: none runs)."""
        for node in self.cluster.nodes:
            found = task_containers(node.docker, service)
            if found:
                return node, found[0]
        return None

    def nodes_by_hostname(self) -> dict[str, dict[str, Any]]:
        """Swarm nodes by hostname; where a host left and joined again, its newest entry. A node that has
        just joined, whose engine has not described itself yet (no hostname: a CI check met one), is left out
        until it has, as if it had not joined yet."""
        found: dict[str, dict[str, Any]] = {}
        for n in sorted(self.api.nodes(), key=lambda n: timestamp(n.get("CreatedAt", "1970-01-01T00:00:00Z"))):
            if (n.get("Description") or {}).get("Hostname"):
                found[n["Description"]["Hostname"]] = n
        return found

    def hostnames(self) -> dict[str, str]:
        """Swarm node id -> hostname, as the manager sees them ('?' for one not described yet)."""
        return {n["ID"]: (n.get("Description") or {}).get("Hostname") or "?" for n in self.api.nodes()}


CheckFn = Callable[[Context], Result]
CHECKS: dict[str, CheckFn] = {}
ANSWERS: dict[str, Callable[[Context], str]] = {}


def check(name: str, answer: Callable[[Context], str] | None = None) -> Callable[[CheckFn], CheckFn]:
    """Register a check under NAME (and, for question steps, how to find the answer)."""

    def register(fn: CheckFn) -> CheckFn:
        if name in CHECKS:  # a second module with the same name would silently replace the first
            raise LabDefinitionError(f"two checks are called {name!r}: {CHECKS[name].__module__} and {fn.__module__}")
        CHECKS[name] = fn
        if answer is not None:
            ANSWERS[name] = answer
        return fn

    return register


def normalise(text: str) -> str:
    """Lower case, words only: 'Yes, it can.' -> 'yes it can' (dashes and dots inside words stay)."""
    words = re.sub(r"[,;:!?()`'\"]+", " ", text.lower()).split()
    return " ".join(words).strip(".- ")


def matches(answer: str, accepted: Iterable[str]) -> bool:
    """ANSWER says one of the ACCEPTED answers: exactly, or as its first words ('yes, it can' says 'yes')."""
    given = normalise(answer)
    return any(given == a or given.startswith(a + " ") for a in map(normalise, accepted) if a)


def explanation(answer: str, explain: dict[str, str]) -> str | None:
    """Why ANSWER is wrong, from the step's table of likely wrong answers (a key matches the whole
    answer, or one of its words)."""
    given = normalise(answer)
    words = set(re.split(r"[^a-z0-9.-]+", given))
    for key, why in explain.items():
        k = normalise(key)
        if k == given or (" " not in k and k in words):
            return why
    return None


def judge_answer(ctx: Context, accepted: Iterable[str], evidence: Iterable[str] = (),
                 explain: dict[str, str] | None = None) -> Result:
    """Compare the learner's answer with the truth. Evidence is shown only once it is right; a likely
    wrong answer (the step's ``explain`` table, or EXPLAIN from the check) gets its own explanation."""
    accepted = [a for a in accepted if a]
    question = ctx.step.question or "the question"
    hint = ctx.step.hints[0] if ctx.step.hints else None
    if ctx.answer is None or not ctx.answer.strip():
        verb = ASK_PREDICT if ctx.step.predict else ASK
        return Result(False, f"{verb}: {question}", hint=hint)
    if matches(ctx.answer, accepted):
        return Result(True, f"Right: {ctx.answer.strip().rstrip('.')}.", tuple(evidence))
    why = explanation(ctx.answer, {**ctx.step.explain, **(explain or {})})
    if why:
        return Result(False, f"'{ctx.answer.strip()}' is not what the cluster says: {why}", hint=hint)
    return Result(False, f"'{ctx.answer.strip()}' is not what the cluster says. Look again: {question}", hint=hint)


def node_set(text: str) -> set[str]:
    """The lab node names in a free-text answer ('worker1 and worker2' -> {'worker1', 'worker2'})."""
    return set(re.findall(r"\b(?:manager|worker)[1-9][0-9]*\b", text.lower()))


def timestamp(stamp: str) -> datetime:
    """An engine timestamp ('2026-11-25T13:45:01.123456789Z') as a datetime."""
    return datetime.fromisoformat(stamp[:26].rstrip("Z") + "+00:00")


def replicas_of(service: dict[str, Any], default: int | None = None) -> int | None:
    """How many replicas SERVICE asks for (DEFAULT for a global service, which has no count)."""
    replicated = (service["Spec"].get("Mode") or {}).get("Replicated") or {}
    return replicated.get("Replicas", default)


def image_of(spec: dict[str, Any]) -> str:
    """A container spec's image as typed ('nginx:1.25'), without the digest Swarm pinned."""
    return str(spec.get("Image", "")).split("@")[0]
