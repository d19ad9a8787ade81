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
from labkit.labs import all_steps
from labkit.notebook_build import NOTEBOOKS, build_all, sources
from labkit.runner import course, reset

NB_LAB = "cinb"
SANITIZE = NOTEBOOKS / "sanitize.cfg"


def fresh_lab() -> None:
    labs = course()
    reset(Cluster(get_backend(None, NB_LAB)), labs, all_steps(labs)[0], lambda _: None)


def nbval(paths: list[Path], state_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LABKIT_LAB": NB_LAB, "LABKIT_STRICT": "1", "LABKIT_STATE_DIR": str(state_dir)}
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
            "--nbval-sanitize-with", str(SANITIZE), "-q", "--rootdir", str(paths[0].parent), *map(str, paths)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=2400, env=env, cwd=paths[0].parent)


@pytest.fixture(scope="module")
def nb_lab():
    yield NB_LAB
    get_backend(None, NB_LAB).down(lambda _: None)


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
    fresh_lab()
    order = [NOTEBOOKS / "start.ipynb", *sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))]  # start: bare engines
    done = nbval(order, tmp_path)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout


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
