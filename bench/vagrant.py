"""Benchmark the Vagrant backend on Vagrant's docker provider: up, checks from a notebook (one process)
and from a terminal (one `labkit` process each), `labkit status`, reset and down.

    sudo .venv/bin/python bench/vagrant.py [--runs 5]

Runs in a Vagrant project of its own (a copy of the Vagrantfile and recipes in a temporary folder).
Writes bench/results/vagrant.json and prints it. Targets (issue 14): `labkit check` p95 <= 1 s from a
terminal, `labkit status` <= 2 s, checks in a notebook p95 <= 300 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import labkit
from labkit.backends.vagrant import VagrantBackend
from labkit.cluster import Cluster
from labkit.labs import all_steps
from labkit.progress import Progress
from labkit.runner import course, reset, run_check

LAB = "benchvagrant"
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "vagrant.json"
SEED_LABS = 6


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 0.5), "p95": percentile(values, 0.95), "n": len(values)}


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cli(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "labkit", *args], capture_output=True, text=True,
                          env={**os.environ, "LABKIT_LAB": LAB})
    if done.returncode not in (0, 1):  # 1: a check that does not pass
        raise SystemExit(f"labkit {' '.join(args)} failed: {done.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="checks of each step, per way of calling")
    args = parser.parse_args()
    project = Path(tempfile.mkdtemp(prefix="labkit-bench-vagrant-"))
    shutil.copy(ROOT / "Vagrantfile", project)
    shutil.copytree(ROOT / "labkit" / "recipes", project / "labkit" / "recipes")
    os.environ.update({"LABKIT_BACKEND": "vagrant", "LABKIT_VAGRANT_PROVIDER": "docker",
                       "LABKIT_VAGRANT_DIR": str(project), "LABKIT_STATE_DIR": str(project / "state")})
    backend = VagrantBackend(LAB, project=project)
    quiet = lambda _: None  # noqa: E731
    try:
        up_s = timed(lambda: backend.up(None, quiet))
        labs = course()[:SEED_LABS]
        steps = all_steps(labs)
        cluster = Cluster(backend)
        reset_s = timed(lambda: reset(cluster, course(), steps[-1], quiet))
        cluster = labkit.cluster(LAB)
        progress = Progress(LAB)
        notebook: list[float] = []
        terminal: list[float] = []
        for step in steps:
            answer = progress.answer(step.ref)
            for _ in range(args.runs):
                notebook.append(1000 * timed(lambda s=step, a=answer: run_check(cluster, s, answer=a, wait=False,
                                                                               progress=progress)))
                extra = ["--answer", answer] if answer else []
                terminal.append(timed(lambda s=step, e=extra: cli("check", s.ref, *e)))
        status = [timed(lambda: cli("status")) for _ in range(args.runs)]
        down_s = timed(lambda: backend.down(quiet))
    finally:
        backend.down(quiet)
        shutil.rmtree(project, ignore_errors=True)
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "provider": "docker",
        "up_s": up_s,
        "reset_to_last_seed_step_s": reset_s,
        "check_notebook_ms": summary(notebook),
        "check_terminal_s": summary(terminal),
        "status_s": summary(status),
        "down_s": down_s,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
