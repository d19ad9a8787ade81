"""labkit in a notebook: run commands on nodes, check steps, draw the cluster.

    %load_ext labkit.nb
    from labkit.nb import check, cluster_map, topology

    %%node manager1
    docker swarm init

    check("swarm-init:init")

Errors about the lab (an unknown node, a command that failed, no lab running)
are shown as one line, never as a Python traceback, and still fail the cell.
"""

from __future__ import annotations

import re
import shlex
import sys
from typing import Any

from labkit import diagrams
from labkit.backends import get_backend
from labkit.cluster import Cluster, cluster
from labkit.errors import CommandFailed, LabkitError, StepNotDone
from labkit.fields import render
from labkit.labs import find
from labkit.room import client as room_client
from labkit.runner import begin as runner_begin
from labkit.runner import course, run_check
from labkit.settings import settings
from labkit.topology import lab_name
from labkit.widgets import CheckWidget, ClusterMap, PredictWidget, result_text

__all__ = ["begin", "check", "cluster_map", "lab", "load_ipython_extension", "node_connect", "node_disconnect",
           "node_restart", "node_start", "node_stop", "predict", "status", "topology"]
STRICT_ENV = "LABKIT_STRICT"  # set by the regression run: a failing step fails its cell
COMMAND_TIMEOUT = 180


def lab() -> Cluster:
    """The running lab ($LABKIT_LAB, default 'lab')."""
    return cluster()


EXPECT_FAILURE = "--expect-failure"


def run_on(node: str, script: str, expect_failure: bool = False) -> int:
    """Run SCRIPT on NODE like a terminal would: each command echoed before its output, fail on an error.
    With EXPECT_FAILURE (a command meant to be refused, e.g. a manager-only command on a worker) a failure
    is shown and explained, not raised."""
    c = lab()
    target = c[node.strip()]
    script = render(script, c, target.name).strip()
    if not script:
        raise LabkitError(f"Nothing to run on {target.name}: type a command under %%node {target.name}.")
    result = target.run(["/bin/bash", "-c", terminal_script(target.name, script)], timeout=COMMAND_TIMEOUT)
    sys.stdout.write(collapse_progress(result.stdout))
    sys.stdout.flush()
    if result.exit_code == 124:
        raise CommandFailed(f"the command on {target.name} was still running after {COMMAND_TIMEOUT} s "
                               "and was stopped (use --detach for long-running commands)")
    if expect_failure:
        print(f"(exit code {result.exit_code}: {'refused, as expected' if not result.ok else 'it did not fail'})")
        return result.exit_code
    if not result.ok:
        raise CommandFailed(f"the command on {target.name} failed (exit code {result.exit_code}); "
                               "its error is printed above")
    return result.exit_code


_COMPOUND = re.compile(r"\\$|<<|\b(do|then|done|fi|esac)\b|[{(]\s*$", re.MULTILINE)


def terminal_script(node: str, script: str) -> str:
    """A bash script that shows each command with a prompt, then its output (errors inline),
    and stops at the first failing command. Multi-line constructs are shown once, whole."""
    prompt = f"{node}$ "
    lines = [line for line in script.splitlines() if line.strip()]
    head = "exec 2>&1; set -e -o pipefail\n"
    if _COMPOUND.search(script):
        return head + f"printf '%s\\n' {shlex.quote(prompt + script)}\n{script}\n"
    return head + "".join(f"printf '%s\\n' {shlex.quote(prompt + line)}\n{line}\n" for line in lines)


_PROGRESS = re.compile(r"^(overall progress:|verify:|\d+/\d+:)")
_EMPTY_PROGRESS = re.compile(r"^\d+/\d+:\s*$")  # "1/3:  " before a task has a state: says nothing


def collapse_progress(text: str) -> str:
    """Docker redraws its progress lines on a terminal; without one it repeats them. Keep the last of each."""
    lines = [line for line in text.splitlines(keepends=True) if not _EMPTY_PROGRESS.match(line)]
    last: dict[str, int] = {}
    for i, line in enumerate(lines):
        m = _PROGRESS.match(line)
        if m:
            last[m.group(1)] = i
    return "".join(line for i, line in enumerate(lines)
                   if not (m := _PROGRESS.match(line)) or last[m.group(1)] == i)


