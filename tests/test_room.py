"""The room: the real service (`labkit room serve`) on loopback, real HTTP, real attendees' outboxes.
No Docker engine is needed, so these run in `make unit` too."""

from __future__ import annotations

import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from labkit import outbox, runner
from labkit.progress import Progress
from labkit.room import client
from labkit.room.board import STUCK_ATTEMPTS, board_of, room_document, rows
from labkit.room.server import Limiter, validate_event
from labkit.room.store import Event
from tests.test_lab_definitions import make_step, stand_in_cluster, use_check


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RoomProcess:
    url: str
    dashboard: str
    token: str
    code: str
    db: Path
    proc: subprocess.Popen[str]
    log: Path

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def start_room(db: Path, port: int, log: Path) -> RoomProcess:
    """`labkit room serve`, as an instructor runs it; its first lines give the dashboard URL and the code."""
    out = log.open("a")
    proc = subprocess.Popen([sys.executable, "-m", "labkit", "room", "serve", "--port", str(port), "--db", str(db)],
                            stdout=out, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = log.read_text()
        found = re.findall(r"Dashboard .*: (http://\S+\?token=(\S+))\n.*Join code: (\d+)", text)
        if found and _answers(port):
            dashboard, token, code = found[-1]
            return RoomProcess(f"http://127.0.0.1:{port}", dashboard, token, code, db, proc, log)
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"the room did not start: {log.read_text()}")


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.fixture
def room(tmp_path: Path) -> Iterator[RoomProcess]:
    served = start_room(tmp_path / "room.db", free_port(), tmp_path / "room.log")
    yield served
    served.stop()


def event(step: str = "init", passed: bool = False, hint: str = "Run `docker swarm init` on manager1.") -> dict:
    return {"lab": "swarm-init", "step": step, "passed": passed, "summary": "Swarm mode is inactive.", "hint": hint,
            "seconds": 0.05, "at": "2026-12-03T10:00:00+0000"}


def join(room: RoomProcess, name: str) -> str:
    answer = httpx.post(f"{room.url}/api/join", json={"code": room.code, "name": name})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


def post(room: RoomProcess, token: str, body: object) -> httpx.Response:
    return httpx.post(f"{room.url}/api/events", json=body, headers={"Authorization": f"Bearer {token}"})


def read(room: RoomProcess, token: str | None = None) -> httpx.Response:
    return httpx.get(f"{room.url}/api/room", headers={"Authorization": f"Bearer {token or room.token}"})


def test_join_post_and_read_the_room(room: RoomProcess) -> None:
    ada, bob = join(room, "Ada"), join(room, "Bob")
    assert post(room, ada, event("info", passed=True)).json() == {"accepted": 1}
    assert post(room, ada, {"events": [event(), event()]}).json() == {"accepted": 2}
    assert post(room, bob, event("info", passed=True)).status_code == 200
    doc = read(room).json()
    assert doc["steps"][:2] == ["swarm-init:info", "swarm-init:init"] and doc["code"] == room.code
    who = {a["name"]: a for a in doc["attendees"]}
    assert who["Ada"]["steps"]["swarm-init:info"]["state"] == "passed"
    assert who["Ada"]["steps"]["swarm-init:init"] == {"state": "trying", "attempts": 2,
                                                      "hint": "Run `docker swarm init` on manager1."}
    assert "swarm-init:init" not in who["Bob"]["steps"]  # not started
    assert doc["past"]["swarm-init:info"] == 2 and doc["past"]["swarm-init:init"] == 0
    csv = httpx.get(f"{room.url}/api/room.csv", headers={"Authorization": f"Bearer {room.token}"}).text
    assert csv.splitlines()[0].startswith("name,stuck,swarm-init:info,swarm-init:init")
    assert any(line.startswith("Ada,,passed,trying 2") for line in csv.splitlines())


