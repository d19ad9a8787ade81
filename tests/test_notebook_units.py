"""Notebook helpers that need no engine: terminal-like output, progress lines, diagrams."""

from __future__ import annotations

import subprocess

from labkit.checks import Result
from labkit.diagrams import NodeView, Task, tasks_svg, tasks_text, topology_svg
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
