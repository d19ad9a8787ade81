"""Notebook helpers that need no engine: terminal-like output, progress lines, diagrams."""

from __future__ import annotations

import subprocess
import types
from collections.abc import Callable

import pytest

from labkit import nb
from labkit.checks import Result
from labkit.diagrams import NodeView, Task, tasks_svg, tasks_text, topology_svg
from labkit.errors import StepNotDone
from labkit.nb import collapse_progress, terminal_script
from labkit.widgets import result_text


def run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True)


def test_each_command_is_echoed_before_its_output_and_errors_stay_in_order() -> None:
    done = run(terminal_script("manager1", "echo one\necho two >&2\necho three"))
    assert done.stdout == "manager1$ echo one\none\nmanager1$ echo two >&2\ntwo\nmanager1$ echo three\nthree\n"


def test_the_first_failing_command_stops_the_cell() -> None:
    done = run(terminal_script("worker1", "echo before\nfalse\necho after"))
    assert done.returncode == 1
    assert "after" not in done.stdout.replace("echo after", "")


def test_a_failing_pipeline_fails() -> None:
    assert run(terminal_script("worker1", "false | cat")).returncode == 1


def test_loops_are_shown_whole_and_run() -> None:
    done = run(terminal_script("m", "for i in 1 2; do\n  echo $i\ndone"))
    assert done.returncode == 0 and done.stdout.endswith("1\n2\n")
    assert done.stdout.startswith("m$ for i in 1 2; do\n")


def test_go_templates_and_quotes_survive() -> None:
    done = run(terminal_script("m", "echo '{{.Name}}' \"it's\""))
    assert done.stdout.splitlines()[-1] == "{{.Name}} it's"


def test_docker_progress_lines_keep_only_their_last_state() -> None:
    raw = ("abc123\noverall progress: 0 out of 3 tasks\n1/3: preparing\noverall progress: 3 out of 3 tasks\n"
           "1/3: running\nverify: Waiting 5 seconds\nverify: Service converged\n")
    assert collapse_progress(raw) == ("abc123\noverall progress: 3 out of 3 tasks\n1/3: running\n"
                                      "verify: Service converged\n")


def nodes(in_swarm: bool = True) -> list[NodeView]:
    role = (lambda r: r) if in_swarm else (lambda r: "-")
    return [NodeView("manager1", "manager", "10.1.0.11", role("leader"), tasks=[Task("web", 1, "running", "running")]),
            NodeView("worker1", "worker", "10.1.0.21", role("worker"),
                     tasks=[Task("web", 2, "failed", "shutdown"), Task("web", 2, "starting", "running")]),
            NodeView("worker2", "worker", "10.1.0.22", role("worker"))]


def test_topology_shows_leader_raft_and_mutual_tls_once_in_a_swarm() -> None:
    svg = topology_svg(nodes())
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "manager1 ★" in svg and "mutual TLS" in svg and "Raft" in svg
    assert svg.count("<rect") >= 3 and "10.1.0.22" in svg


def test_topology_before_init_shows_separate_engines() -> None:
    svg = topology_svg(nodes(in_swarm=False))
    assert "no swarm yet" in svg and "mutual TLS" not in svg and "★" not in svg


def test_task_map_colours_tasks_by_state() -> None:
    svg = tasks_svg(nodes())
    assert svg.count("#2e9d4f") >= 2  # a running task (and the legend)
    assert "web.2  failed" in svg and "web.2  starting" in svg
    assert tasks_text(nodes()) == ("manager1   web.1\nworker1    -  (web.2 failed; web.2 starting)\nworker2    -")


def test_check_widget_text_is_one_stable_line() -> None:
    ok = Result(True, "Service web runs 3 task(s).", ("task on worker1",))
    assert result_text("scale:replicas", ok) == "PASS scale:replicas: Service web runs 3 task(s)."
    bad = Result(False, "Run the command(s), then answer: Which node?", hint="Look at NODE.")
    assert result_text("first-service:find", bad, question=True).startswith("? first-service:find")
    assert result_text("x:y", None) == "… x:y: not checked yet"


