"""Build the lab notebooks from the lab definitions, so the two never disagree.

    python -m labkit.notebook_build            # write notebooks/NN-LAB.ipynb (sources only)
    python -m labkit.notebook_build --execute  # and run them on a fresh lab to record outputs
    python -m labkit.notebook_build --execute 12-managers.ipynb  # record only these

Each lab notebook: the lab's introduction; per step, its text, a `%%node` cell per
node with the step's commands (as in labs/), and a check; diagrams drawn from the
live cluster where they help. Outputs that differ between runs are tagged for nbval.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

from labkit.labs import HOST, Command, Lab, Step, host_action
from labkit.runner import course

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
IGNORE = "nbval-ignore-output"
# Drawings: the architecture after the step that changes it; the live task map *before* the commands of a
# step that moves tasks, so the learner watches the change happen (it redraws every second).
AFTER = {"swarm-init:init": "topology()", "nodes:join": "topology()"}
LIVE_BEFORE = {"first-service:create", "scale:replicas", "self-heal:kill", "cleanup:rm", "placement:labels",
               "rolling-update:stop-first", "rolling-update:start-first", "rolling-update:rollback",
               "node-failure:power-off", "node-failure:partition", "healthcheck:auto-rollback", "healthcheck:sick-task",
               "rolling-update:blue-green", "placement:scale-in", "placement:spread",
               "placement:drain", "placement:rebalance", "placement:join-later"}
WHY = "00-why-orchestration.ipynb"


def _code(source: str, ignore_output: bool = False) -> NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    if ignore_output:
        cell.metadata["tags"] = [IGNORE]
    return cell


def _node_cells(commands: tuple[Command, ...]) -> list[NotebookNode]:
    """One %%node cell per run of consecutive commands on the same node."""
    groups: list[list[Command]] = []
    for command in commands:
        if groups and groups[-1][0].node == command.node and not command.own_cell and not command.fails:
            groups[-1].append(command)
        else:
            groups.append([command])
    for group in list(groups):  # a command meant to fail gets a cell of its own, flagged
        if any(c.fails for c in group) and len(group) > 1:
            i = groups.index(group)
            groups[i:i + 1] = [[c] for c in group]
    return [_host_cell(g) if g[0].node == HOST else
            _code(f"%%node {g[0].node}{' --expect-failure' if g[0].fails else ''}\n" + "\n".join(c.run for c in g),
                  any(c.varies for c in g)) for g in groups]


def _host_cell(commands: list[Command]) -> NotebookNode:
    """`labkit node stop worker2` in a notebook: node_stop("worker2") (the same thing, from Python)."""
    lines = []
    for c in commands:
        action, node = host_action(c.run)
        lines.append(f'node_{action}("{node}")  # in a terminal: {c.run}')
    return _code("\n".join(lines), any(c.varies for c in commands))


def _step_cells(index: int, step: Step) -> list[NotebookNode]:
    text = f"## {index}. {step.title}\n\n{step.text}"
    if step.question and step.predict:
        text += (f"\n\n**Predict first:** {step.question} Write your prediction in the box below and save it, "
                 "then run the cells: the check at the end of the step judges it against your cluster.")
    elif step.question:
        text += f"\n\n**Question:** {step.question} Run the cell below, then answer in the check's box."
    cells = [nbformat.v4.new_markdown_cell(text)]
    if step.question and step.predict:
        cells.append(_code(f'predict("{step.ref}")'))
    if step.ref in LIVE_BEFORE:
        cells.append(_code("cluster_map()  # live: keep it in view while the next cells run", ignore_output=True))
    cells.extend(_node_cells(step.commands))
    if step.ref in AFTER:
        cells.append(_code(AFTER[step.ref]))
    cells.append(_code(f'check("{step.ref}")'))
    return cells


def _learned(lab: Lab) -> str:
    bullets = "\n".join(f"- {b}" for b in lab.learned)
    return f"## What you learned\n\n{bullets}\n\nThe problems they answer: [00. Why orchestration?]({WHY})."


def build(lab: Lab, following: Lab | None) -> NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    header = (f"# {lab.order:02d}. {lab.title}\n\n{lab.intro}\n\n*Slides: {lab.slides}.* "
              "Run the cells in order. A `%%node NAME` cell runs its commands on that node; "
              "`{...}` fields are filled in from your cluster. Each check tells you what labkit saw.")
    actions = sorted({f"node_{host_action(c.run)[0]}" for s in lab.steps for c in s.commands if c.node == HOST})
    names = ", ".join(["begin"] * lab.fresh + ["check", "cluster_map", "predict", "topology", *actions])
    nb.cells = [nbformat.v4.new_markdown_cell(header), _code(f"%load_ext labkit.nb\nfrom labkit.nb import {names}")]
    if lab.fresh:
        size = f"{lab.topology.managers} manager(s) and {lab.topology.workers} worker(s)"
        nb.cells += [nbformat.v4.new_markdown_cell(
            f"This lab begins on a fresh swarm of {size}, whatever the labs before left. The cell below makes "
            f"it (about a minute) unless you have started this lab already; `labkit reset {lab.id}` in a "
            "terminal does the same."), _code(f'begin("{lab.id}")', ignore_output=True)]
    for i, step in enumerate(lab.steps, 1):
        nb.cells.extend(_step_cells(i, step))
    if lab.learned:
        nb.cells.append(nbformat.v4.new_markdown_cell(_learned(lab)))
    ending = (f"Next: [{following.order:02d}. {following.title}]({notebook_name(following)})" if following
              else "That is the walk-through. `labkit labs` shows your progress; `labkit reset swarm-init` "
              "starts over on a fresh cluster.")
    nb.cells.append(nbformat.v4.new_markdown_cell(ending))
    return nb


def notebook_name(lab: Lab) -> str:
    return f"{lab.order:02d}-{lab.id}.ipynb"


def build_all() -> dict[str, NotebookNode]:
    labs = course()
    return {notebook_name(lab): build(lab, labs[i + 1] if i + 1 < len(labs) else None)
            for i, lab in enumerate(labs)}


def sources(nb: NotebookNode) -> list[tuple[str, str, list[str]]]:
    """What the generator decides about a notebook: cell types, sources and tags (not outputs)."""
    return [(c.cell_type, c.source, list(c.get("metadata", {}).get("tags", []))) for c in nb.cells]


def execute(names: list[str], lab: str) -> None:
    """Run the notebooks in order on a fresh lab LAB and store their outputs."""
    from nbclient import NotebookClient

    from labkit.backends import get_backend
    from labkit.cluster import Cluster
    from labkit.runner import reset

    os.environ["LABKIT_LAB"] = lab
    os.environ["LABKIT_STRICT"] = "1"
    labs = course()
    first = next((item for item in labs if notebook_name(item) == names[0]), labs[0])  # start.ipynb: the first
    reset(Cluster(get_backend(None, lab)), labs, first.steps[0], print)
    for name in names:
        path = NOTEBOOKS / name
        nb = nbformat.read(path, as_version=4)
        print(f"executing {name}")
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
                       ).execute()
        nbformat.write(nb, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--execute", action="store_true", help="run them on a fresh lab to record outputs")
    parser.add_argument("--lab", default="nbbuild", help="lab to run them on (default: nbbuild)")
    parser.add_argument("names", nargs="*", help="with --execute: only these notebooks, in this order (a lab that "
                        "carries on from the one before starts from a reset to its first step)")
    args = parser.parse_args()
    built = build_all()
    for name, nb in built.items():
        path = NOTEBOOKS / name
        same = path.exists() and sources(nbformat.read(path, as_version=4)) == sources(nb)
        if (same and not args.execute) or (args.execute and args.names and name not in args.names):
            continue  # a notebook not executed keeps its recorded outputs
        nbformat.write(nb, path)
        print(f"wrote {path}")
    if args.execute:
        order = args.names or ["start.ipynb", *sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))]
        execute(order, args.lab)


if __name__ == "__main__":
    sys.exit(main())
