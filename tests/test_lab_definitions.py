"""Unit tests for lab definitions, progress, answer judging and the check runner.

Nothing here needs a Docker engine: checks are stand-ins and clusters are simple objects.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path
from types import SimpleNamespace

import pytest

from labkit import runner
from labkit.checks import ANSWERS, CHECKS, Context, Result
from labkit.checks.base import judge_answer, normalise
from labkit.errors import InvalidInput, LabkitError
from labkit.fields import fields_in, problem, render
from labkit.labs import (
    HOST,
    Command,
    LabDefinitionError,
    Step,
    all_steps,
    find,
    host_action,
    load_lab,
    segments,
)
from labkit.progress import Progress
from labkit.runner import course
from labkit.topology import parse_node_name

COURSE = ["swarm-init", "nodes", "first-service", "scale", "self-heal", "cleanup", "rolling-update", "healthcheck",
          "placement", "networks", "node-failure", "managers", "trust", "autolock", "secrets", "configs", "stacks"]

STEP_OK = """
[[steps]]
id = "init"
title = "Turn it on"
node = "manager1"
commands = ["docker swarm init"]
check = "swarm_initialised"
hints = ["Run it on manager1."]
solution = ["docker swarm init"]
"""

MINIMAL = 'title = "Demo"\n' + STEP_OK


# --- helpers ---------------------------------------------------------------


def write(tmp_path: Path, text: str, name: str = "01-demo.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_text(tmp_path: Path, text: str, name: str = "01-demo.toml"):
    return load_lab(write(tmp_path, text, name), known_checks=set(CHECKS))


def load_error(tmp_path: Path, text: str, name: str = "01-demo.toml") -> str:
    """Load TEXT as a lab file; it must fail. The message, which must name the file."""
    path = write(tmp_path, text, name)
    with pytest.raises(LabDefinitionError) as info:
        load_lab(path, known_checks=set(CHECKS))
    message = str(info.value)
    assert str(path) in message
    return message


def step_text(**fields: str) -> str:
    """A [[steps]] table: the valid one, with FIELDS replaced (raw TOML values) or dropped (value '')."""
    base = {
        "id": '"init"',
        "title": '"Turn it on"',
        "node": '"manager1"',
        "commands": '["docker swarm init"]',
        "check": '"swarm_initialised"',
        "hints": '["Run it on manager1."]',
        "solution": '["docker swarm init"]',
    }
    base.update(fields)
    body = "\n".join(f"{key} = {value}" for key, value in base.items() if value)
    return f"\n[[steps]]\n{body}\n"


def lab_text(*steps: str) -> str:
    return 'title = "Demo"\n' + "".join(steps)


def make_step(**overrides) -> Step:
    values = {
        "lab": "t",
        "id": "info",
        "title": "Is swarm mode active?",
        "node": "manager1",
        "commands": (Command("manager1", "docker info | grep Swarm"),),
        "check": "stand_in",
        "hints": ("Answer with the word after `Swarm:`.", "Second hint."),
        "question": "What does the Swarm line say?",
    }
    values.update(overrides)
    return Step(**values)


def template_fields(text: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]


# --- 1. the real lab definitions -------------------------------------------


@pytest.fixture(scope="module")
def labs():
    return course()


def test_real_labs_load_in_course_order(labs):
    assert [lab.id for lab in labs] == COURSE
    assert [lab.order for lab in labs] == sorted(lab.order for lab in labs)


def test_real_labs_have_titles_and_steps(labs):
    for lab in labs:
        assert lab.title.strip(), lab.id
        assert lab.steps, lab.id


def test_every_real_step_check_is_registered(labs):
    missing = [step.ref for step in all_steps(labs) if step.check not in CHECKS]
    assert missing == []


def test_every_real_question_step_has_an_answer(labs):
    missing = [step.ref for step in all_steps(labs) if step.question and step.check not in ANSWERS]
    assert missing == []


def test_every_real_step_without_question_has_a_solution(labs):
    missing = [step.ref for step in all_steps(labs) if not step.question and not step.solution]
    assert missing == []


def test_every_real_step_has_hints(labs):
    assert [step.ref for step in all_steps(labs) if not step.hints] == []


def test_real_step_refs_are_unique_across_the_course(labs):
    refs = [step.ref for step in all_steps(labs)]
    assert len(refs) == len(set(refs))


def test_real_template_fields_are_ones_the_loader_accepts(labs):
    bad = [
        (step.ref, name)
        for step in all_steps(labs)
        for command in (*step.commands, *step.solution)
        for name in fields_in(command.run)
        if problem(name)
    ]
    assert bad == []


def test_real_command_nodes_are_node_names(labs):
    for step in all_steps(labs):
        for command in (*step.commands, *step.solution):
            if command.node == HOST:  # labkit itself: only `labkit node stop|start|disconnect|connect NODE`
                assert parse_node_name(host_action(command.run)[1])
            else:
                assert parse_node_name(command.node).name == command.node


def test_a_host_command_is_only_a_node_failure_command(tmp_path):
    ok = load_text(tmp_path, lab_text(step_text(commands='[{ node = "host", run = "labkit node stop worker2" }]')))
    assert ok.steps[0].commands[0].node == HOST
    message = load_error(tmp_path, lab_text(step_text(commands='[{ node = "host", run = "rm -rf /" }]')))
    assert "a host command is `labkit node stop|start|restart|disconnect|connect NODE`" in message


def test_a_lab_declares_its_nodes_and_begins_on_a_fresh_swarm_of_them(tmp_path):
    lab = load_text(tmp_path, 'nodes = { managers = 3, workers = 2 }\nstart = "swarm"\n' + lab_text(
        step_text(commands='[{ node = "host", run = "labkit node restart manager3" }]')))
    assert (lab.topology.managers, lab.topology.workers, lab.fresh) == (3, 2, True)
    assert [s.name for s in lab.topology.nodes] == ["manager1", "manager2", "manager3", "worker1", "worker2"]
    plain = load_text(tmp_path, lab_text(step_text()))
    assert (plain.topology.managers, plain.topology.workers, plain.fresh) == (1, 2, False)


@pytest.mark.parametrize(("head", "expected"), [
    ('nodes = { managers = 3 }\n', "a lab with its own 'nodes' begins on a fresh swarm of them"),
    ('nodes = { managers = 0 }\nstart = "swarm"\n', "'nodes': A swarm needs between 1 and 9 managers, not 0"),
    ('nodes = { servers = 3 }\nstart = "swarm"\n', "'nodes' is a table like { managers = 3, workers = 2 }"),
    ('nodes = 3\nstart = "swarm"\n', "'nodes' is a table like"),
    ('start = "fresh"\n', "'start' is \"previous\" (where the lab before ended) or \"swarm\""),
])
def test_bad_nodes_or_start_is_reported(tmp_path, head, expected):
    assert expected in load_error(tmp_path, head + lab_text(step_text()))


def test_a_step_on_a_node_the_lab_lacks_is_reported(tmp_path):
    message = load_error(tmp_path, lab_text(step_text(node='"manager2"')))
    assert "step 'init': the lab has no node manager2 (its nodes: manager1, worker1, worker2" in message
    message = load_error(tmp_path, lab_text(step_text(
        commands='[{ node = "host", run = "labkit node stop worker3" }]')))
    assert "the lab has no node worker3" in message


# --- 2. malformed definitions ----------------------------------------------


def test_minimal_lab_loads_with_id_from_file_name(tmp_path):
    lab = load_text(tmp_path, MINIMAL, "07-demo-lab.toml")
    assert lab.id == "demo-lab"
    assert lab.order == 7
    assert lab.title == "Demo"
    (step,) = lab.steps
    assert step.ref == "demo-lab:init"
    assert step.lab == "demo-lab"
    assert step.wait == 0.0
    assert step.params == {}


def test_plain_string_commands_default_to_the_step_node(tmp_path):
    lab = load_text(tmp_path, lab_text(step_text(node='"worker2"',
                                                 commands='["docker info", { run = "hostname" }]')))
    step = lab.steps[0]
    assert step.commands == (Command("worker2", "docker info"), Command("worker2", "hostname"))
    assert step.solution == (Command("worker2", "docker swarm init"),)


def test_command_table_names_its_own_node(tmp_path):
    lab = load_text(tmp_path, lab_text(step_text(commands='[{ node = "manager1", run = "docker node ls" }]',
                                                 node='"worker1"')))
    assert lab.steps[0].commands == (Command("manager1", "docker node ls"),)


def test_question_step_without_solution_loads(tmp_path):
    lab = load_text(tmp_path, lab_text(step_text(solution="", check='"swarm_state_answer"',
                                                 question='"Active?"')))
    assert lab.steps[0].question == "Active?"
    assert lab.steps[0].solution == ()


def test_invalid_toml_is_reported(tmp_path):
    message = load_error(tmp_path, 'title = "Demo\n')
    assert "not valid TOML" in message


def test_missing_title_is_reported(tmp_path):
    message = load_error(tmp_path, STEP_OK)
    assert "missing 'title'" in message


def test_unknown_top_level_key_is_reported(tmp_path):
    message = load_error(tmp_path, 'colour = "red"\n' + MINIMAL)
    assert "unknown key 'colour'" in message


def test_no_steps_is_reported(tmp_path):
    message = load_error(tmp_path, 'title = "Demo"\n')
    assert "at least one [[steps]]" in message


def test_empty_steps_list_is_reported(tmp_path):
    message = load_error(tmp_path, 'title = "Demo"\nsteps = []\n')
    assert "at least one [[steps]]" in message


def test_step_missing_check_is_reported(tmp_path):
    message = load_error(tmp_path, lab_text(step_text(check="")))
    assert "step 'init'" in message
    assert "missing 'check'" in message


def test_unknown_check_is_reported_with_known_checks(tmp_path):
    message = load_error(tmp_path, lab_text(step_text(check='"no_such_check"')))
    assert "step 'init'" in message
    assert "unknown check 'no_such_check'" in message
    assert "swarm_initialised" in message
    assert "ping_service" in message


def test_bad_node_name_is_reported(tmp_path):
    message = load_error(tmp_path, lab_text(step_text(node='"node7"')))
    assert "step 'init'" in message
    assert "'node7' is not a node name" in message


def test_bad_node_name_in_a_command_is_reported(tmp_path):
    message = load_error(tmp_path, lab_text(step_text(commands='[{ node = "node7", run = "ls" }]')))
    assert "step 'init': commands" in message
    assert "'node7'" in message


def test_duplicate_step_ids_are_reported(tmp_path):
    message = load_error(tmp_path, lab_text(step_text(), step_text()))
    assert "step 'init'" in message
    assert "used twice" in message


def test_step_without_question_or_solution_is_reported(tmp_path):
    message = load_error(tmp_path, lab_text(step_text(solution="")))
    assert "step 'init'" in message
    assert "needs a solution" in message


def test_missing_step_id_is_reported_by_position(tmp_path):
    message = load_error(tmp_path, lab_text(step_text(id='"first"'), step_text(id="")))
    assert "step 2" in message
    assert "missing 'id'" in message


def test_unknown_step_key_is_reported(tmp_path):
    message = load_error(tmp_path, lab_text(step_text(colour='"red"')))
    assert "step 'init'" in message
    assert "unknown key 'colour'" in message


def test_bad_step_id_is_reported(tmp_path):
    message = load_error(tmp_path, lab_text(step_text(id='"Init Step"')))
    assert "id 'Init Step'" in message


@pytest.mark.parametrize("run", ["echo {nosuch}", "ping {worker9.colour}", "ping {manager1}"])
def test_unknown_template_field_is_reported(tmp_path, run):
    message = load_error(tmp_path, lab_text(step_text(commands=json.dumps([run]))))
    assert "step 'init': commands" in message
    assert "unknown field" in message
    assert "{NODE.address}" in message


def test_unknown_template_field_in_solution_is_reported(tmp_path):
    message = load_error(tmp_path, lab_text(step_text(solution='["echo {nosuch}"]')))
    assert "step 'init': solution" in message
    assert "{nosuch}" in message


def test_template_field_on_a_bad_node_is_reported(tmp_path):
    message = load_error(tmp_path, lab_text(step_text(commands='["ping {node7.address}"]')))
    assert "'node7' is not a node name" in message


def test_go_templates_and_lone_braces_are_not_fields(tmp_path):
    run = "docker service ls --format '{{.Name}}' && echo { && awk '{print $1}'"
    lab = load_text(tmp_path, lab_text(step_text(commands=json.dumps([run]))))
    assert lab.steps[0].commands[0].run == run


def test_accepted_template_fields_load(tmp_path):
    run = "join {worker_token} {manager_token} {service} {task_container} {manager1.address} {worker3.name}"
    lab = load_text(tmp_path, lab_text(step_text(commands=json.dumps([run]))))
    assert lab.steps[0].commands[0].run == run


@pytest.mark.parametrize("commands", ["[42]", '[{ run = "ls", colour = "red" }]', '[{ node = "manager1" }]',
                                      '"docker info"'])
def test_command_neither_text_nor_node_run_is_reported(tmp_path, commands):
    message = load_error(tmp_path, lab_text(step_text(commands=commands)))
    assert "step 'init': commands" in message
    assert "text or" in message or "must be a list" in message


def test_missing_commands_are_reported(tmp_path):
    message = load_error(tmp_path, lab_text(step_text(commands="")))
    assert "step 'init': commands" in message
    assert "at least one command" in message


@pytest.mark.parametrize("hints", ["", "[]", '"just text"', "[1, 2]"])
def test_missing_or_empty_hints_are_reported(tmp_path, hints):
    message = load_error(tmp_path, lab_text(step_text(hints=hints)))
    assert "step 'init'" in message
    assert "'hints' must be a non-empty list" in message


@pytest.mark.parametrize("wait", ["-1", "301", '"10"'])
def test_wait_out_of_range_is_reported(tmp_path, wait):
    message = load_error(tmp_path, lab_text(step_text(wait=wait)))
    assert "step 'init'" in message
    assert "'wait'" in message


@pytest.mark.parametrize("wait", ["0", "300", "2.5"])
def test_wait_in_range_loads(tmp_path, wait):
    lab = load_text(tmp_path, lab_text(step_text(wait=wait)))
    assert lab.steps[0].wait == float(wait)


@pytest.mark.parametrize("name", ["demo.toml", "1-Demo.toml", "01_demo.toml", "01-demo.txt"])
def test_badly_named_file_is_reported(tmp_path, name):
    message = load_error(tmp_path, MINIMAL, name)
    assert "NN-lab-id.toml" in message


def test_load_labs_reports_a_malformed_file(tmp_path):
    write(tmp_path, MINIMAL, "01-good.toml")
    bad = write(tmp_path, lab_text(step_text(check='"no_such_check"')), "02-bad.toml")
    with pytest.raises(LabDefinitionError, match="unknown check") as info:
        course(tmp_path)
    assert str(bad) in str(info.value)


def test_load_labs_sorts_by_number(tmp_path):
    write(tmp_path, MINIMAL, "10-later.toml")
    write(tmp_path, MINIMAL, "02-early.toml")
    assert [lab.id for lab in course(tmp_path)] == ["early", "later"]


def test_load_labs_in_an_empty_directory_says_so(tmp_path):
    with pytest.raises(LabDefinitionError, match="No lab definitions"):
        course(tmp_path)


# --- 3. find ---------------------------------------------------------------


def test_find_lab_gives_the_lab_and_no_step(labs):
    lab, step = find("scale", labs)
    assert lab.id == "scale"
    assert step is None


def test_find_lab_step_gives_the_step(labs):
    lab, step = find("nodes:join", labs)
    assert lab.id == "nodes"
    assert step is not None and step.ref == "nodes:join"


def test_the_course_is_cut_where_a_lab_begins_on_a_fresh_swarm(labs):
    parts = segments(labs)
    assert parts[0][0].id == "swarm-init" and not parts[0][0].fresh
    assert all(part[0].fresh and not any(lab.fresh for lab in part[1:]) for part in parts[1:])
    assert [lab for part in parts for lab in part] == labs
    for part in parts:  # a reset to any step of a part rebuilds from the part's first lab
        for step in all_steps(part):
            assert runner.starting_lab(labs, step) is part[0]


def test_find_unknown_lab_names_the_labs(labs):
    with pytest.raises(InvalidInput) as info:
        find("nosuch", labs)
    message = str(info.value)
    assert "'nosuch'" in message
    for lab_id in COURSE:
        assert lab_id in message


def test_find_unknown_step_names_the_steps(labs):
    with pytest.raises(InvalidInput) as info:
        find("nodes:nosuch", labs)
    message = str(info.value)
    assert "'nosuch'" in message
    assert "node-ls" in message and "join" in message


def test_find_without_labs_loads_the_real_ones():
    lab, step = find("cleanup:rm", course())
    assert (lab.id, step.id) == ("cleanup", "rm")


# --- 4. progress -----------------------------------------------------------


def test_progress_round_trip(tmp_path):
    progress = Progress("t", tmp_path)
    assert not progress.passed("a:b")
    assert progress.answer("a:b") is None
    progress.record("a:b", answer="active")
    progress.record("a:b", passed=True)
    again = Progress("t", tmp_path)
    assert again.passed("a:b")
    assert again.answer("a:b") == "active"
    assert not again.passed("a:c")


def test_progress_once_passed_stays_passed(tmp_path):
    progress = Progress("t", tmp_path)
    progress.record("a:b", passed=True)
    progress.record("a:b", passed=False)
    assert progress.passed("a:b")


def test_progress_failure_alone_is_not_passed(tmp_path):
    progress = Progress("t", tmp_path)
    progress.record("a:b", passed=False)
    assert not progress.passed("a:b")


def test_progress_forget_removes(tmp_path):
    progress = Progress("t", tmp_path)
    progress.record("a:b", passed=True, answer="x")
    progress.record("a:c", passed=True)
    progress.forget(["a:b", "a:never"])
    assert not progress.passed("a:b")
    assert progress.answer("a:b") is None
    assert progress.passed("a:c")


def test_progress_is_per_lab(tmp_path):
    Progress("one", tmp_path).record("a:b", passed=True)
    assert not Progress("two", tmp_path).passed("a:b")


@pytest.mark.parametrize("damage", ["{not json", "[1, 2]", ""])
def test_progress_damaged_file_is_treated_as_empty(tmp_path, damage):
    progress = Progress("t", tmp_path)
    progress.path.write_text(damage)
    assert not progress.passed("a:b")
    assert progress.answer("a:b") is None
    progress.record("a:b", passed=True)
    data = json.loads(progress.path.read_text())
    assert data["a:b"]["passed"] is True


def test_progress_writes_leave_no_temp_files(tmp_path):
    progress = Progress("t", tmp_path)
    for i in range(3):
        progress.record(f"a:{i}", passed=True, answer=str(i))
    progress.forget(["a:0"])
    assert [p.name for p in tmp_path.iterdir()] == ["progress-t.json"]


def test_progress_creates_its_directory(tmp_path):
    progress = Progress("t", tmp_path / "deeper" / "still")
    progress.record("a:b", passed=True)
    assert progress.passed("a:b")


# --- 5. judge_answer / normalise -------------------------------------------


def judge(answer: str | None, accepted=("active",), evidence=("manager1: Swarm: active",)) -> Result:
    return judge_answer(Context(None, make_step(), answer), accepted, evidence)


@pytest.mark.parametrize("text", ["active", "ACTIVE", "`active`", "active.", " 'Active' ", '"active"'])
def test_normalise_ignores_case_quotes_and_trailing_dot(text):
    assert normalise(text) == "active"


def test_normalise_collapses_inner_whitespace():
    assert normalise("  SWMTKN-1   x  ") == "swmtkn-1 x"


@pytest.mark.parametrize("answer", [None, "", "   "])
def test_no_answer_asks_the_question(answer):
    result = judge(answer)
    assert not result.passed
    assert "What does the Swarm line say?" in result.summary
    assert result.hint == "Answer with the word after `Swarm:`."
    assert result.evidence == ()


@pytest.mark.parametrize("answer", ["Active", "`active`", "active.", "  ACTIVE  "])
def test_right_answer_passes_and_shows_evidence(answer):
    result = judge(answer)
    assert result.passed
    assert result.evidence == ("manager1: Swarm: active",)
    assert result.summary.startswith("Right:")


def test_any_accepted_answer_passes():
    assert judge("SWMTKN-1-", accepted=("SWMTKN-1", "SWMTKN-1-")).passed


def test_empty_accepted_values_are_ignored():
    assert not judge("", accepted=("", "active")).passed
    assert not judge("x", accepted=("",)).passed


def test_wrong_answer_fails_without_revealing_evidence():
    result = judge("inactive")
    assert not result.passed
    assert result.evidence == ()
    assert "'inactive'" in result.summary
    assert "What does the Swarm line say?" in result.summary
    assert result.hint == "Answer with the word after `Swarm:`."
    assert "Swarm: active" not in result.summary


def test_context_merges_step_params_with_its_own():
    ctx = Context(None, make_step(params={"replicas": 1, "x": "a"}), params={"replicas": 3})
    assert ctx.params == {"replicas": 3, "x": "a"}


# --- 6. runner -------------------------------------------------------------


def stand_in_cluster() -> SimpleNamespace:
    return SimpleNamespace(lab="t", nodes=[], managers=[], workers=[])


def use_check(monkeypatch, fn) -> None:
    monkeypatch.setitem(CHECKS, "stand_in", fn)


def test_one_check_turns_an_exception_into_a_failed_result(monkeypatch, tmp_path):
    def broken(ctx):
        raise RuntimeError("engine went away")

    monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path))
    use_check(monkeypatch, broken)
    result = runner._one_check(stand_in_cluster(), make_step(), None)
    assert not result.passed
    shown = result.summary + (result.hint or "") + "".join(result.evidence)
    assert "RuntimeError" not in shown and "engine went away" not in shown  # plain words only
    assert "could not check this step" in result.summary
    assert "`labkit status`" in result.hint
    log = (tmp_path / "labkit.log").read_text()  # the details are kept for a bug report
    assert "RuntimeError: engine went away" in log and "Traceback" in log


def test_one_check_turns_a_labkit_error_into_a_failed_result(monkeypatch):
    def refused(ctx):
        raise LabkitError("The lab 't' is not running.")

    use_check(monkeypatch, refused)
    result = runner._one_check(stand_in_cluster(), make_step(), None)
    assert not result.passed
    assert result.summary == "The lab 't' is not running."
    assert "`labkit status`" in result.hint


def test_one_check_with_an_unregistered_check_does_not_raise():
    result = runner._one_check(stand_in_cluster(), make_step(check="no_such_check_registered"), None)
    assert not result.passed
    assert "`labkit status`" in result.hint


def test_one_check_passes_cluster_step_and_answer(monkeypatch):
    seen = []

    def spy(ctx):
        seen.append(ctx)
        return Result(True, "ok")

    use_check(monkeypatch, spy)
    cluster, step = stand_in_cluster(), make_step()
    assert runner._one_check(cluster, step, "yes").passed
    (ctx,) = seen
    assert ctx.cluster is cluster and ctx.step is step and ctx.answer == "yes"


def test_run_check_waits_for_a_pending_check_to_pass(monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "POLL", 0.01)
    calls = []

    def converging(ctx):
        calls.append(ctx)
        if len(calls) < 3:
            return Result(False, "2 of 3 replicas run", pending=True)
        return Result(True, "3 replicas run")

    use_check(monkeypatch, converging)
    progress = Progress("t", tmp_path)
    step = make_step(wait=2.0, question=None)
    result = runner.run_check(stand_in_cluster(), step, progress=progress)
    assert result.passed
    assert result.summary == "3 replicas run"
    assert len(calls) == 3
    assert progress.passed(step.ref)


def test_run_check_gives_up_after_the_wait(monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "POLL", 0.01)
    use_check(monkeypatch, lambda ctx: Result(False, "2 of 3 replicas run", pending=True))
    progress = Progress("t", tmp_path)
    step = make_step(wait=0.2, question=None)
    result = runner.run_check(stand_in_cluster(), step, progress=progress)
    assert not result.passed
    assert result.summary.startswith("Still not there after")
    assert result.summary.endswith("2 of 3 replicas run")
    assert 0.2 <= result.seconds < 5
    assert not progress.passed(step.ref)


def test_run_check_without_wait_checks_once(monkeypatch, tmp_path):
    calls = []

    def pending(ctx):
        calls.append(ctx)
        return Result(False, "not yet", pending=True)

    use_check(monkeypatch, pending)
    result = runner.run_check(stand_in_cluster(), make_step(wait=5.0), wait=False,
                              progress=Progress("t", tmp_path))
    assert len(calls) == 1
    assert result.summary == "not yet"


def test_run_check_does_not_retry_a_plain_failure(monkeypatch, tmp_path):
    calls = []

    def wrong(ctx):
        calls.append(ctx)
        return Result(False, "wrong")

    use_check(monkeypatch, wrong)
    result = runner.run_check(stand_in_cluster(), make_step(wait=5.0), progress=Progress("t", tmp_path))
    assert len(calls) == 1
    assert result.summary == "wrong"


def test_run_check_records_and_reuses_the_answer(monkeypatch, tmp_path):
    answers = []

    def spy(ctx):
        answers.append(ctx.answer)
        return judge_answer(ctx, ["active"])

    use_check(monkeypatch, spy)
    progress = Progress("t", tmp_path)
    step = make_step()
    assert runner.run_check(stand_in_cluster(), step, answer="Active", progress=progress).passed
    assert progress.answer(step.ref) == "Active"
    assert runner.run_check(stand_in_cluster(), step, progress=progress).passed
    assert answers == ["Active", "Active"]


def test_run_check_never_raises(monkeypatch, tmp_path):
    def broken(ctx):
        raise ValueError("boom")

    monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path))
    use_check(monkeypatch, broken)
    result = runner.run_check(stand_in_cluster(), make_step(wait=0.1), progress=Progress("t", tmp_path))
    assert not result.passed
    assert "could not check this step" in result.summary
    assert "boom" not in result.summary + (result.hint or "")


# --- render ----------------------------------------------------------------


def test_render_fills_node_fields_from_the_cluster():
    cluster = SimpleNamespace(lab="t", nodes=[SimpleNamespace(name="manager1", address="10.9.0.2")], managers=[])
    text = render("ping {manager1.address} from {manager1.name} --format '{{.ID}}'", cluster)
    assert text == "ping 10.9.0.2 from manager1 --format '{{.ID}}'"


def test_render_shows_placeholders_without_a_swarm():
    text = render("join --token {worker_token} {worker3.address}", stand_in_cluster())
    assert "<the worker join token>" in text
    assert "<worker3 address>" in text


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"wait": "true"}, "'wait' must be a number"),
        ({"hints": '[""]'}, "'hints' must be a non-empty list"),
        ({"question": '""', "solution": ""}, "'question' must be non-empty text"),
    ],
)
def test_values_that_only_look_valid_are_refused(tmp_path: Path, fields: dict[str, str], problem: str) -> None:
    message = load_error(tmp_path, lab_text(step_text(**fields)))
    assert "step 'init'" in message and problem in message


def test_two_labs_with_the_same_id_are_refused(tmp_path: Path) -> None:
    write(tmp_path, lab_text(step_text()), "01-demo.toml")
    write(tmp_path, lab_text(step_text()), "02-demo.toml")
    with pytest.raises(LabDefinitionError, match=r"02-demo\.toml: the lab id is also used by"):
        course(tmp_path)


# --- predictions, explanations, commands meant to fail, what was learned ----------------------------


def test_a_prediction_needs_a_question(tmp_path):
    message = load_error(tmp_path, lab_text(step_text(predict="true")))
    assert "'predict'" in message and "question" in message


def test_explanations_need_a_question_and_text(tmp_path):
    assert "'explain' needs a 'question'" in load_error(tmp_path, lab_text(step_text(explain='{ no = "why" }')))
    bad = step_text(solution="", check='"swarm_state_answer"', question='"Active?"', explain='{ no = 3 }')
    assert "'explain' must be a table" in load_error(tmp_path, lab_text(bad))


def test_a_step_may_change_the_cluster_and_ask_a_prediction(tmp_path):
    step = load_text(tmp_path, lab_text(step_text(question='"Which node leads?"', predict="true",
                                                  explain='{ worker1 = "Workers never lead." }'))).steps[0]
    assert step.predict and step.solution and step.explain == {"worker1": "Workers never lead."}


def test_a_command_meant_to_fail_is_flagged(tmp_path):
    commands = '[{ node = "worker1", run = "docker node ls", fails = true }, "docker info"]'
    step = load_text(tmp_path, lab_text(step_text(commands=commands))).steps[0]
    assert [(c.node, c.fails) for c in step.commands] == [("worker1", True), ("manager1", False)]


def test_learned_must_be_a_list_of_text(tmp_path):
    text = 'title = "Demo"\nlearned = "one"\n' + step_text()
    assert "'learned' must be a list of text" in load_error(tmp_path, text)


WHY = Path(__file__).resolve().parent.parent / "notebooks" / "00-why-orchestration.ipynb"


def test_every_lab_ends_with_what_was_learned_linked_to_its_problem() -> None:
    text = "".join("".join(cell["source"]) for cell in json.loads(WHY.read_text())["cells"])
    anchors = set(re.findall(r'<a id="([a-z-]+)"></a>', text))
    assert len(anchors) == 8, anchors
    for lab in course():
        assert 3 <= len(lab.learned) <= 5, f"{lab.id}: {len(lab.learned)} bullets"
        for bullet in lab.learned:
            links = re.findall(r"\]\(00-why-orchestration\.ipynb#([a-z-]+)\)", bullet)
            assert links and set(links) <= anchors, f"{lab.id}: {bullet}"


def test_every_lab_asks_for_a_prediction_before_the_commands_that_answer_it() -> None:
    for lab in course():
        predictions = [s for s in lab.steps if s.predict]
        assert predictions, f"{lab.id} asks no prediction"
        for step in predictions:
            assert step.explain or step.check in {"scale_prediction", "cert_days"}, (
                f"{step.ref}: a wrong prediction needs an explanation, not just 'no'")


def test_two_checks_with_one_name_are_refused():
    from labkit.checks.base import check

    with pytest.raises(LabDefinitionError) as info:
        check("swarm_initialised")(lambda ctx: Result(True, "a second one"))
    assert "two checks are called 'swarm_initialised': labkit.checks.swarm and" in str(info.value)
    assert CHECKS["swarm_initialised"].__module__ == "labkit.checks.swarm"


def test_the_terminal_prints_step_references_as_typed_not_as_emoji():
    from labkit.cli import out

    with out.capture() as captured:
        out.print("PASS autolock:unlock: the manager answers again")
    assert "autolock:unlock:" in captured.get()