def test_drawings_render_as_images_that_untrusted_notebooks_show() -> None:
    from labkit.diagrams import Drawing, topology_text

    bundle = Drawing(topology_svg(nodes()), topology_text(nodes()))._repr_mimebundle_()
    assert bundle["text/html"].startswith('<img alt="manager1') and "data:image/svg+xml,%3Csvg" in bundle["text/html"]
    assert "<svg" not in bundle["text/html"], "the SVG travels percent-encoded inside the img"
    assert bundle["text/plain"].splitlines()[0] == "manager1   manager, leader"


def test_progress_lines_without_text_disappear() -> None:
    raw = "1/3:  \n2/3:  \n1/3: running   [====>]\n2/3: \n2/3: running\n"
    assert collapse_progress(raw) == "1/3: running   [====>]\n2/3: running\n"


def lab_notebook(lab_id: str) -> list[tuple[str, str]]:
    from labkit.notebook_build import build_all

    nb = next(nb for name, nb in build_all().items() if name.endswith(f"-{lab_id}.ipynb"))
    return [(c.cell_type, c.source) for c in nb.cells]


def test_a_prediction_is_asked_before_the_commands_that_answer_it() -> None:
    cells = lab_notebook("self-heal")
    ask = next(i for i, (_, src) in enumerate(cells) if "**Predict first:**" in src)
    box = next(i for i, (_, src) in enumerate(cells) if src == 'predict("self-heal:kill")')
    kill = next(i for i, (_, src) in enumerate(cells) if "docker container rm -f" in src)
    judged = next(i for i, (_, src) in enumerate(cells) if src == 'check("self-heal:kill")')
    assert ask < box < kill < judged


def test_the_live_map_comes_before_the_cells_that_move_tasks() -> None:
    for lab_id, command in (("scale", "--replicas 3"), ("self-heal", "rm -f"), ("cleanup", "service rm")):
        cells = lab_notebook(lab_id)
        live = next(i for i, (_, src) in enumerate(cells) if src.startswith("cluster_map()"))
        change = next(i for i, (_, src) in enumerate(cells) if command in src and src.startswith("%%node"))
        assert live < change, lab_id


def test_a_command_meant_to_be_refused_gets_a_cell_of_its_own() -> None:
    cells = lab_notebook("nodes")
    refused = [src for _, src in cells if src.startswith("%%node worker1 --expect-failure")]
    assert refused == ["%%node worker1 --expect-failure\ndocker node ls"]


def test_each_lab_notebook_ends_with_what_was_learned() -> None:
    from labkit.runner import course

    for lab in course():
        kind, last = lab_notebook(lab.id)[-2]  # the very last cell says where to go next
        assert kind == "markdown" and last.startswith("## What you learned\n"), lab.id
        assert last.count("\n- ") == len(lab.learned)


def test_a_saved_prediction_is_what_the_check_judges(tmp_path, monkeypatch) -> None:
    from labkit.progress import Progress
    from labkit.runner import course
    from labkit.widgets import PredictWidget

    monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path))
    step = next(s for lab in course() for s in lab.steps if s.ref == "self-heal:kill")
    widget = PredictWidget("t", step)
    widget.save()
    assert Progress("t").answer(step.ref) is None and "Write a prediction" in widget.saved.value
    widget.box.value = "a new one"
    widget.save()
    assert Progress("t").answer(step.ref) == "a new one"
    assert "Saved" in widget.saved.value
    assert PredictWidget("t", step).box.value == "a new one"  # shown again when the notebook reopens


def test_the_learner_sees_the_container_names_before_the_cell_that_removes_one() -> None:
    cells = [src for _, src in lab_notebook("self-heal") if src.startswith("%%node worker1")]
    assert len(cells) == 2 and "container ls" in cells[0] and cells[1].endswith("rm -f {task_container}")


