"""What the instructor sees, computed from the room's events (pure logic, no I/O).

Each attendee has a state per step, in course order: ``passed``, ``trying`` (with its number of failed
attempts) or ``not started``; the hint of their latest failed check; their last activity. An attendee is
**stuck** on a step after STUCK_ATTEMPTS failed checks of it without a pass, or when nothing passed for
IDLE_SECONDS while others in the room moved on. Stuck attendees come first.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from labkit.room.store import Event

STUCK_ATTEMPTS = 3
IDLE_SECONDS = 300.0


@dataclass
class Cell:
    state: str = "not started"  # passed | trying | not started
    attempts: int = 0  # failed checks since the last pass
    hint: str = ""
    summary: str = ""


@dataclass
class Row:
    name: str
    joined: float
    cells: dict[str, Cell] = field(default_factory=dict)
    last_activity: float | None = None
    last_pass: float | None = None
    current: str | None = None  # the step of their latest check
    stuck: str = ""  # why, in words ("" when not stuck)


def rows(attendees: list[tuple[int, str, float]], events: list[Event], steps: list[str], now: float) -> list[Row]:
    """Every attendee's row, stuck ones first, then by how far they are (furthest first), then by name."""
    by_name = {name: Row(name, joined) for _, name, joined in attendees}
    for event in events:
        row = by_name.get(event.attendee)
        if row is None:
            continue
        ref = f"{event.lab}:{event.step}"
        cell = row.cells.setdefault(ref, Cell())
        if event.passed:
            cell.state, cell.attempts, cell.hint = "passed", 0, ""
            row.last_pass = event.received
        elif cell.state != "passed":
            cell.state, cell.attempts, cell.hint = "trying", cell.attempts + 1, event.hint
        cell.summary = event.summary
        row.last_activity, row.current = event.received, ref
    room_last_pass = max((r.last_pass for r in by_name.values() if r.last_pass), default=None)
    for row in by_name.values():
        cell = row.cells.get(row.current or "")
        if cell is not None and cell.state == "trying" and cell.attempts >= STUCK_ATTEMPTS:
            row.stuck = f"{cell.attempts} failed checks of {row.current}"
        elif (row.current and room_last_pass and (row.last_pass or row.joined) < room_last_pass - IDLE_SECONDS
              and now - (row.last_pass or row.joined) > IDLE_SECONDS):
            minutes = int((now - (row.last_pass or row.joined)) // 60)
            row.stuck = f"nothing passed for {minutes} min while others moved on"
    order = {ref: i for i, ref in enumerate(steps)}

    def progress(row: Row) -> int:
        return max((order.get(ref, -1) for ref, c in row.cells.items() if c.state == "passed"), default=-1)

    return sorted(by_name.values(), key=lambda r: (not r.stuck, -progress(r), r.name))


def room_document(attendees: list[tuple[int, str, float]], events: list[Event], steps: list[str], now: float,
                  joining_open: bool) -> dict[str, Any]:
    """GET /api/room: the steps in course order, how many are past each, and every attendee's row."""
    board = rows(attendees, events, steps, now)
    return {
        "steps": steps,
        "joining": "open" if joining_open else "closed",
        "past": {ref: sum(1 for r in board if r.cells.get(ref, Cell()).state == "passed") for ref in steps},
        "attendees": [
            {"name": r.name, "stuck": r.stuck, "current": r.current, "last_activity": r.last_activity,
             "hint": r.cells[r.current].hint if r.current and r.current in r.cells else "",
             "steps": {ref: {"state": c.state, "attempts": c.attempts, "hint": c.hint} for ref, c in r.cells.items()}}
            for r in board
        ],
    }


def room_csv(document: dict[str, Any]) -> str:
    """The room as CSV: one row per attendee, one column per step (passed, trying N, or empty)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["name", "stuck", *document["steps"]])
    for a in document["attendees"]:
        cells = []
        for ref in document["steps"]:
            cell = a["steps"].get(ref)
            if cell is None:
                cells.append("")
            else:
                cells.append("passed" if cell["state"] == "passed" else f"trying {cell['attempts']}")
        writer.writerow([a["name"], a["stuck"], *cells])
    return out.getvalue()