def test_every_refusal_says_why(room: RoomProcess) -> None:
    ada = join(room, "Ada")
    assert post(room, "no-such-token", event()).status_code == 401
    assert httpx.post(f"{room.url}/api/events", json=event()).status_code == 401  # no token at all
    assert read(room, ada).status_code == 401  # an attendee reads nothing
    assert httpx.get(f"{room.url}/api/room").status_code == 401
    assert httpx.get(f"{room.url}/").status_code == 401
    missing = post(room, ada, {"lab": "swarm-init"})
    assert missing.status_code == 400 and "missing field(s): step, passed" in missing.json()["error"]
    typed = post(room, ada, {**event(), "passed": "yes"})
    assert typed.status_code == 400 and "'passed' must be bool" in typed.json()["error"]
    broken = httpx.post(f"{room.url}/api/events", content=b"{not json", headers={"Authorization": f"Bearer {ada}"})
    assert broken.status_code == 400
    taken = httpx.post(f"{room.url}/api/join", json={"code": room.code, "name": "Ada"})
    assert taken.status_code == 403 and "already called 'Ada'" in taken.json()["error"]
    wrong = httpx.post(f"{room.url}/api/join", json={"code": "000000" if room.code != "000000" else "1",
                                                     "name": "Eve"})
    assert wrong.status_code == 403 and "not this room's" in wrong.json()["error"]
    headers = {"Authorization": f"Bearer {room.token}"}
    assert httpx.post(f"{room.url}/api/joining", json={"open": False}, headers=headers).status_code == 200
    closed = httpx.post(f"{room.url}/api/join", json={"code": room.code, "name": "Carol"})
    assert closed.status_code == 403 and "closed joining" in closed.json()["error"]
    assert httpx.post(f"{room.url}/api/joining", json={"open": False},
                      headers={"Authorization": f"Bearer {ada}"}).status_code == 401  # attendees cannot reopen
    assert read(room).json()["joining"] == "closed"


def test_tokens_are_kept_hashed_and_never_logged(room: RoomProcess) -> None:
    ada = join(room, "Ada")
    post(room, ada, event())
    dashboard = httpx.get(room.dashboard, follow_redirects=True)
    assert dashboard.status_code == 200 and "labkit room" in dashboard.text  # the cookie took over from the URL
    assert str(dashboard.url) == f"{room.url}/"
    with sqlite3.connect(room.db) as db:
        stored = repr(db.execute("SELECT * FROM attendees").fetchall() + db.execute("SELECT * FROM settings")
                      .fetchall())
    assert ada not in stored and room.token not in stored
    room.stop()
    log = room.log.read_text()
    assert "POST /api/events 200" in log and "GET / 302" in log
    assert log.count(room.token) == 1  # printed once for the instructor, never in the access log
    assert ada not in log


def test_a_room_restart_loses_nothing(tmp_path: Path) -> None:
    """Checks made while the room is away wait in the attendee's outbox and arrive after it is back."""
    port, home = free_port(), tmp_path / "attendee"
    first = start_room(tmp_path / "room.db", port, tmp_path / "room.log")
    client.join(first.url, first.code, "Ada", home)
    assert outbox.add("swarm-init", "info", True, "Right: inactive.", "", 0.1, home)
    assert client.flush(home) == (1, 0)
    first.stop()
    for step in ("init", "init", "root-ca"):
        outbox.add("swarm-init", step, step != "init", "...", "a hint", 0.2, home)
    assert client.flush(home) == (0, 3)  # the room is away: nothing lost, nothing waited for long
    again = start_room(tmp_path / "room.db", port, tmp_path / "room.log")
    try:
        assert again.token == first.token and again.code == first.code  # the same room, the same dashboard URL
        assert client.flush(home) == (3, 0)
        ada = read(again).json()["attendees"][0]
        assert ada["steps"]["swarm-init:info"]["state"] == "passed"
        assert ada["steps"]["swarm-init:init"]["attempts"] == 2
        assert ada["steps"]["swarm-init:root-ca"]["state"] == "passed"
    finally:
        again.stop()


