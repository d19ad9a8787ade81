"""Benchmark seats: how fast one is ready, how much memory each takes, how many fit on this machine.

    .venv/bin/python bench/seats.py [--seats 5] [--runs 3]

Builds labkit/seat and its engine template if needed (not timed: once per image). Then:
- ready time, RUNS times: `labkit seat run` to JupyterLab answering with the lab up (median, max);
- SEATS seats side by side with their labs up: the machine's MemAvailable before and after, per seat;
  seats that fit in 24 GiB and 64 GiB hosts, keeping 2 GiB for the host, from that per-seat figure;
- one seat during a heavy lab (a 3-manager 2-worker swarm with services, `labkit reset
  managers:leader-down` inside it): the MemAvailable it took beyond the idle seat;
- the seat's cgroup, which holds its engine, JupyterLab and its whole lab (the figure its memory cap
  limits).
Writes bench/results/seats.json and prints it. Targets (issue 16): ready <= 10 s; >= 30 seats in 24 GiB.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import docker

from labkit import engine, seat

RESULTS = Path(__file__).parent / "results" / "seats.json"
GIB = 1024**3
HOST_RESERVE = 2 * GIB  # kept for the host, the hub and the proxy


def quiet(_: str) -> None:
    pass


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise SystemExit("no MemAvailable in /proc/meminfo")


def seat_memory(client: docker.DockerClient, name: str) -> int:
    """The seat's memory as its cgroup (v1) counts it, with every nested container in it, less the page
    cache that can be dropped at once (what `docker stats` shows; its stats are empty on this machine)."""
    container_id = client.containers.get(seat.container_name(name)).id
    group = Path("/sys/fs/cgroup/memory/docker") / container_id
    stat = dict(line.split() for line in (group / "memory.stat").read_text().splitlines())
    return int((group / "memory.usage_in_bytes").read_text()) - int(stat.get("total_inactive_file", 0))


def start_ready(client: docker.DockerClient, name: str) -> float:
    began = time.monotonic()
    seat.run_seat(client, name, None, quiet)
    seat.wait_ready(client, name)
    return time.monotonic() - began


def remove_all(client: docker.DockerClient, names: list[str]) -> None:
    for s in seat.seats(client):
        if s.name in names:
            seat.remove_seat(client, s.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seats", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    client = engine.connect()
    seat.ensure_seat_image(client, print)
    seat.engine_template(client)  # made by the first seat after a build (about 5 s), then shared
    names = [f"bench-seat-{i}" for i in range(max(args.seats, 1))]
    remove_all(client, names)

    ready = []
    for _ in range(args.runs):
        ready.append(start_ready(client, names[0]))
        seat.remove_seat(client, names[0])

    before = mem_available()
    for name in names:
        start_ready(client, name)
    time.sleep(10)  # let the engines settle after start
    after = mem_available()
    idle = [seat_memory(client, name) for name in names]
    per_seat = (before - after) / len(names)

    container = client.containers.get(seat.container_name(names[0]))
    before_heavy = mem_available()
    done = container.exec_run(["labkit", "reset", "managers:leader-down"])
    time.sleep(5)
    heavy_extra = before_heavy - mem_available()
    remove_all(client, names)

    result = {
        "ready_seconds": {"median": round(statistics.median(ready), 1), "max": round(max(ready), 1),
                          "runs": len(ready)},
        "memory_mib": {
            "machine_per_seat_lab_up": round(per_seat / 2**20),
            "machine_per_seat_heavy_lab": round((per_seat + heavy_extra) / 2**20),
            "heavy_lab_reset_ok": done.exit_code == 0,
            "seat_cgroup_lab_up_median": round(statistics.median(idle) / 2**20),
        },
        "seats_measured": len(names),
        "seats_fit_lab_up": {
            "24_GiB": int((24 * GIB - HOST_RESERVE) // per_seat),
            "64_GiB": int((64 * GIB - HOST_RESERVE) // per_seat),
        },
        "seats_fit_all_in_the_heavy_lab": {
            "24_GiB": int((24 * GIB - HOST_RESERVE) // (per_seat + heavy_extra)),
            "64_GiB": int((64 * GIB - HOST_RESERVE) // (per_seat + heavy_extra)),
        },
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
