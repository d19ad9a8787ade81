"""A Swarm agent's own record of its tasks, read and changed on disk while no engine runs on it.

Each node's agent keeps the tasks given to it, and the state it last reported for each, in
``swarm/worker/tasks.db`` (an engine's folder), a bbolt file: buckets ``v1/tasks/<task ID>`` with keys
``data`` (the task) and ``status`` (a ``TaskStatus`` protobuf, field 2 its state). When the engine
starts, the agent goes on from that state: a task it reported running, it waits on.

Nothing in Python reads bbolt, and the change needed is two bytes (a task's state and its desired state,
one byte of each varint): so this reads the file's pages itself (bbolt's layout: a page header, then leaf
or branch elements; a small bucket stored inline in its parent's value) and writes the new values over
the old ones, the same length. bbolt keeps no checksum of its data pages (only of its two meta pages).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

TASKS_DB = Path("swarm") / "worker" / "tasks.db"  # in an engine's folder
TASKS = (b"v1", b"tasks")  # the bucket of the tasks, by ID
STATUS = b"status"
DATA = b"data"
STATE_FIELD = 2  # TaskStatus.state
DESIRED_FIELD = 10  # Task.desired_state
RUNNING = 512  # swarmkit's TaskState values
ACCEPTED = 256

MAGIC = 0xED0CDAED
PAGE_HEADER = struct.Struct("<QHHI")  # id, flags, count, overflow
META = struct.Struct("<IIIIQQQQQQ")  # magic, version, page size, flags, root, sequence, freelist, pgid, txid, checksum
ELEMENT = struct.Struct("<IIII")  # a leaf's: flags, pos, key size, value size
BRANCH = struct.Struct("<IIQ")  # a branch's: pos, key size, page
BUCKET = struct.Struct("<QQ")  # a bucket's value: its root page (0: inline, its page follows), sequence
BRANCH_PAGE, LEAF_PAGE = 0x01, 0x02
BUCKET_LEAF = 0x01


def restart_tasks(folder: Path, tasks: set[str]) -> list[str]:
    """Of TASKS, those the agent of the engine FOLDER last reported running: set back to accepted, and
    held there until the manager's word comes, so that, when the engine starts, its agent prepares them
    (their networks, secrets, configs, containers) and starts them again instead of waiting on
    containers that ended with the engine. Returns the tasks set back.

    Held: the task's desired state, in the agent's copy, is set to accepted too. An agent that prepared
    the task at once would wait for the node's own addresses on Swarm's networks (they come with its
    session), and the task sent by the manager a moment later would cancel that wait, which the agent
    takes for a failure: the task rejected. Held, the agent waits for that task, then prepares it."""
    path = folder / TASKS_DB
    if not tasks or not path.exists():
        return []
    data = bytearray(path.read_bytes())
    found: dict[str, dict[bytes, tuple[int, int]]] = {}
    for keys, offset, size in _values(data):
        if len(keys) == 4 and keys[:2] == TASKS and keys[3] in (STATUS, DATA) and keys[2].decode() in tasks:
            found.setdefault(keys[2].decode(), {})[keys[3]] = (offset, offset + size)
    done = []
    for task, values in sorted(found.items()):
        if STATUS not in values or DATA not in values:
            continue
        state = _varint_field(data, *values[STATUS], STATE_FIELD)
        desired = _varint_field(data, *values[DATA], DESIRED_FIELD)
        if state is None or desired is None or _varint(data, state)[0] != RUNNING \
                or _varint(data, desired)[0] != RUNNING:
            continue
        for at in (state, desired):
            data[at:at + 2] = _encode_varint(ACCEPTED)  # both two bytes long, as RUNNING is
        done.append(task)
    if done:
        path.write_bytes(data)
    return done


def task_states(folder: Path) -> dict[str, int]:
    """Each task's state as the agent of the engine FOLDER last reported it."""
    path = folder / TASKS_DB
    if not path.exists():
        return {}
    data = path.read_bytes()
    states = {}
    for keys, offset, size in _values(data):
        if len(keys) == 4 and keys[:2] == TASKS and keys[3] == STATUS:
            at = _varint_field(data, offset, offset + size, STATE_FIELD)
            states[keys[2].decode()] = _varint(data, at)[0] if at is not None else 0
    return states


