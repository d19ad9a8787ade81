"""Benchmark `labkit reset LAB:STEP`: the first time (a replay, from the nearest state saved before the
step or a fresh cluster, then the state is saved) and later (the saved state put back), on a lab of its own.

    .venv/bin/python bench/reset.py [--steps REF ...] [--every] [--runs 3]

By default the last step of every lab (--every: every step of the course), in the course's order, so that
a first reset replays from the state the row before saved. Each step: its saved state forgotten, one reset
timed (first, and how: replayed afresh or from an earlier state), then RUNS
resets timed (later: median, max), each after the learner's usual damage (the lab's services removed);
one only for a state that is not saved (a lost quorum, a node cut off: see
labkit/rewind.py's unlikely_back), which replays every time, as the row says.
Writes bench/results/reset.json and prints a table; a step whose later put-backs were made again (a task
stalled or rejected as the engines started: see labkit/rewind.py's put_back_again) says how many, and why.
Target (issue 17): later <= 3 s, median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from labkit import rewind
from labkit.backends.dind import DindBackend
from labkit.backends.dind_states import LABEL_STATE, DindStates
from labkit.cluster import Cluster
from labkit.errors import LabkitError
from labkit.labs import Step, all_steps
from labkit.runner import course, reset, starting_lab

LAB = "benchreset"
RESULTS = Path(__file__).parent / "results" / "reset.json"


def default_steps(labs: list[Any]) -> list[Step]:
    return [lab.steps[-1] for lab in labs]


AGAIN = {"stalled": "had still not started", "rejected": "rejected"}  # why a put-back was made again


def timed_reset(cluster: Cluster, labs: list[Any], target: Step) -> tuple[float, str, bool, list[str]]:
    """How long a reset to TARGET took, how it got there, whether it saved that state, and why it put the
    state back again, if it did (see AGAIN and rewind.put_back_again)."""
    said: list[str] = []
    began = time.monotonic()
    reset(cluster, labs, target, said.append)
    took = time.monotonic() - began
    saved = any("Saving" in s for s in said)
    again = [why for s in said if "putting the state back again" in s for why, text in AGAIN.items() if text in s]
    if any("Fresh cluster" in s for s in said):
        return took, "replayed", saved, again
    if any("then replaying from there" in s for s in said):
        return took, "from an earlier state", saved, again
    return took, "put back", saved, again


def damage(cluster: Cluster) -> None:
    """What a learner might have done since: every service removed."""
    for node in cluster.managers:
        if node.health() == "running" and node.run("docker service rm $(docker service ls -q) 2>/dev/null").ok:
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", nargs="*", help="step refs (LAB:STEP)")
    parser.add_argument("--every", action="store_true", help="every step of the course")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="where the figures go (default: bench/results/reset.json, the README's; an experiment "
                             "writes elsewhere)")
    args = parser.parse_args()
    labs = course()
    steps = all_steps(labs)
    chosen = [s for s in steps if s.ref in args.steps] if args.steps else None
    targets = chosen or (steps if args.every else default_steps(labs))
    backend = DindBackend(LAB)
    backend.up(None, lambda _: None)
    cluster = Cluster(backend)
    states = DindStates(backend)
    rows: list[dict[str, Any]] = []
    for target in targets:
        key = states.full_key(rewind.state_key(starting_lab(labs, target), target))
        for volume in backend.host.volumes.list(filters={"label": f"{LABEL_STATE}={key}"}):
            volume.remove(force=True)
        try:
            row = measure(cluster, labs, target, args.runs)
        except LabkitError as exc:  # one step that fails is a row that says so; the others are still measured
            row = {"step": target.ref, "failed": str(exc)}
            print(f"{target.ref:32} FAILED: {exc}", flush=True)
        rows.append(row)
        write(rows, steps, partial=bool(args.steps), out=args.out)  # a run stopped halfway keeps its rows
    backend.down(lambda _: None)
    written = write(rows, steps, partial=bool(args.steps), out=args.out)
    print(json.dumps({k: v for k, v in written.items() if k != "steps"}))


def measure(cluster: Cluster, labs: list[Any], target: Step, runs: int) -> dict[str, Any]:
    """TARGET's row: its first reset, then RUNS later ones (one only for a state that is not saved)."""
    first, start, saved, _ = timed_reset(cluster, labs, target)
    later = []
    hows = set()
    again: list[str] = []
    for _ in range(runs if saved else 1):  # a state not saved (see rewind.unlikely_back) replays again
        damage(cluster)
        took, how, _, why = timed_reset(cluster, labs, target)
        later.append(took)
        hows.add(how)
        again += why
    row = {"step": target.ref, "first_s": round(first, 1), "first": start,
           "later_median_s": round(statistics.median(later), 1), "later_max_s": round(max(later), 1),
           "later": "/".join(sorted(hows)), "later_s": [round(t, 1) for t in later]}
    if again:  # later put-backs made again, by why (a stalled task, a rejected one)
        row["again"] = {why: again.count(why) for why in sorted(set(again))}
    print(f"{row['step']:32} first {row['first_s']:6.1f} s ({start})   later {row['later_median_s']:5.1f} s "
          f"(max {row['later_max_s']:5.1f}, {row['later']}){' again: ' + str(row['again']) if again else ''}",
          flush=True)
    return row


def write(rows: list[dict[str, Any]], steps: list[Step], partial: bool, out: Path = RESULTS) -> dict[str, Any]:
    """Write ROWS to OUT (with PARTIAL, a few steps again: the other steps' figures stay) and their medians."""
    if partial and out.exists():
        done = {r["step"] for r in rows}
        rows = [r for r in json.loads(out.read_text())["steps"] if r["step"] not in done] + rows
        order = [s.ref for s in steps]
        rows = sorted(rows, key=lambda r: order.index(r["step"]))
    measured = [r for r in rows if "failed" not in r]
    put_back = [r["later_median_s"] for r in measured if r["later"] == "put back"]
    result = {"steps": rows, "put_back_median_s": round(statistics.median(put_back), 1) if put_back else None,
              "first_median_s": round(statistics.median(r["first_s"] for r in measured), 1) if measured else None}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result

if __name__ == "__main__":
    main()
