"""The room's data, in SQLite (WAL): the room's settings, attendees and their check events.

Tokens are stored as SHA-256 hashes only (they are 256-bit random, so a plain hash suffices); a token
is shown once, when it is made. Every write is committed before the request that made it is answered,
so nothing is lost across a restart.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.errors import JoinRefused

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attendees (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, token_hash TEXT NOT NULL UNIQUE, joined REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, attendee INTEGER NOT NULL REFERENCES attendees(id), lab TEXT NOT NULL,
    step TEXT NOT NULL, passed INTEGER NOT NULL, summary TEXT NOT NULL, hint TEXT NOT NULL,
    seconds REAL NOT NULL, at TEXT NOT NULL, received REAL NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_attendee ON events(attendee, id);
"""
NAME_MAX = 40


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Event:
    attendee: str
    lab: str
    step: str
    passed: bool
    summary: str
    hint: str
    seconds: float
    at: str
    received: float


class RoomStore:
    """One room. Thread-safe: the server writes from its event loop, tests and tools from anywhere."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process restart
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    # ----------------------------------------------------------- settings

    def _get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set(self, key: str, value: str) -> None:
        self._db.execute("INSERT INTO settings(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
                         (key, value, value))

    def open_room(self) -> tuple[str | None, str]:
        """The instructor token (None when the room exists already: it was shown then) and the join code."""
        with self._lock:
            token = None
            if self._get("instructor") is None:
                token = new_token()
                self._set("instructor", token_hash(token))
                self._set("code", f"{secrets.randbelow(10**6):06d}")
                self._set("joining", "open")
            return token, str(self._get("code"))

    def new_instructor_token(self) -> str:
        """Replace the instructor token (the old one stops working) and return the new one."""
        with self._lock:
            token = new_token()
            self._set("instructor", token_hash(token))
            return token

    def cookie_secret(self) -> str:
        """The secret the dashboard's cookie is signed with, kept so a restart keeps the instructor in."""
        with self._lock:
            secret = self._get("cookie_secret")
            if secret is None:
                secret = new_token()
                self._set("cookie_secret", secret)
            return secret

    def is_instructor(self, token: str | None) -> bool:
        stored = self._get("instructor")
        return bool(token) and stored is not None and secrets.compare_digest(stored, token_hash(str(token)))

    @property
    def code(self) -> str:
        return str(self._get("code") or "")

    @property
    def joining_open(self) -> bool:
        return self._get("joining") == "open"

    def set_joining(self, open_: bool) -> None:
        with self._lock:
            self._set("joining", "open" if open_ else "closed")

    # ----------------------------------------------------------- attendees

    def join(self, code: str, name: str) -> str:
        """Register NAME with the room's CODE; the attendee's token (shown only now)."""
        name = " ".join(str(name).split())
        if not name or len(name) > NAME_MAX:
            raise JoinRefused(f"Give a name of 1 to {NAME_MAX} characters.")
        with self._lock:
            if not secrets.compare_digest(str(code), str(self._get("code"))):
                raise JoinRefused("That join code is not this room's. Ask the instructor for the code.")
            if self._get("joining") != "open":
                raise JoinRefused("The instructor has closed joining for this room.")
            token = new_token()
            try:
                self._db.execute("INSERT INTO attendees(name, token_hash, joined) VALUES(?, ?, ?)",
                                 (name, token_hash(token), time.time()))
            except sqlite3.IntegrityError:
                raise JoinRefused(f"Someone in this room is already called {name!r}: choose another name.") from None
            return token

    def hub_attendee(self, name: str) -> tuple[int, str]:
        """(id, name) of the attendee JupyterHub calls NAME, who joins on their first event: the hub has
        checked who they are, so no code is needed (and their token is the hub's, never stored)."""
        with self._lock:
            row = self._db.execute("SELECT id, name FROM attendees WHERE name = ?", (name,)).fetchone()
            if row is None:
                self._db.execute("INSERT INTO attendees(name, token_hash, joined) VALUES(?, ?, ?)",
                                 (name, token_hash(new_token()), time.time()))
                row = self._db.execute("SELECT id, name FROM attendees WHERE name = ?", (name,)).fetchone()
        return int(row[0]), str(row[1])

    def attendee(self, token: str | None) -> tuple[int, str] | None:
        """(id, name) of the attendee TOKEN belongs to."""
        if not token:
            return None
        row = self._db.execute("SELECT id, name FROM attendees WHERE token_hash = ?", (token_hash(token),)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def attendees(self) -> list[tuple[int, str, float]]:
        return [(int(r[0]), str(r[1]), float(r[2]))
                for r in self._db.execute("SELECT id, name, joined FROM attendees ORDER BY name")]

    # ----------------------------------------------------------- events

    def add_events(self, attendee: int, events: list[dict[str, Any]]) -> int:
        """Store validated EVENTS of ATTENDEE in one transaction; how many."""
        now = time.time()
        rows = [(attendee, e["lab"], e["step"], int(e["passed"]), e["summary"], e["hint"], float(e["seconds"]),
                 e["at"], now) for e in events]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO events(attendee, lab, step, passed, summary, hint, seconds, at, "
                                 "received) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")
        return len(rows)

    def events(self) -> list[Event]:
        rows = self._db.execute(
            "SELECT a.name, e.lab, e.step, e.passed, e.summary, e.hint, e.seconds, e.at, e.received "
            "FROM events e JOIN attendees a ON a.id = e.attendee ORDER BY e.id")
        return [Event(r[0], r[1], r[2], bool(r[3]), r[4], r[5], float(r[6]), r[7], float(r[8])) for r in rows]

    def event_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])