# ------------------------------------------------------------------------ bbolt's pages


def _values(data: bytes | bytearray) -> list[tuple[tuple[bytes, ...], int, int]]:
    """Every value in the file that is not a bucket: its keys from the root, its offset and size
    (ValueError: not a bbolt file this module reads)."""
    page_size, root = _meta(data)
    try:
        return list(_walk(data, page_size, root * page_size, ()))
    except (struct.error, IndexError, RecursionError) as exc:
        raise ValueError(f"not a bbolt file this module reads: {exc}") from exc


def _meta(data: bytes | bytearray) -> tuple[int, int]:
    """The page size and the root bucket's page, from the newer of the two meta pages that is whole."""
    if len(data) < PAGE_HEADER.size + META.size:
        raise ValueError("too short")
    page_size = META.unpack_from(data, PAGE_HEADER.size)[2]  # the first meta page's, whole or not
    best: tuple[int, int, int] | None = None
    for index in (0, 1):
        at = index * page_size + PAGE_HEADER.size
        if len(data) < at + META.size:
            continue
        magic, version, size, _, root, _, _, _, txid, checksum = META.unpack_from(data, at)
        whole = magic == MAGIC and version == 2 and _fnv64a(data[at:at + META.size - 8]) == checksum
        if whole and (best is None or txid > best[0]):
            best = (txid, size, root)
    if best is None:
        raise ValueError("no whole meta page")
    return best[1], best[2]


def _walk(data: bytes | bytearray, page_size: int, at: int,
          keys: tuple[bytes, ...]) -> Iterator[tuple[tuple[bytes, ...], int, int]]:
    """The values under the page at offset AT (a bucket's B+tree, or an inline bucket's page)."""
    _, flags, count, _ = PAGE_HEADER.unpack_from(data, at)
    for i in range(count):
        element = at + PAGE_HEADER.size + i * ELEMENT.size
        if flags & BRANCH_PAGE:
            _, _, child = BRANCH.unpack_from(data, element)
            yield from _walk(data, page_size, child * page_size, keys)
            continue
        if not flags & LEAF_PAGE:
            raise ValueError(f"page at {at} is neither branch nor leaf")
        kind, pos, key_size, value_size = ELEMENT.unpack_from(data, element)
        key_at = element + pos
        key = bytes(data[key_at:key_at + key_size])
        value_at = key_at + key_size
        if kind & BUCKET_LEAF:
            root, _ = BUCKET.unpack_from(data, value_at)
            child = value_at + BUCKET.size if root == 0 else root * page_size
            yield from _walk(data, page_size, child, (*keys, key))
        else:
            yield (*keys, key), value_at, value_size


def _fnv64a(data: bytes | bytearray) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


# ------------------------------------------------------------------------ protobuf, as far as needed


def _varint(data: bytes | bytearray, at: int) -> tuple[int, int]:
    """The varint at AT, and the offset after it."""
    value = shift = 0
    while True:
        if at >= len(data):
            raise ValueError("a varint runs past the end of the file")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _varint_field(data: bytes | bytearray, at: int, end: int, field: int) -> int | None:
    """The offset of the value of varint FIELD in the message between AT and END (None: not there)."""
    while at < end:
        tag, at = _varint(data, at)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            if number == field:
                return at
            _, at = _varint(data, at)
        elif wire == 2:
            size, at = _varint(data, at)
            at += size
        elif wire == 1:
            at += 8
        elif wire == 5:
            at += 4
        else:
            raise ValueError(f"wire type {wire}: not a message this module reads")
    return None
