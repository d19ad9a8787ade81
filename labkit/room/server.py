"""The room service: attendees' checks in, the instructor's live dashboard out (tornado, as JupyterHub).

    POST /api/join      {code, name}                       -> {token}        (anyone with the code)
    POST /api/events    {lab, step, passed, summary, hint, seconds, at}, or {events: [...]}
                                                            -> {accepted}     (Bearer: an attendee)
    GET  /api/room      every attendee, each step's state   (instructor)
    GET  /api/room.csv  the same as CSV                     (instructor)
    POST /api/joining   {open: true|false}                  (instructor)
    GET  /api/stream    server-sent events: "changed"       (instructor)
    GET  /              the dashboard                       (instructor: ?token=... once, then a cookie)

An attendee token can post its own events only and read nothing. Tokens are kept hashed and never
logged (the access log has no query strings). Each token has a rate limit.

Under JupyterHub (``labkit room serve --hub``, as a hub-managed service), an attendee needs no code: a
seat posts with its own hub token, the hub says whose it is (and that it may reach this service), and
that user joins on their first event. The routes then live under the service's prefix.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.ioloop
import tornado.iostream
import tornado.locks
import tornado.web

from labkit.errors import JoinRefused
from labkit.room.board import board_of, room_csv, room_document
from labkit.room.store import Event, RoomStore

COOKIE = "labkit_room"
RATE = 20.0  # requests per second per token, sustained
BURST = 60.0
HEARTBEAT = 15.0  # s between keep-alive comments on the stream
EVENT_FIELDS: dict[str, tuple[type, ...]] = {"lab": (str,), "step": (str,), "passed": (bool,), "summary": (str,),
                                              "hint": (str,), "seconds": (int, float), "at": (str,)}
MAX_BATCH = 500
log = logging.getLogger("labkit.room")


def validate_event(event: Any) -> dict[str, Any]:
    """EVENT as stored, or ValueError saying what is wrong with it."""
    if not isinstance(event, dict):
        raise ValueError("an event is a JSON object")
    missing = [k for k in EVENT_FIELDS if k not in event]
    if missing:
        raise ValueError(f"missing field(s): {', '.join(missing)}")
    for key, types in EVENT_FIELDS.items():
        value = event[key]
        if not isinstance(value, types) or (key != "passed" and isinstance(value, bool)):
            raise ValueError(f"field {key!r} must be {' or '.join(t.__name__ for t in types)}")
    if not event["lab"] or not event["step"] or len(event["lab"]) > 100 or len(event["step"]) > 100:
        raise ValueError("fields 'lab' and 'step' must be 1 to 100 characters")
    return {k: (v[:2000] if isinstance(v, str) else v) for k, v in event.items() if k in EVENT_FIELDS}


class Limiter:
    """A token bucket per key: RATE per second, up to BURST at once."""

    def __init__(self, rate: float = RATE, burst: float = BURST) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1, now)
        return True


class HubIdentity:
    """Who a JupyterHub token belongs to, as the hub says (the room running as a hub-managed service)."""

    def __init__(self) -> None:
        from jupyterhub.services.auth import HubAuth  # the hub's own helper: its API, its cache, its scopes

        self.auth = HubAuth()

    async def name(self, token: str) -> str | None:
        """The user TOKEN belongs to, if the hub lets that token reach this service."""
        model = await self.auth.user_for_token(token, sync=False)
        if not model or model.get("kind", "user") != "user" or not model.get("name"):
            return None
        if not self.auth.check_scopes(self.auth.access_scopes, model):
            return None
        return str(model["name"])


class Room:
    """What the handlers share: the store, the course's steps, the limiter, a 'something changed' signal."""

    def __init__(self, store: RoomStore, steps: list[str], roster: list[str] | None = None,
                 hub: HubIdentity | None = None, prefix: str = "/") -> None:
        self.store, self.steps, self.roster = store, steps, roster or []
        self.hub, self.prefix = hub, prefix
        self.board = board_of(store.attendees(), store.events(), steps)  # then kept up to date as they come
        self.limiter = Limiter()
        # Joins, per address: a whole room behind one NAT may join in the same minute, while guessing the
        # 6-digit code stays hopeless (20 a second: about 14 hours for every code).
        self.join_limiter = Limiter(rate=20, burst=300)
        self.changed = tornado.locks.Condition()

    def document(self) -> dict[str, Any]:
        doc = room_document(self.board, time.time(), self.store.joining_open)
        return {**doc, "code": self.store.code, "not_joined": [n for n in self.roster if n not in self.board.by_name]}