@pytest.fixture
def strict_check(tmp_path, monkeypatch) -> Callable[[Result], None]:
    """nb.check as a regression run (LABKIT_STRICT) calls it, on a fake lab; call it with the Result the
    check should give."""
    monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path))
    monkeypatch.setenv(nb.STRICT_ENV, "1")
    monkeypatch.setattr(nb, "lab", lambda: types.SimpleNamespace(lab="t"))
    return lambda result: monkeypatch.setattr(nb, "run_check", lambda c, step: result)


def test_a_failing_check_in_a_regression_run_says_what_labkit_saw(strict_check) -> None:
    """The cell's error is all nbval shows of a failed run: it carries the evidence, so it tells a slow
    start from a stuck task."""
    strict_check(Result(False, "pinger's tasks are starting.", ("pinger tasks on: worker2",
                                                                "pinger.3 on worker1: assigned"),
                        pending=True, hint="Wait a moment."))
    with pytest.raises(StepNotDone) as raised:
        nb.check("managers:change")
    assert str(raised.value).splitlines()[1:] == ["     try: Wait a moment.", "     seen: pinger tasks on: worker2",
                                                  "     seen: pinger.3 on worker1: assigned"]


def test_a_question_step_fails_a_regression_run_with_what_labkit_saw_unless_it_only_awaits_the_answer(
        strict_check) -> None:
    """A question step's check waits for the learner's answer ('? ...' is its recorded output); any other
    failure there raises like any step's, with the evidence (a run once saw 3 managers after a promote)."""
    seen = ("managers: manager1 Leader, manager2 Reachable, manager3 Reachable",)
    strict_check(Result(False, "Predict, run the command(s), then answer: With four managers, how many can the "
                        "swarm lose?", seen))
    nb.check("managers:promote")  # waits for the answer: no error
    strict_check(Result(False, "The swarm has 3 managers; this step wants 4.", seen, hint="Promote worker1."))
    with pytest.raises(StepNotDone) as raised:
        nb.check("managers:promote")
    assert str(raised.value).splitlines() == [
        "FAIL managers:promote: The swarm has 3 managers; this step wants 4.", "     try: Promote worker1.",
        "     seen: managers: manager1 Leader, manager2 Reachable, manager3 Reachable"]


def test_recording_some_notebooks_leaves_the_others_recorded_outputs(tmp_path, monkeypatch) -> None:
    """`notebook_build --execute 12-managers.ipynb` once rewrote every notebook without its outputs."""
    import shutil

    from labkit import notebook_build

    for path in notebook_build.NOTEBOOKS.glob("*.ipynb"):
        shutil.copy(path, tmp_path / path.name)
    monkeypatch.setattr(notebook_build, "NOTEBOOKS", tmp_path)
    ran: list[list[str]] = []
    monkeypatch.setattr(notebook_build, "execute", lambda order, lab: ran.append(order))
    monkeypatch.setattr("sys.argv", ["notebook_build", "--execute", "12-managers.ipynb"])
    kept = (tmp_path / "11-node-failure.ipynb").read_text()
    notebook_build.main()
    assert ran == [["12-managers.ipynb"]]
    assert (tmp_path / "11-node-failure.ipynb").read_text() == kept


def test_answer_boxes_send_the_answer_when_the_learner_leaves_them(tmp_path, monkeypatch) -> None:
    """Not keystroke by keystroke: ipywidgets holds back a box's later keystrokes while the kernel is busy, and
    the Check click overtook them (CI's browser test typed "active", and "a" was judged). A learner leaves the
    box to click Check, and the box's value is sent first."""
    from types import SimpleNamespace

    from labkit.runner import course
    from labkit.widgets import CheckWidget, PredictWidget

    monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path))
    step = next(s for lab in course() for s in lab.steps if s.ref == "self-heal:kill")
    assert step.question
    assert CheckWidget(SimpleNamespace(lab="t"), step).answer.continuous_update is False
    assert PredictWidget("t", step).box.continuous_update is False
