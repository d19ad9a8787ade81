"""Benchmark the room: simulated attendees on loopback posting their checks while the instructor's
dashboard listens.

    .venv/bin/python bench/room.py [--attendees 200] [--every 2] [--seconds 60]

Starts `labkit room serve` (a real process, a fresh database), joins every attendee, then each posts one
event every EVERY seconds for SECONDS, as `labkit check` does. The dashboard's stream is open throughout;
after the load, one more event times how long the dashboard takes to see it. Writes
bench/results/room.json and prints it. Targets (issue 15): p99 <= 100 ms on this 2-core machine, 0 events lost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

RESULTS = Path(__file__).parent / "results" / "room.json"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start(db: Path, log: Path) -> tuple[subprocess.Popen[bytes], str, str, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "labkit", "room", "serve", "--port", str(port), "--db", str(db)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = re.search(r"\?token=(\S+)\n.*Join code: (\d+)", log.read_text())
        if found:
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/room", timeout=1)
                return proc, f"http://127.0.0.1:{port}", found.group(1), found.group(2)
            except httpx.HTTPError:
                pass
        time.sleep(0.05)
    raise SystemExit(f"the room did not start: {log.read_text()}")


def event(i: int) -> dict[str, Any]:
    return {"lab": "swarm-init", "step": ["info", "init", "root-ca"][i % 3], "passed": i % 4 == 0,
            "summary": "bench", "hint": "a hint", "seconds": 0.05, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


async def attendee(http: httpx.AsyncClient, url: str, token: str, every: float, until: float,
                   latencies: list[float], failures: list[str]) -> int:
    await asyncio.sleep(random.uniform(0, every))  # attendees are not in step
    sent, i = 0, 0
    while time.monotonic() < until:
        started = time.perf_counter()
        try:
            answer = await http.post(f"{url}/api/events", json=event(i), headers={"Authorization": f"Bearer {token}"})
            if answer.status_code == 200:
                sent += 1
            else:
                failures.append(str(answer.status_code))
        except httpx.HTTPError as exc:
            failures.append(type(exc).__name__)
        latencies.append((time.perf_counter() - started) * 1000)
        i += 1
        await asyncio.sleep(max(0.0, every - (time.perf_counter() - started)))
    return sent


async def dashboard(http: httpx.AsyncClient, url: str, headers: dict[str, str], until: float,
                    reads: list[float]) -> None:
    """The projector's page all along: on each "changed", read the room (at most every 0.4 s, as the page)."""
    async with http.stream("GET", f"{url}/api/stream", headers=headers) as stream:
        lines = stream.aiter_lines()
        last = 0.0
        while time.monotonic() < until:
            try:
                line = await asyncio.wait_for(anext(lines), timeout=max(0.1, until - time.monotonic()))
            except TimeoutError:
                return
            if line != "event: changed":
                continue
            await asyncio.sleep(max(0.0, last + 0.4 - time.monotonic()))
            last = time.monotonic()
            t0 = time.perf_counter()
            await http.get(f"{url}/api/room", headers=headers)
            reads.append((time.perf_counter() - t0) * 1000)


async def dashboard_delay(url: str, instructor: str, attendee_token: str) -> float:
    """Seconds from an attendee's post until the dashboard's stream says so and /api/room shows it."""
    headers = {"Authorization": f"Bearer {instructor}"}
    async with httpx.AsyncClient(timeout=30) as http, http.stream("GET", f"{url}/api/stream", headers=headers) as s:
        lines = s.aiter_lines()
        await anext(lines)  # the first "changed", sent at once
        marker = {**event(1), "summary": "the marker"}
        started = time.perf_counter()
        await http.post(f"{url}/api/events", json=marker, headers={"Authorization": f"Bearer {attendee_token}"})
        async for line in lines:
            if line == "event: changed":
                break
        doc = (await http.get(f"{url}/api/room", headers=headers)).json()
        assert doc["attendees"], "the room shows nobody"
        return time.perf_counter() - started


async def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="labkit-bench-room-"))
    proc, url, instructor, code = start(folder / "room.db", folder / "room.log")
    try:
        limits = httpx.Limits(max_connections=args.attendees + 10, max_keepalive_connections=args.attendees + 10)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            tokens = []
            for n in range(args.attendees):
                answer = await http.post(f"{url}/api/join", json={"code": code, "name": f"attendee{n:03d}"})
                tokens.append(answer.json()["token"])
            latencies: list[float] = []
            failures: list[str] = []
            stream_headers = {"Authorization": f"Bearer {instructor}"}
            until = time.monotonic() + args.seconds
            reads: list[float] = []
            projector = asyncio.create_task(dashboard(http, url, stream_headers, until, reads))
            started = time.perf_counter()
            sent = await asyncio.gather(*(attendee(http, url, t, args.every, until, latencies, failures)
                                          for t in tokens))
            elapsed = time.perf_counter() - started
            await projector
            room_ms = []
            for _ in range(5):
                t0 = time.perf_counter()
                await http.get(f"{url}/api/room", headers=stream_headers)
                room_ms.append((time.perf_counter() - t0) * 1000)
        delay = await dashboard_delay(url, instructor, tokens[0])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    with sqlite3.connect(folder / "room.db") as db:
        stored = db.execute("SELECT COUNT(*) FROM events").fetchone()[0] - 1  # less the marker
    accepted = sum(sent)
    return {
        "date": time.strftime("%Y-%m-%d"),
        "attendees": args.attendees, "every_s": args.every, "seconds": args.seconds,
        "requests": len(latencies), "requests_per_s": len(latencies) / elapsed,
        "latency_ms": {"p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
                       "max": max(latencies)},
        "accepted": accepted, "stored": stored, "lost": accepted - stored, "failed_requests": len(failures),
        "room_read_ms_with_all_events": percentile(room_ms, 0.5),
        "dashboard_reads_during_load": len(reads),
        "dashboard_read_ms_during_load": {"p50": percentile(reads, 0.5), "p99": percentile(reads, 0.99)},
        "dashboard_update_s": delay,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attendees", type=int, default=200)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between one attendee's events")
    parser.add_argument("--seconds", type=float, default=60.0)
    results = asyncio.run(run(parser.parse_args()))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
