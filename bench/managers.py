"""Benchmark what lab managers shows: a fresh swarm of 3 managers and 2 workers, and a leader election.

    .venv/bin/python bench/managers.py [--runs 3]

- `labkit reset managers` (the lab begins on a fresh swarm of its own 5 nodes): seconds until ready.
- The leader powered off (`labkit node stop`): seconds until another manager leads, as the lab's check
  measures it (the new leader's first node event after the stop), and until `docker node ls` on a
  surviving manager names the new leader.
- A stopped manager powered on again: seconds until its engine answers and until it is Reachable.

Writes bench/results/managers.json and prints it. Medians of --runs runs, on a lab of its own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import docker.errors

from labkit.backends.dind import DindBackend
from labkit.checks.base import timestamp
from labkit.checks.managers import timestamp_ns
from labkit.cluster import Cluster
from labkit.labs import find
from labkit.report import quiet
from labkit.runner import course, reset

LAB = "benchmgr"
RESULTS = Path(__file__).parent / "results" / "managers.json"


def managers(node: Any) -> dict[str, dict[str, Any]]:
    return {n["Description"]["Hostname"]: n.get("ManagerStatus") or {} for n in node.docker.api.nodes()
            if n.get("ManagerStatus")}


def leader(cluster: Cluster) -> str:
    for node in cluster.managers:
        if node.health() != "running":
            continue
        try:
            return next((h for h, s in managers(node).items() if s.get("Leader")), "")
        except docker.errors.APIError:
            continue
    return ""


def wait(predicate: Any, timeout: float = 180) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise SystemExit("timed out")
        time.sleep(0.2)
    return time.monotonic() - start


def took_office(cluster: Cluster, old: str) -> float:
    """Seconds from OLD's stop to the new leader's first 'every node unknown' event (what the lab's check says)."""
    since = timestamp(cluster[old].stopped_at() or "")
    survivor = next(n for n in cluster.managers if n.name != old and n.health() == "running")
    for event in survivor.docker.api.events(since=int(since.timestamp()), until=int(time.time()),
                                            filters={"type": "node", "event": "update"}, decode=True):
        attrs = event.get("Actor", {}).get("Attributes", {})
        at = timestamp_ns(event.get("timeNano", 0))
        if at > since and attrs.get("state.old") == "ready" and attrs.get("state.new") == "unknown":
            return (at - since).total_seconds()
    return float("nan")


def one_run(cluster: Cluster, labs: list[Any]) -> dict[str, float]:
    _, first = find("managers:quorum", labs)
    assert first is not None
    started = time.monotonic()
    reset(cluster, labs, first, quiet)
    ready = time.monotonic() - started
    backend = cluster.backend
    old = leader(cluster)
    started = time.monotonic()
    backend.power(old, False, quiet)
    listed = wait(lambda: leader(cluster) not in ("", old))
    office = took_office(cluster, old)
    started = time.monotonic()
    backend.power(old, True, quiet)
    answers = time.monotonic() - started
    survivor = next(n for n in cluster.managers if n.name != old)
    reachable = answers + wait(lambda: managers(survivor).get(old, {}).get("Reachability") == "reachable")
    return {"reset_to_fresh_swarm_s": ready, "new_leader_in_office_s": office, "new_leader_listed_s": listed,
            "restarted_manager_engine_answers_s": answers, "restarted_manager_reachable_s": reachable}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    labs = course()
    backend = DindBackend(LAB)
    cluster = Cluster(backend)
    runs = []
    try:
        for i in range(args.runs):
            runs.append(one_run(cluster, labs))
            print(f"run {i + 1}: " + ", ".join(f"{k} {v:.1f}" for k, v in runs[-1].items()), flush=True)
    finally:
        backend.down(quiet)
    result = {key: round(statistics.median(r[key] for r in runs), 1) for key in runs[0]}
    result["runs"] = args.runs
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
