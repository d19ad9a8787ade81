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


class Board:
    """The room's rows, kept up to date event by event (a read costs attendees x steps, not all events)."""

    def __init__(self, steps: list[str]) -> None:
        self.steps = steps
        self.order = {ref: i for i, ref in enumerate(steps)}
        self.by_name: dict[str, Row] = {}
        self.last_pass: float | None = None  # the room's latest pass

    def attendee(self, name: str, joined: float) -> None:
        self.by_name.setdefault(name, Row(name, joined))

    def add(self, event: Event) -> None:
        row = self.by_name.get(event.attendee)
        if row is None:
            return
        ref = f"{event.lab}:{event.step}"
        cell = row.cells.setdefault(ref, Cell())
        if event.passed:
            cell.state, cell.attempts, cell.hint = "passed", 0, ""
            row.last_pass = event.received
            self.last_pass = max(self.last_pass or 0.0, event.received)
        elif cell.state != "passed":
            cell.state, cell.attempts, cell.hint = "trying", cell.attempts + 1, event.hint
        cell.summary = event.summary
        row.last_activity, row.current = event.received, ref

    def rows(self, now: float) -> list[Row]:
        """Every attendee's row, stuck ones first, then by how far they are (furthest first), then by name."""
        for row in self.by_name.values():
            row.stuck = self._stuck(row, now)
        return sorted(self.by_name.values(), key=lambda r: (not r.stuck, -self._progress(r), r.name))

    def _stuck(self, row: Row, now: float) -> str:
        cell = row.cells.get(row.current or "")
        if cell is not None and cell.state == "trying" and cell.attempts >= STUCK_ATTEMPTS:
            return f"{cell.attempts} failed checks of {row.current}"
        since = row.last_pass or row.joined
        if row.current and self.last_pass and since < self.last_pass - IDLE_SECONDS and now - since > IDLE_SECONDS:
            return f"nothing passed for {int((now - since) // 60)} min while others moved on"
        return ""

    def _progress(self, row: Row) -> int:
        return max((self.order.get(ref, -1) for ref, c in row.cells.items() if c.state == "passed"), default=-1)


def board_of(attendees: list[tuple[int, str, float]], events: list[Event], steps: list[str]) -> Board:
    board = Board(steps)
    for _, name, joined in attendees:
        board.attendee(name, joined)
    for event in events:
        board.add(event)
    return board


def rows(attendees: list[tuple[int, str, float]], events: list[Event], steps: list[str], now: float) -> list[Row]:
    return board_of(attendees, events, steps).rows(now)


def room_document(board: Board, now: float, joining_open: bool) -> dict[str, Any]:
    """GET /api/room: the steps in course order, how many are past each, and every attendee's row."""
    steps = board.steps
    current = board.rows(now)
    return {
        "steps": steps,
        "joining": "open" if joining_open else "closed",
        "past": {ref: sum(1 for r in current if r.cells.get(ref, Cell()).state == "passed") for ref in steps},
        "attendees": [
            {"name": r.name, "stuck": r.stuck, "current": r.current, "last_activity": r.last_activity,
             "hint": r.cells[r.current].hint if r.current and r.current in r.cells else "",
             "steps": {ref: {"state": c.state, "attempts": c.attempts, "hint": c.hint} for ref, c in r.cells.items()}}
            for r in current
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