class Base(tornado.web.RequestHandler):
    room: Room

    def initialize(self, room: Room) -> None:
        self.room = room

    def bearer(self) -> str | None:
        header = self.request.headers.get("Authorization", "")
        return header[7:].strip() if header.startswith("Bearer ") else None

    def fail(self, status: int, reason: str) -> None:
        self.set_status(status)
        self.finish({"error": reason})

    def body(self) -> Any:
        try:
            return json.loads(self.request.body or b"null")
        except ValueError:
            return None

    def instructor(self) -> bool:
        token = self.bearer() or self.get_signed_cookie(COOKIE, max_age_days=2)
        token = token.decode() if isinstance(token, bytes) else token
        if not self.room.store.is_instructor(token):
            self.fail(401, "the instructor token is needed: use the dashboard URL `labkit room serve` printed")
            return False
        return True


class JoinHandler(Base):
    def post(self) -> None:
        body = self.body()
        if not isinstance(body, dict) or not isinstance(body.get("code"), str) or not isinstance(body.get("name"), str):
            return self.fail(400, "send {\"code\": \"...\", \"name\": \"...\"}")
        if not self.room.join_limiter.allow(str(self.request.remote_ip)):
            return self.fail(429, "too many requests: wait a moment")
        try:
            token = self.room.store.join(body["code"], body["name"])
        except JoinRefused as exc:
            return self.fail(403, str(exc))
        self.room.board.attendee(" ".join(body["name"].split()), time.time())
        self.room.changed.notify_all()
        self.finish({"token": token})


class EventsHandler(Base):
    async def post(self) -> None:
        token = self.bearer()
        who = self.room.store.attendee(token)
        if who is None and token and self.room.hub is not None:  # a seat's hub token
            name = await self.room.hub.name(token)
            if name is not None:
                who = self.room.store.hub_attendee(name)
                self.room.board.attendee(who[1], time.time())
        if who is None:
            return self.fail(401, "unknown attendee token: join the room with `labkit room join`")
        if not self.room.limiter.allow(str(token)):
            return self.fail(429, "too many requests: wait a moment")
        body = self.body()
        events = body.get("events") if isinstance(body, dict) and "events" in body else [body]
        if not isinstance(events, list) or not events or len(events) > MAX_BATCH:
            return self.fail(400, f"send one event, or {{\"events\": [...]}} with 1 to {MAX_BATCH}")
        try:
            clean = [validate_event(e) for e in events]
        except ValueError as exc:
            return self.fail(400, str(exc))
        self.room.store.add_events(who[0], clean)
        now = time.time()
        for e in clean:
            self.room.board.add(Event(who[1], e["lab"], e["step"], e["passed"], e["summary"], e["hint"],
                                      float(e["seconds"]), e["at"], now))
        self.room.changed.notify_all()
        self.finish({"accepted": len(clean)})


class RoomHandler(Base):
    def get(self) -> None:
        if self.instructor():
            self.finish(self.room.document())


class CsvHandler(Base):
    def get(self) -> None:
        if self.instructor():
            self.set_header("Content-Type", "text/csv; charset=utf-8")
            self.set_header("Content-Disposition", 'attachment; filename="room.csv"')
            self.finish(room_csv(self.room.document()))


class JoiningHandler(Base):
    def post(self) -> None:
        if not self.instructor():
            return
        body = self.body()
        if not isinstance(body, dict) or not isinstance(body.get("open"), bool):
            return self.fail(400, "send {\"open\": true} or {\"open\": false}")
        self.room.store.set_joining(body["open"])
        self.room.changed.notify_all()
        self.finish({"joining": "open" if body["open"] else "closed"})