def test_a_check_reaches_the_room_in_the_background(room: RoomProcess, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Every check (terminal, widget, solve, reset all go through run_check) queues an event; the
    detached sender posts it; the check itself never waits on the room."""
    home = tmp_path / "attendee"
    monkeypatch.setenv("LABKIT_STATE_DIR", str(home))
    client.join(room.url, room.code, "Ada", home)
    use_check(monkeypatch, lambda ctx: runner.Result(False, "Swarm mode is inactive on manager1.",
                                                     hint="Run `docker swarm init`."))
    step = make_step(question=None)
    runner.run_check(stand_in_cluster(), step, progress=Progress("t", home), wait=False)
    assert [e["passed"] for e in outbox.pending(home)] == [False]
    assert client.send_in_background(home)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not read(room).json()["attendees"][0]["steps"]:
        time.sleep(0.05)
    ada = read(room).json()["attendees"][0]
    assert ada["name"] == "Ada" and ada["hint"] == "Run `docker swarm init`."
    assert outbox.pending(home) == []


def test_without_a_room_checks_queue_nothing(tmp_path: Path) -> None:
    assert not outbox.add("swarm-init", "info", True, "ok", "", 0.1, tmp_path)
    assert outbox.pending(tmp_path) == [] and not client.send_in_background(tmp_path)


def test_the_stream_tells_the_dashboard_within_a_second(room: RoomProcess) -> None:
    ada = join(room, "Ada")
    with httpx.Client(timeout=5) as http, http.stream(
            "GET", f"{room.url}/api/stream", headers={"Authorization": f"Bearer {room.token}"}) as stream:
        lines = stream.iter_lines()
        assert next(lines) == "event: changed"  # at once, so the page draws
        started = time.monotonic()
        post(room, ada, event())
        for line in lines:
            if line == "event: changed":
                break
        assert time.monotonic() - started < 1.0


def test_leave_forgets_the_room_and_its_queue(tmp_path: Path) -> None:
    outbox.save_membership("http://127.0.0.1:1", "t", "Ada", tmp_path)
    assert (tmp_path / outbox.MEMBERSHIP).stat().st_mode & 0o777 == 0o600
    outbox.add("l", "s", True, "", "", 0, tmp_path)
    assert outbox.leave(tmp_path) and outbox.pending(tmp_path) == [] and outbox.membership(tmp_path) is None


# ------------------------------------------------------------------ logic, no server


def ev(name: str, ref: str, passed: bool, at: float) -> Event:
    lab, step = ref.split(":")
    return Event(name, lab, step, passed, "", "" if passed else f"hint for {ref}", 0.1, "", at)


def test_stuck_attendees_come_first_with_their_hint() -> None:
    steps = ["a:1", "a:2", "a:3"]
    people = [(1, "Ada", 0.0), (2, "Bob", 0.0), (3, "Cy", 0.0)]
    events = [ev("Ada", "a:1", True, 10), ev("Ada", "a:2", True, 20),
              *(ev("Bob", "a:2", False, 20 + i) for i in range(STUCK_ATTEMPTS)), ev("Cy", "a:1", True, 10)]
    board = rows(people, events, steps, now=30)
    assert [r.name for r in board] == ["Bob", "Ada", "Cy"]
    assert board[0].stuck == f"{STUCK_ATTEMPTS} failed checks of a:2"
    doc = room_document(board_of(people, events, steps), 30, True)
    assert doc["attendees"][0]["hint"] == "hint for a:2" and doc["past"] == {"a:1": 2, "a:2": 1, "a:3": 0}


def test_idle_while_others_move_on_is_stuck() -> None:
    people = [(1, "Ada", 0.0), (2, "Bob", 0.0)]
    events = [ev("Bob", "a:1", False, 5), ev("Ada", "a:1", True, 10), ev("Ada", "a:2", True, 900)]
    (first, second) = rows(people, events, ["a:1", "a:2"], now=1000)
    assert first.name == "Bob" and "nothing passed for 16 min" in first.stuck and not second.stuck


def test_events_are_validated_field_by_field() -> None:
    assert validate_event(event())["step"] == "init"
    for bad, words in [([], "JSON object"), ({**event(), "seconds": True}, "'seconds'"),
                       ({**event(), "lab": ""}, "1 to 100"), ({"lab": "x"}, "missing")]:
        with pytest.raises(ValueError, match=words):
            validate_event(bad)


def test_the_rate_limit_refills_over_time() -> None:
    limit = Limiter(rate=2, burst=3)
    assert [limit.allow("t", now=0) for _ in range(4)] == [True, True, True, False]
    assert limit.allow("t", now=0.5) and not limit.allow("t", now=0.5)
    assert limit.allow("other", now=0.5)


def test_the_sender_runs_one_at_a_time(tmp_path: Path) -> None:
    """A second sender leaves at once while the first holds the lock (no double posting)."""
    import fcntl

    tmp_path.mkdir(exist_ok=True)
    with (tmp_path / client.SENDER_LOCK).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        started = time.monotonic()
        outbox.save_membership("http://127.0.0.1:1", "t", "Ada", tmp_path)
        outbox.add("l", "s", True, "", "", 0, tmp_path)
        client.run_sender(tmp_path, lifetime=30)
        assert time.monotonic() - started < 1 and len(outbox.pending(tmp_path)) == 1


class HubSaysWho:
    """JupyterHub's answer about a token, as HubIdentity gives it (the real one is in tests/test_seat.py)."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    async def name(self, token: str) -> str | None:
        return self.users.get(token)


def test_in_a_hosted_room_a_seat_posts_with_its_hub_token_and_joins_without_a_code(tmp_path: Path) -> None:
    import asyncio
    import threading

    import tornado.httpserver

    from labkit.room.server import instructor_token, make_app
    from labkit.room.store import RoomStore

    store = RoomStore(tmp_path / "room.db")
    teacher = instructor_token(store, tmp_path / "room.db")
    app = make_app(store, ["swarm-init:init"], "s3cret", hub=HubSaysWho({"hub-token-of-ada": "ada"}),
                   prefix="/services/room/")
    port, loop = free_port(), asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        tornado.httpserver.HTTPServer(app).listen(port, address="127.0.0.1")
        loop.call_soon(ready.set)
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    assert ready.wait(10)
    base = f"http://127.0.0.1:{port}/services/room"
    try:
        ada = {"Authorization": "Bearer hub-token-of-ada"}
        ok = httpx.post(f"{base}/api/events", json=event(passed=True), headers=ada)
        assert ok.status_code == 200 and ok.json() == {"accepted": 1}
        assert httpx.post(f"{base}/api/events", json=event(passed=True), headers=ada).status_code == 200
        stranger = {"Authorization": "Bearer a-stranger"}
        assert httpx.post(f"{base}/api/events", json=event(), headers=stranger).status_code == 401
        room = httpx.get(f"{base}/api/room", headers={"Authorization": f"Bearer {teacher}"}).json()
        assert [a["name"] for a in room["attendees"]] == ["ada"]  # one attendee, however many events
        assert httpx.get(f"{base}/", headers={"Authorization": f"Bearer {teacher}"}).status_code == 200
    finally:
        loop.call_soon_threadsafe(loop.stop)
        store.close()


def test_a_seat_of_a_hosted_room_is_in_the_room_without_joining(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path))
    assert outbox.membership() is None
    monkeypatch.setenv("LABKIT_ROOM_URL", "http://172.31.0.1:8765")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-token")
    assert outbox.membership() == {"url": "http://172.31.0.1:8765", "token": "hub-token", "name": "(from the hub)"}
    outbox.save_membership("http://room:8765", "joined-token", "Ada")  # joining a room of one's own still wins
    assert outbox.membership()["token"] == "joined-token"
