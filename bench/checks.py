"""Benchmark the checks: latency on a converged cluster, and `reset` to the last step.

    .venv/bin/python bench/checks.py [--runs 20]

Writes bench/results/checks.json and prints it. Targets: check p95 <= 300 ms,
reset to the last step of the walk-through <= 10 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import labkit
from labkit.backends.dind import DindBackend
from labkit.cluster import Cluster
from labkit.labs import all_steps
from labkit.progress import Progress
from labkit.runner import course, reset, run_check

LAB = "bench"
RESULTS = Path(__file__).parent / "results" / "checks.json"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="checks of each step")
    parser.add_argument("--resets", type=int, default=3, help="resets to the last step")
    args = parser.parse_args()
    backend = DindBackend(LAB)
    backend.up(None, lambda _: None)
    cluster = Cluster(backend)
    labs = course()
    steps = all_steps(labs)
    reset_times = []
    for _ in range(args.resets):
        start = time.perf_counter()
        reset(cluster, labs, steps[-1], lambda _: None)
        reset_times.append(time.perf_counter() - start)
    progress = Progress(LAB)
    cluster = labkit.cluster(LAB)  # fresh handles to the fresh nodes
    per_check: dict[str, list[float]] = {}
    for step in steps:
        answer = progress.answer(step.ref)
        for _ in range(args.runs):
            start = time.perf_counter()
            run_check(cluster, step, answer=answer, wait=False, progress=progress)
            per_check.setdefault(step.ref, []).append((time.perf_counter() - start) * 1000)
    every = [ms for values in per_check.values() for ms in values]
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "check_ms": {"p50": percentile(every, 0.5), "p95": percentile(every, 0.95), "n": len(every)},
        "per_step_ms": {ref: {"p50": percentile(v, 0.5), "p95": percentile(v, 0.95)} for ref, v in per_check.items()},
        "reset_to_last_step_s": {"median": statistics.median(reset_times), "runs": reset_times},
    }
    backend.down(lambda _: None)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
