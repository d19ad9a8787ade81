"""Benchmark the lab cluster: up, swarm forming, down, image build, memory.

    .venv/bin/python bench/cluster.py            # cluster figures (images cached)
    .venv/bin/python bench/cluster.py --build    # also images from nothing (removes them first)

Writes bench/results/cluster.json and prints a Markdown table for the README.
Targets on a 2-core machine: 3 engines <= 5 s, 10 engines <= 15 s, down <= 3 s,
images from nothing <= 90 s, a running 3-node lab < 1 GiB.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker

from labkit import engine, images
from labkit.backends.dind import DindBackend
from labkit.settings import settings
from labkit.swarm import form_swarm
from labkit.topology import LABEL_CACHE, LABEL_LAB, Topology

LAB = "bench"
RESULTS = Path(__file__).parent / "results" / "cluster.json"
CGROUP_MEMORY = Path("/sys/fs/cgroup/memory")


def quiet(_: str) -> None:
    pass


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def build_from_nothing(host: docker.DockerClient) -> float:
    for image in host.images.list(filters={"label": f"{LABEL_CACHE}=image"}):
        host.images.remove(image.id, force=True)
    shutil.rmtree(settings().cache_dir, ignore_errors=True)
    return timed(lambda: images.ensure_images(host, quiet))


def lab_memory_bytes(host: docker.DockerClient, backend: DindBackend, peak: bool) -> int:
    """Memory of the lab's containers and of the task containers inside its nodes.

    Inner engines create their cgroups beside the nodes' (cgroup v1 remount), so
    both are summed. Peak uses max_usage_in_bytes; otherwise current usage.
    """
    ids = [c.id for c in host.containers.list(filters={"label": f"{LABEL_LAB}={LAB}"})]
    for node in backend.nodes():
        ids += [c.id for c in node.docker.containers.list()]
    name = "memory.max_usage_in_bytes" if peak else "memory.usage_in_bytes"
    total = 0
    for cid in ids:
        path = CGROUP_MEMORY / "docker" / cid / name
        if path.exists():
            total += int(path.read_text())
        else:  # cgroup v2 or another layout: the engine's own figure
            total += host.api.stats(cid, stream=False).get("memory_stats", {}).get("usage", 0) if not peak else 0
    return total


def cycle(host: docker.DockerClient, topology: Topology) -> dict[str, float]:
    backend = DindBackend(LAB, host)
    backend.down(quiet)
    up = timed(lambda: backend.up(topology, quiet))
    swarm = timed(lambda: form_swarm(backend.nodes(), quiet))
    figures = {"up_s": up, "swarm_s": swarm}
    if len(topology.nodes) == 3:
        manager = backend.node("manager1")
        manager.run("docker service create -d --name pinger --replicas 3 alpine ping manager1")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            tasks = manager.docker.api.tasks(filters={"service": "pinger", "desired-state": "running"})
            if sum(t["Status"]["State"] == "running" for t in tasks) == 3:
                break
            time.sleep(0.2)
        time.sleep(3)
        figures["memory_now_mib"] = lab_memory_bytes(host, backend, peak=False) / 2**20
        figures["memory_peak_mib"] = lab_memory_bytes(host, backend, peak=True) / 2**20
    figures["down_s"] = timed(lambda: backend.down(quiet))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", action="store_true", help="also time the image build from nothing")
    parser.add_argument("--runs", type=int, default=3, help="repetitions of each cluster cycle")
    args = parser.parse_args()
    host = engine.host_client()
    results: dict[str, Any] = {
        "machine": f"{platform.node()} {platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores",
        "engine": host.version()["Version"],
        "date": time.strftime("%Y-%m-%d"),
    }
    if args.build:
        results["images_from_nothing_s"] = build_from_nothing(host)
    images.ensure_images(host, quiet)
    for label, topology in (("3 nodes", Topology(1, 2)), ("10 nodes", Topology(1, 9))):
        runs = [cycle(host, topology) for _ in range(args.runs)]
        results[label] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        results[label]["runs"] = len(runs)
    RESULTS.parent.mkdir(exist_ok=True)
    if RESULTS.exists() and not args.build:  # keep the last build figure
        results.setdefault("images_from_nothing_s", json.loads(RESULTS.read_text()).get("images_from_nothing_s"))
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
