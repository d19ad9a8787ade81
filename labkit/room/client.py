"""An attendee's side of the room: join, leave, and a sender that posts queued check events.

Checks only append to the local outbox (``labkit.outbox``). After a command or a notebook check,
``send_in_background()`` starts a detached sender (``python -m labkit.room.client``) unless one runs:
it posts what is queued, and while the room does not answer it tries again, waiting longer each time
(up to SENDER_LIFETIME), so nothing is lost and nobody waits.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from labkit import outbox
from labkit.errors import InvalidInput

BATCH = 200
SENDER_LOCK = ".room-sender.lock"
SENDER_LIFETIME = 900.0  # s a sender keeps trying before it leaves the rest to the next one
TIMEOUT = 5.0


def join(url: str, code: str, name: str, directory: Path | None = None) -> str:
    """Register with the room at URL; keep its token in labkit's state folder. The room's words on refusal."""
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise InvalidInput(f"{url} is not a room address: it starts with http:// or https://, as your instructor "
                           "gave it.")
    try:
        answer = httpx.post(f"{url}/api/join", json={"code": code, "name": name}, timeout=TIMEOUT)
    except httpx.HTTPError:
        raise InvalidInput(f"The room at {url} does not answer. Check the address with your instructor.") from None
    if answer.status_code != 200:
        raise InvalidInput(_reason(answer))
    outbox.save_membership(url, answer.json()["token"], name, directory)
    return name


def _reason(answer: httpx.Response) -> str:
    try:
        return str(answer.json()["error"])
    except (ValueError, KeyError, TypeError):
        return f"The room answered {answer.status_code}."


def flush(directory: Path | None = None) -> tuple[int, int]:
    """Post every queued event, oldest first, in batches; (sent, still queued). Never raises."""
    member = outbox.membership(directory)
    if member is None:
        return 0, 0
    sent = 0
    with httpx.Client(timeout=TIMEOUT, headers={"Authorization": f"Bearer {member['token']}"}) as client:
        while events := outbox.pending(directory)[:BATCH]:
            try:
                answer = client.post(f"{member['url']}/api/events", json={"events": events})
            except httpx.HTTPError:
                break
            if answer.status_code == 400:  # a malformed event would block the rest forever: drop it
                outbox.drop_sent(1, directory)
                continue
            if answer.status_code != 200:
                break
            outbox.drop_sent(len(events), directory)
            sent += len(events)
    return sent, len(outbox.pending(directory))


def run_sender(directory: Path | None = None, lifetime: float = SENDER_LIFETIME) -> None:
    """Send until the queue is empty or LIFETIME passed, backing off while the room is away. One at a time."""
    folder = directory or outbox.state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / SENDER_LOCK).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # another sender is at work
        deadline, delay = time.monotonic() + lifetime, 0.5
        while True:
            _, left = flush(folder)
            if left == 0 or time.monotonic() + delay > deadline:
                return
            time.sleep(delay)
            delay = min(delay * 2, 30.0)


def send_in_background(directory: Path | None = None) -> bool:
    """Start a detached sender when events wait for a room. Whether one was started."""
    with contextlib.suppress(OSError):
        if outbox.membership(directory) is None or not outbox.pending(directory):
            return False
        env = dict(os.environ)
        if directory is not None:
            env["LABKIT_STATE_DIR"] = str(directory)
        subprocess.Popen([sys.executable, "-m", "labkit.room.client"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
        return True
    return False


if __name__ == "__main__":
    run_sender()