class StreamHandler(Base):
    async def get(self) -> None:
        if not self.instructor():
            return
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        while not self.request.connection.stream.closed():  # type: ignore[union-attr]
            self.write("event: changed\ndata: {}\n\n")
            try:
                await self.flush()
            except tornado.iostream.StreamClosedError:
                return
            changed = await self.room.changed.wait(timeout=time.time() + HEARTBEAT)
            if not changed:
                self.write(": keep-alive\n\n")


class DashboardHandler(Base):
    def get(self) -> None:
        token = self.get_query_argument("token", None)
        if token is not None:
            if not self.room.store.is_instructor(token):
                return self.fail(401, "that is not this room's instructor token")
            self.set_signed_cookie(COOKIE, token, expires_days=2, httponly=True, samesite="Strict")
            return self.redirect(self.room.prefix)  # the token leaves the address bar (and the history)
        if self.instructor():
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish((Path(__file__).parent / "dashboard.html").read_bytes())


def log_request(handler: tornado.web.RequestHandler) -> None:
    """The access log: method, path without its query string (never a token), status, time."""
    request = handler.request
    log.info("%s %s %d %.1f ms", request.method, request.path, handler.get_status(), 1000 * request.request_time())


def make_app(store: RoomStore, steps: list[str], secret: str, roster: list[str] | None = None,
             hub: HubIdentity | None = None, prefix: str = "/") -> tornado.web.Application:
    room = Room(store, steps, roster, hub, prefix)
    args = {"room": room}
    routes = [("api/join", JoinHandler), ("api/events", EventsHandler), ("api/room", RoomHandler),
              (r"api/room\.csv", CsvHandler), ("api/joining", JoiningHandler), ("api/stream", StreamHandler),
              ("", DashboardHandler)]
    return tornado.web.Application(
        [(re.escape(prefix) + path, handler, args) for path, handler in routes],
        cookie_secret=secret,
        log_function=log_request,
        xsrf_cookies=False,  # the API takes bearer tokens; the dashboard's cookie is SameSite=Strict
    )


def instructor_token(store: RoomStore, db: Path) -> str:
    """The instructor's token: made with the room, kept in DB.instructor (mode 0600) beside the database
    (the database has its hash only), so a restarted room prints the same dashboard URL."""
    made, _ = store.open_room()
    kept = db.with_name(db.name + ".instructor")
    if made is None and kept.exists():
        return kept.read_text().strip()
    token = made or store.new_instructor_token()
    kept.unlink(missing_ok=True)
    fd = os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def serve(host: str, port: int, db: Path, steps: list[str], say: Callable[[str], None],
          roster: list[str] | None = None, hub: bool = False) -> None:
    """Run the room until interrupted; SAY the dashboard URL and the join code first. ROSTER: the names
    expected, so the dashboard lists who has not joined. HUB: run as JupyterHub's service (its address and
    prefix from the hub's JUPYTERHUB_SERVICE_URL and JUPYTERHUB_SERVICE_PREFIX)."""
    store = RoomStore(db)
    token = instructor_token(store, db)
    code = store.code
    prefix = "/"
    if hub:
        url = urllib.parse.urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
        host, port = url.hostname or host, url.port or port
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    app = make_app(store, steps, store.cookie_secret(), roster, HubIdentity() if hub else None, prefix)
    server = tornado.httpserver.HTTPServer(app)
    server.listen(port, address=host)
    shown = f"[{host}]" if ":" in host else host
    say(f"Room open: {db} ({len(store.attendees())} attendees, {store.event_count()} events so far)")
    say(f"Dashboard (keep it to yourself): http://{shown}:{port}{prefix}?token={token}")
    say(f"Join code: {code}   attendees run: labkit room join http://{shown}:{port} --code {code} --name NAME")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        tornado.ioloop.IOLoop.current().start()
    except KeyboardInterrupt:
        say(f"Room closed. Everything is kept in {db}: `labkit room serve` with it opens the same room again.")
    finally:
        server.stop()
        store.close()
