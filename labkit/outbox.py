"""The room outbox: check results waiting to reach the instructor's room.

A learner who joined a room (``labkit room join``) has ``room.json`` in labkit's state folder. Every
check then appends one event, as a JSON line, to ``room-outbox.jsonl`` beside it: a local file write,
so a check never waits on the room and never fails because of it. A sender (``labkit.room.client``)
posts them and removes what the room accepted; a room restart or a Wi-Fi drop only delays them.

No network here: this module sits at the bottom of labkit's layers so the runner can call it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from labkit.settings import settings

MEMBERSHIP = "room.json"
QUEUE = "room-outbox.jsonl"
LOCK = ".room-outbox.lock"


def state_dir() -> Path:
    return settings().state_dir


def membership(directory: Path | None = None) -> dict[str, str] | None:
    """The room this learner joined ({url, token, name}), or None. In a seat of a hosted room, with no
    room joined, the room is the hub's (LABKIT_ROOM_URL) and the seat's hub token says who the learner is."""
    try:
        data = json.loads(((directory or state_dir()) / MEMBERSHIP).read_text())
    except (OSError, ValueError):
        hosted = settings()
        if hosted.room_url and hosted.hub_token:
            return {"url": hosted.room_url, "token": hosted.hub_token, "name": "(from the hub)"}
        return None
    if isinstance(data, dict) and all(isinstance(data.get(k), str) for k in ("url", "token", "name")):
        return {k: data[k] for k in ("url", "token", "name")}
    return None


def save_membership(url: str, token: str, name: str, directory: Path | None = None) -> Path:
    folder = directory or state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MEMBERSHIP
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # a secret: owner only
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "token": token, "name": name}, f)
    os.replace(path.with_suffix(".tmp"), path)
    return path


def leave(directory: Path | None = None) -> bool:
    """Forget the room and whatever was still waiting for it. Whether a room was joined."""
    folder = directory or state_dir()
    joined = (folder / MEMBERSHIP).exists()
    for name in (MEMBERSHIP, QUEUE):
        (folder / name).unlink(missing_ok=True)
    return joined


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / LOCK).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def add(lab: str, step: str, passed: bool, summary: str, hint: str, seconds: float,
        directory: Path | None = None) -> bool:
    """Queue one check result for the room, if this learner joined one. Never raises: a room is a
    bonus, and a check must not fail because of it. Whether an event was queued."""
    folder = directory or state_dir()
    try:
        if membership(folder) is None:
            return False
        event = {"lab": lab, "step": step, "passed": bool(passed), "summary": summary[:2000], "hint": hint[:2000],
                 "seconds": round(float(seconds), 3), "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        with _locked(folder), (folder / QUEUE).open("a") as queue:
            queue.write(json.dumps(event) + "\n")
        return True
    except (OSError, ValueError, TypeError):
        return False


def pending(directory: Path | None = None) -> list[dict[str, Any]]:
    """The events not yet accepted by the room, oldest first (a damaged line is dropped, not fatal)."""
    path = (directory or state_dir()) / QUEUE
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    events = []
    for line in lines:
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if isinstance(event, dict):
                events.append(event)
    return events


def drop_sent(count: int, directory: Path | None = None) -> None:
    """Remove the COUNT oldest events (the room accepted them); events queued meanwhile stay."""
    folder = directory or state_dir()
    with _locked(folder):
        path = folder / QUEUE
        try:
            lines = path.read_text().splitlines(keepends=True)
        except OSError:
            return
        rest = lines[count:]
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(rest))
        os.replace(tmp, path)
