"""The notebooks: built from labs/, and regression-tested with nbval on a fresh real cluster."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from labkit.backends import get_backend
from labkit.cluster import Cluster
from labkit.labs import all_steps, segments
from labkit.notebook_build import NOTEBOOKS, build_all, notebook_name, sources
from labkit.runner import course, reset

NB_LAB = "cinb"
FRESH_LAB = "cinb-fresh"  # the notebooks of the labs that begin on a fresh swarm, beside the chained ones
SANITIZE = NOTEBOOKS / "sanitize.cfg"


def fresh_lab() -> None:
    labs = course()
    reset(Cluster(get_backend(None, NB_LAB)), labs, all_steps(labs)[0], lambda _: None)


def nbval_argv(paths: list[Path]) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
            "--nbval-sanitize-with", str(SANITIZE), "-q", "--rootdir", str(paths[0].parent), *map(str, paths)]


def nbval_env(lab: str, state_dir: Path) -> dict[str, str]:
    return {**os.environ, "LABKIT_LAB": lab, "LABKIT_STRICT": "1", "LABKIT_STATE_DIR": str(state_dir)}


def nbval(paths: list[Path], state_dir: Path, lab: str = NB_LAB) -> subprocess.CompletedProcess[str]:
    return subprocess.run(nbval_argv(paths), capture_output=True, text=True, timeout=2400,
                          env=nbval_env(lab, state_dir), cwd=paths[0].parent)


def failure_report(out: str) -> str:
    """nbval's words on the first failing cell, in full (the later failures of a chained run often only
    follow from it), then the summary."""
    first = out.find("_____")
    head = out[first:first + 6000] if first >= 0 else ""
    return f"{head}\n[...]\n{out[-2000:]}"


def notebook_parts() -> list[list[Path]]:
    """The notebooks cut like the course: start and the chained labs, then the labs that begin on a fresh
    swarm (their notebooks make it themselves with begin())."""
    return [[NOTEBOOKS / "start.ipynb"] * (not part[0].fresh) + [NOTEBOOKS / notebook_name(lab) for lab in part]
            for part in segments(course())]


@pytest.fixture(scope="module")
def nb_lab():
    yield NB_LAB
    for lab in (NB_LAB, FRESH_LAB):
        get_backend(None, lab).down(lambda _: None)


def test_lab_notebooks_are_built_from_the_lab_definitions() -> None:
    for name, built in build_all().items():
        committed = nbformat.read(NOTEBOOKS / name, as_version=4)
        assert sources(committed) == sources(built), f"{name} differs from labs/: run python -m labkit.notebook_build"


def test_every_notebook_has_recorded_outputs_without_errors() -> None:
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.get("execution_count") for c in code), f"{path.name} has cells that were never run"
        errors = [o for c in code for o in c.outputs if o.output_type == "error"]
        assert errors == [], f"{path.name} recorded an error: {errors[0].get('evalue')}"


@pytest.mark.cluster
@pytest.mark.notebooks
def test_every_notebook_passes_nbval_top_to_bottom_on_a_fresh_cluster(nb_lab, tmp_path: Path) -> None:
    """The chained part (start, then 01 onwards on bare engines) in one lab; beside it, in a second lab,
    the notebooks of the labs that begin on a fresh swarm, one after another (each makes its own)."""
    fresh_lab()
    first, *fresh = notebook_parts()
    runs = [subprocess.Popen(nbval_argv(paths), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=nbval_env(lab, tmp_path / lab), cwd=NOTEBOOKS)
            for lab, paths in ((NB_LAB, first), (FRESH_LAB, [p for part in fresh for p in part])) if paths]
    outputs = [run.communicate(timeout=2400)[0] for run in runs]
    for run, out in zip(runs, outputs, strict=True):
        assert run.returncode == 0, failure_report(out)
        assert " passed" in out
    assert len(runs) == 1 + bool(fresh)


@pytest.mark.cluster
@pytest.mark.notebooks
def test_nbval_fails_when_an_expected_output_is_altered(nb_lab, tmp_path: Path) -> None:
    copy = tmp_path / "01-swarm-init.ipynb"
    shutil.copy(NOTEBOOKS / "01-swarm-init.ipynb", copy)
    nb = json.loads(copy.read_text())
    cell = next(c for c in nb["cells"] if "".join(c["source"]) == 'check("swarm-init:init")')
    data = cell["outputs"][0]["data"]
    assert "PASS swarm-init:init" in "".join(data["text/plain"])
    data["text/plain"] = "FAIL swarm-init:init: Swarm mode is still inactive on manager1."
    copy.write_text(json.dumps(nb))
    fresh_lab()
    done = nbval([copy], tmp_path / "state")
    assert done.returncode != 0
    assert "FAIL swarm-init:init" in done.stdout and "PASS swarm-init:init" in done.stdout