def check(ref: str) -> CheckWidget:
    """Check a step now and show the result with buttons to check again and to see or apply the solution."""
    _, step = find(ref, course())
    if step is None:
        raise LabkitError(f"check() needs LAB:STEP, e.g. check('{ref}:...'); `labkit labs` lists them.")
    c = lab()
    result = run_check(c, step)
    room_client.send_in_background()  # to the learner's room, if they joined one (never waits)
    widget = CheckWidget(c, step, result)
    if settings().strict and not result.passed and not (step.question and result.awaits_answer):
        raise StepNotDone(result_text(ref, result) + "".join(f"\n     seen: {e}" for e in result.evidence))
    return widget


def predict(ref: str) -> PredictWidget:
    """A box for the learner's prediction, shown before the commands; `check(ref)` judges it afterwards."""
    _, step = find(ref, course())
    if step is None or not step.question:
        raise LabkitError(f"predict() needs a step that asks a question, e.g. predict('scale:replicas'), not {ref!r}.")
    return PredictWidget(lab().lab, step)


def begin(lab_id: str) -> None:
    """Open a lab that begins on a fresh swarm of its own nodes: make it (about a minute), unless a step of
    the lab has passed already (`labkit reset LAB` in a terminal starts it over)."""
    labs = course()
    item, _ = find(lab_id, labs)
    if not item.fresh:
        raise LabkitError(f"Lab {lab_id} carries on where the previous lab ended: there is nothing to begin.")
    target = Cluster(get_backend(None, lab_name(settings().lab)))  # it may not exist yet: begin makes it
    if runner_begin(target, labs, item, lambda line: print(line, flush=True)):
        print(f"Ready: a fresh swarm of {item.topology.managers} manager(s) and {item.topology.workers} worker(s).")


def cluster_map(live_for: float = 600.0, controls: bool = True) -> ClusterMap:
    """Nodes and their tasks, coloured by state; redraws every second for LIVE_FOR seconds.
    CONTROLS: small buttons per node to stop/start it and disconnect/connect it."""
    if settings().strict:
        live_for = 0  # a headless run records one still picture
    return ClusterMap(lab(), live_for=live_for, controls=controls)


def node_stop(name: str) -> None:
    """Power node NAME off abruptly, like pulling the plug (`labkit node stop`)."""
    print(lab().backend.power(name, False, lambda _: None))


def node_start(name: str) -> None:
    """Power node NAME on again; returns when its engine answers (`labkit node start`)."""
    print(lab().backend.power(name, True, lambda _: None))


def node_restart(name: str) -> None:
    """Reboot node NAME: its engine shuts down cleanly and starts again (`labkit node restart`)."""
    print(lab().backend.restart(name, lambda _: None))


def node_disconnect(name: str) -> None:
    """Cut node NAME off the lab network; its engine keeps running (`labkit node disconnect`)."""
    print(lab().backend.partition(name, False, lambda _: None))


def node_connect(name: str) -> None:
    """Reconnect node NAME to the lab network with its own address (`labkit node connect`)."""
    print(lab().backend.partition(name, True, lambda _: None))


def topology() -> diagrams.Drawing:
    """The swarm's architecture as it is now: managers and Raft, workers, the mutual-TLS control plane."""
    nodes = diagrams.snapshot(lab())
    return diagrams.Drawing(diagrams.topology_svg(nodes), diagrams.topology_text(nodes))


def status() -> None:
    """Print each node: role, engine, swarm state, address."""
    for s in lab().status():
        cut = "  (disconnected from the lab network)" if s.network == "disconnected" else ""
        print(f"{s.name:10} {s.role:8} engine {s.engine:10} swarm {s.swarm:9} {s.address}{cut}")


def _one_line_error(shell: Any, etype: type, evalue: BaseException, tb: Any, tb_offset: Any = None) -> None:
    """Show a lab error as one red line instead of a traceback (the cell still fails)."""
    shell._showtraceback(etype, evalue, [f"\x1b[31m✘ {evalue}\x1b[0m"])


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext labkit.nb`: the %%node cell magic (and %node line magic)."""

    def node_magic(line: str, cell: str | None = None) -> None:
        name, _, rest = line.strip().partition(" ")
        if not name:
            raise LabkitError("Name a node: %%node manager1 (nodes: `labkit status`).")
        expect_failure = cell is not None and rest.strip() == EXPECT_FAILURE
        run_on(name, cell if cell is not None else rest, expect_failure=expect_failure)

    ipython.register_magic_function(node_magic, magic_kind="line_cell", magic_name="node")
    ipython.set_custom_exc((LabkitError,), _one_line_error)
