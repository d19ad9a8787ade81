"""Lab definitions: load, validate and look up the files in ``labs/``.

Each ``labs/NN-ID.toml`` is the single source of one lab's steps: the node a
step runs on, the commands shown, the check (by name, with parameters), the
question a learner answers (for steps that look rather than change), hints,
and the solution. Notebooks and the CLI read them from here.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.errors import InvalidInput, LabDefinitionError, LabkitError
from labkit.fields import fields_in, problem
from labkit.settings import settings
from labkit.topology import Topology, parse_node_name

if TYPE_CHECKING:
    from labkit.progress import Progress

_ID_RE = re.compile(r"[a-z][a-z0-9-]*")
_FILE_RE = re.compile(r"(\d+)-([a-z][a-z0-9-]*)\.toml")
HOST = "host"  # a command for labkit itself, not for a node: `labkit node stop worker2`
_HOST_RE = re.compile(r"labkit node (stop|start|restart|disconnect|connect) ((?:manager|worker)[1-9][0-9]*)")
STARTS = ("previous", "swarm")  # a lab begins where the previous one ended, or on a fresh swarm of its nodes


def host_action(run: str) -> tuple[str, str]:
    """`labkit node stop worker2` -> ('stop', 'worker2'): the only commands a step may give labkit itself."""
    m = _HOST_RE.fullmatch(run.strip())
    if not m:
        raise LabDefinitionError(
            f"a host command is `labkit node stop|start|restart|disconnect|connect NODE`, not {run!r}")
    return m.group(1), m.group(2)


@dataclass(frozen=True)
class Command:
    node: str
    run: str  # a shell command; may hold {fields} (labkit.fields)
    varies: bool = False  # its output differs from run to run (notebook regression skips it)
    fails: bool = False  # it is meant to fail (e.g. a manager-only command on a worker): shown, not an error
    own_cell: bool = False  # starts a notebook cell of its own (the learner reads the output before it)


@dataclass(frozen=True)
class Step:
    lab: str
    id: str
    title: str
    node: str
    commands: tuple[Command, ...]
    check: str
    params: dict[str, Any] = field(default_factory=dict)
    hints: tuple[str, ...] = ()
    solution: tuple[Command, ...] = ()
    question: str | None = None
    wait: float = 0.0  # seconds a check may wait for the cluster to converge
    text: str = ""  # what the step teaches, in Markdown (the notebooks show it)
    predict: bool = False  # the question is asked before the commands that answer it
    explain: dict[str, str] = field(default_factory=dict)  # likely wrong answer -> why it is wrong

    @property
    def ref(self) -> str:
        return f"{self.lab}:{self.id}"


@dataclass(frozen=True)
class Lab:
    id: str
    order: int
    title: str
    slides: str
    intro: str
    steps: tuple[Step, ...]
    path: Path
    learned: tuple[str, ...] = ()  # "What you learned": one bullet each, linking back to its problem
    topology: Topology = field(default_factory=Topology)  # the nodes it needs (`nodes = { managers = 3, workers = 2 }`)
    start: str = "previous"  # "swarm": it begins on a fresh lab of its nodes, swarm formed (`labkit up --swarm`)

    @property
    def fresh(self) -> bool:
        """Whether the lab begins on a fresh swarm rather than where the previous lab ended."""
        return self.start == "swarm"

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        known = ", ".join(s.id for s in self.steps)
        raise InvalidInput(f"Lab '{self.id}' has no step '{step_id}'. Its steps: {known}.")


def load_lab(path: Path, known_checks: set[str] | None = None) -> Lab:
    """Read and validate one lab file; any problem is a LabDefinitionError naming it."""
    m = _FILE_RE.fullmatch(path.name)
    if not m:
        raise LabDefinitionError(f"{path}: lab files are named NN-lab-id.toml (e.g. 01-swarm-init.toml)")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise LabDefinitionError(f"{path}: not valid TOML: {exc}") from None
    lab_id = m.group(2)
    where = f"{path}"
    _only(data, {"title", "slides", "intro", "steps", "learned", "nodes", "start"}, where)
    topology = _topology(data.get("nodes", {}), where)
    start = data.get("start", "previous")
    if start not in STARTS:
        raise LabDefinitionError(f"{where}: 'start' is \"previous\" (where the lab before ended) or \"swarm\" "
                                 f"(a fresh swarm of its nodes), not {start!r}")
    if topology != Topology() and start != "swarm":
        raise LabDefinitionError(f"{where}: a lab with its own 'nodes' begins on a fresh swarm of them: "
                                 "add start = \"swarm\"")
    learned = data.get("learned", [])
    if not isinstance(learned, list) or not all(isinstance(b, str) and b.strip() for b in learned):
        raise LabDefinitionError(f"{where}: 'learned' must be a list of text (3 to 5 bullets)")
    title = _text(data, "title", where)
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise LabDefinitionError(f"{where}: needs at least one [[steps]] table")
    steps: list[Step] = []
    for i, raw in enumerate(raw_steps, 1):
        step = _step(lab_id, raw, f"{path}: step {i}", known_checks)
        if any(s.id == step.id for s in steps):
            raise LabDefinitionError(f"{path}: step '{step.id}': the id is used twice")
        steps.append(step)
    names = {spec.name for spec in topology.nodes}
    for step in steps:
        for command in (*step.commands, *step.solution):
            node = host_action(command.run)[1] if command.node == HOST else command.node
            if node not in names or step.node not in names:
                missing = node if node not in names else step.node
                raise LabDefinitionError(f"{path}: step '{step.id}': the lab has no node {missing} (its nodes: "
                                         f"{', '.join(sorted(names))}; a lab may declare more with 'nodes')")
    return Lab(lab_id, int(m.group(1)), title, str(data.get("slides", "")), str(data.get("intro", "")).strip(),
               tuple(steps), path, tuple(b.strip() for b in learned), topology, str(start))


def _topology(raw: Any, where: str) -> Topology:
    if not isinstance(raw, dict) or set(raw) - {"managers", "workers"} or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in raw.values()):
        raise LabDefinitionError(f"{where}: 'nodes' is a table like {{ managers = 3, workers = 2 }}")
    try:
        return Topology(raw.get("managers", Topology().managers), raw.get("workers", Topology().workers))
    except LabkitError as exc:
        raise LabDefinitionError(f"{where}: 'nodes': {exc}") from None


def _step(lab_id: str, raw: Any, where: str, known_checks: set[str] | None) -> Step:
    if not isinstance(raw, dict):
        raise LabDefinitionError(f"{where}: a step must be a table")
    if isinstance(raw.get("id"), str):
        where = f"{where.rsplit(': step', 1)[0]}: step '{raw['id']}'"
    _only(raw, {"id", "title", "text", "node", "commands", "check", "params", "hints", "solution", "question",
                "wait", "predict", "explain"}, where)
    step_id = _text(raw, "id", where)
    if not _ID_RE.fullmatch(step_id):
        raise LabDefinitionError(f"{where}: id '{step_id}' must be lower-case letters, digits and dashes")
    node = _node(_text(raw, "node", where), where)
    check = _text(raw, "check", where)
    if known_checks is not None and check not in known_checks:
        raise LabDefinitionError(f"{where}: unknown check '{check}'; known checks: {', '.join(sorted(known_checks))}")
    question = raw.get("question")
    if question is not None and (not isinstance(question, str) or not question.strip()):
        raise LabDefinitionError(f"{where}: 'question' must be non-empty text")
    solution = _commands(raw.get("solution", []), node, f"{where}: solution")
    if not solution and question is None:
        raise LabDefinitionError(f"{where}: a step that changes the cluster needs a solution "
                                 "(or a question, for a step that only looks)")
    hints = raw.get("hints", [])
    if not isinstance(hints, list) or not hints or not all(isinstance(h, str) and h.strip() for h in hints):
        raise LabDefinitionError(f"{where}: 'hints' must be a non-empty list of text")
    params = raw.get("params", {})
    if not isinstance(params, dict):
        raise LabDefinitionError(f"{where}: 'params' must be a table")
    predict = raw.get("predict", False)
    if not isinstance(predict, bool) or (predict and question is None):
        raise LabDefinitionError(f"{where}: 'predict' is true or false, and needs a 'question' to ask first")
    explain = raw.get("explain", {})
    if not isinstance(explain, dict) or not all(isinstance(v, str) and v.strip() for v in explain.values()):
        raise LabDefinitionError(f"{where}: 'explain' must be a table of wrong answer = \"why it is wrong\"")
    if explain and question is None:
        raise LabDefinitionError(f"{where}: 'explain' needs a 'question' whose wrong answers it explains")
    wait = raw.get("wait", 0)
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait <= 300:
        raise LabDefinitionError(f"{where}: 'wait' must be a number of seconds from 0 to 300")
    return Step(lab_id, step_id, _text(raw, "title", where), node,
                _commands(raw.get("commands"), node, f"{where}: commands", required=True), check, params,
                tuple(hints), solution, question, float(wait), str(raw.get("text", "")).strip(), predict,
                {str(k): v.strip() for k, v in explain.items()})


def _only(data: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise LabDefinitionError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")


def _text(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise LabDefinitionError(f"{where}: missing '{key}' (text)")
    return value


def _node(name: str, where: str) -> str:
    try:
        return parse_node_name(name).name
    except LabkitError:
        raise LabDefinitionError(f"{where}: '{name}' is not a node name (manager1, worker1, ...)") from None


def _commands(raw: Any, default_node: str, where: str, required: bool = False) -> tuple[Command, ...]:
    if raw is None or raw == []:
        if required:
            raise LabDefinitionError(f"{where}: needs at least one command")
        return ()
    if not isinstance(raw, list):
        raise LabDefinitionError(f"{where}: must be a list")
    commands: list[Command] = []
    for item in raw:
        if isinstance(item, str):
            command = Command(default_node, item)
        elif (isinstance(item, dict) and set(item) <= {"node", "run", "varies", "fails", "own_cell"}
              and isinstance(item.get("run"), str)):
            node = str(item.get("node", default_node))
            if node == HOST:
                try:
                    host_action(item["run"])
                except LabDefinitionError as exc:
                    raise LabDefinitionError(f"{where}: {exc}") from None
            command = Command(node if node == HOST else _node(node, where), item["run"],
                              bool(item.get("varies", False)), bool(item.get("fails", False)),
                              bool(item.get("own_cell", False)))
        else:
            raise LabDefinitionError(f"{where}: each command is text or {{ node = ..., run = ... }}, not {item!r}")
        _check_template(command.run, where)
        commands.append(command)
    return tuple(commands)


def _check_template(text: str, where: str) -> None:
    for name in fields_in(text):
        why = problem(name)
        if why:
            raise LabDefinitionError(f"{where}: {why} (in {text!r})")


def load_labs(directory: Path | None = None, *, known_checks: Collection[str]) -> list[Lab]:
    """Every lab in course order. KNOWN_CHECKS: the check names a step may use (the caller knows them:
    labs are pure data and import no checks; ``labkit.runner.course()`` passes the registry's)."""
    directory = directory or settings().labs_dir
    paths = sorted(directory.glob("*.toml"))
    if not paths:
        raise LabDefinitionError(f"No lab definitions in {directory}.")
    labs = [load_lab(p, set(known_checks)) for p in paths]
    labs.sort(key=lambda lab: lab.order)
    for earlier, later in itertools.pairwise(labs):
        if earlier.id == later.id or earlier.order == later.order:
            same = "id" if earlier.id == later.id else "number"
            raise LabDefinitionError(f"{later.path}: the lab {same} is also used by {earlier.path}")
    return labs


def find(ref: str, labs: list[Lab]) -> tuple[Lab, Step | None]:
    """LAB or LAB:STEP -> the lab and the step (None for a whole lab)."""
    lab_id, _, step_id = ref.partition(":")
    for lab in labs:
        if lab.id == lab_id:
            return lab, (lab.step(step_id) if step_id else None)
    raise InvalidInput(f"There is no lab '{lab_id}'. Labs: {', '.join(lab.id for lab in labs)} (`labkit labs`).")


def segments(labs: list[Lab]) -> list[list[Lab]]:
    """The course cut where a lab begins on a fresh swarm: each part can be set up, run and tested on its
    own (the first begins on bare engines)."""
    parts: list[list[Lab]] = []
    for lab in labs:
        if lab.fresh or not parts:
            parts.append([])
        parts[-1].append(lab)
    return parts


def all_steps(labs: list[Lab]) -> list[Step]:
    return [step for lab in labs for step in lab.steps]


def next_step(labs: list[Lab], progress: Progress) -> Step | None:
    """The first step, in course order, that has not passed yet (None when all have)."""
    return next((step for step in all_steps(labs) if not progress.passed(step.ref)), None)
