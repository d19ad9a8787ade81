"""Benchmark updates and failures the way the labs measure them.

    .venv/bin/python bench/failover.py [--runs 3]

- Failed requests during an update of 3 nginx tasks (all at once), stop-first against start-first,
  counted by the lab's own probe (a service asking http://web/whoami every 0.2 s over the overlay
  network, endpoint mode dnsrr), exactly as lab rolling-update does.
- Time for a stopped worker's task to be re-created: `labkit node stop worker2` until the managers
  mark it Down, and until its replacement task runs.

Writes bench/results/failover.json and prints it. Medians of --runs runs, on a lab of its own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from labkit.backends.dind import DindBackend
from labkit.checks.updates import read_probe
from labkit.cluster import Cluster
from labkit.labs import find
from labkit.report import quiet
from labkit.runner import course
from labkit.swarm import form_swarm

LAB = "benchfail"
RESULTS = Path(__file__).parent / "results" / "failover.json"
PROBE = ("docker service create --detach --name probe --network front --constraint node.role==manager "
         "--stop-signal SIGKILL alpine sh -c 'while true; do wget -q -T 1 -O- http://web/whoami || echo FAIL; "
         "sleep 0.2; done'")


def run(cluster: Cluster, cmd: str) -> str:
    done = cluster["manager1"].run(cmd, timeout=120)
    if not done.ok:
        raise SystemExit(f"{cmd!r} failed: {done.stderr or done.stdout}")
    return done.stdout


def wait(predicate: Any, timeout: float = 120) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise SystemExit("timed out")
        time.sleep(0.1)
    return time.monotonic() - start


def update_failures(cluster: Cluster, image: str, order: str) -> dict[str, Any]:
    """Update web to IMAGE with ORDER, all 3 tasks at once; what the probe saw while it rolled."""
    api = cluster["manager1"].docker.api
    run(cluster, f"docker service update --detach --image {image} --update-order {order} --update-parallelism 3 web")

    def done() -> bool:
        web = next(s for s in api.services() if s["Spec"]["Name"] == "web")
        return (web.get("UpdateStatus") or {}).get("State") == "completed"

    seconds = wait(done)
    web = next(s for s in api.services() if s["Spec"]["Name"] == "web")
    from labkit.checks.updates import _update_window  # the window the lab's check uses

    window = _update_window(web)
    assert window is not None
    ctx = type("Ctx", (), {"api": api})()
    probe = read_probe(ctx, window[0])  # type: ignore[arg-type]
    assert probe is not None
    seen = probe.between(*window)
    return {"order": order, "requests": len(seen.answers), "failed": seen.failed, "seconds": round(seconds, 1)}


def node_failover(cluster: Cluster, backend: DindBackend) -> dict[str, float]:
    api = cluster["manager1"].docker.api
    run(cluster, "docker service create --detach --name pinger --replicas 3 --stop-signal SIGINT alpine ping manager1")
    wait(lambda: len([t for t in api.tasks(filters={"service": "pinger", "desired-state": "running"})
                      if t["Status"]["State"] == "running"]) == 3)
    hosts = {n["ID"]: n["Description"]["Hostname"] for n in api.nodes()}
    start = time.monotonic()
    backend.power("worker2", False, quiet)
    down = wait(lambda: any(n["Description"]["Hostname"] == "worker2" and n["Status"]["State"] == "down"
                            for n in api.nodes()))

    def replaced() -> bool:
        tasks = [t for t in api.tasks(filters={"service": "pinger", "desired-state": "running"})
                 if t["Status"]["State"] == "running"]
        return len(tasks) == 3 and all(hosts.get(t["NodeID"]) != "worker2" for t in tasks)

    wait(replaced)
    total = time.monotonic() - start
    backend.power("worker2", True, quiet)
    run(cluster, "docker service rm pinger")
    return {"down_after_s": round(down, 1), "task_running_elsewhere_after_s": round(total, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    backend = DindBackend(LAB)
    backend.down(quiet)
    backend.up(None, quiet)
    cluster = Cluster(backend)
    form_swarm(cluster.nodes, quiet)
    find("rolling-update:web", course())  # the lab this mirrors exists
    run(cluster, "docker network create --driver overlay front")
    run(cluster, "docker service create --detach --name web --network front --endpoint-mode dnsrr --replicas 3 "
                 "nginx:1.24")
    run(cluster, PROBE)
    time.sleep(5)
    updates: dict[str, list[dict[str, Any]]] = {"stop-first": [], "start-first": []}
    for _ in range(args.runs):  # 1.24 -> 1.25 stop-first, then back to 1.24 start-first
        for order, image in (("stop-first", "nginx:1.25"), ("start-first", "nginx:1.24")):
            updates[order].append(update_failures(cluster, image, order))
            time.sleep(2)
    run(cluster, "docker service rm web probe")
    failovers = [node_failover(cluster, backend) for _ in range(args.runs)]
    results = {
        "runs": args.runs,
        "update_failed_requests_median": {o: statistics.median(r["failed"] for r in rs) for o, rs in updates.items()},
        "update_requests_median": {o: statistics.median(r["requests"] for r in rs) for o, rs in updates.items()},
        "updates": updates,
        "node_down_after_s_median": statistics.median(f["down_after_s"] for f in failovers),
        "task_elsewhere_after_s_median": statistics.median(f["task_running_elsewhere_after_s"] for f in failovers),
        "failovers": failovers,
    }
    backend.down(quiet)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
