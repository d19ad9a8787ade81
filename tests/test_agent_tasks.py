"""A Swarm agent's record of its tasks (a bbolt file), read and set back on disk: no engine needed.

agent-tasks.db is a real agent's file (Docker 20.10.24, a worker of the rolling-update lab): task
a997w13... running, 9s7gc345... failed, each in an inline bucket."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from labkit import agent_tasks

DATA = Path(__file__).parent / "data"
RUNNING_TASK = "a997w13hqwdzs9tj4ls72kdnq"
FAILED_TASK = "9s7gc345b9ek2pns3aleh5in5"
FAILED = 704


def engine(tmp_path: Path, db: str = "agent-tasks.db") -> Path:
    """An engine folder holding only the agent's record, copied from DATA/DB."""
    path = tmp_path / agent_tasks.TASKS_DB
    path.parent.mkdir(parents=True)
    shutil.copy(DATA / db, path)
    return tmp_path


def desired_states(folder: Path) -> dict[str, int]:
    data = (folder / agent_tasks.TASKS_DB).read_bytes()
    found = {}
    for keys, offset, size in agent_tasks._values(data):
        if keys[-1] == agent_tasks.DATA:
            at = agent_tasks._varint_field(data, offset, offset + size, agent_tasks.DESIRED_FIELD)
            assert at is not None
            found[keys[2].decode()] = agent_tasks._varint(data, at)[0]
    return found


def test_the_states_the_agent_last_reported_are_read(tmp_path: Path) -> None:
    folder = engine(tmp_path)
    assert agent_tasks.task_states(folder) == {RUNNING_TASK: agent_tasks.RUNNING, FAILED_TASK: FAILED}


def test_a_running_task_is_set_back_to_accepted_and_held_there(tmp_path: Path) -> None:
    folder = engine(tmp_path)
    before = (folder / agent_tasks.TASKS_DB).read_bytes()

    assert agent_tasks.restart_tasks(folder, {RUNNING_TASK, FAILED_TASK}) == [RUNNING_TASK]

    after = (folder / agent_tasks.TASKS_DB).read_bytes()
    assert len(after) == len(before)
    assert sum(a != b for a, b in zip(before, after, strict=True)) == 2  # one byte of each varint
    assert agent_tasks.task_states(folder) == {RUNNING_TASK: agent_tasks.ACCEPTED, FAILED_TASK: FAILED}
    assert desired_states(folder)[RUNNING_TASK] == agent_tasks.ACCEPTED
    assert agent_tasks.restart_tasks(folder, {RUNNING_TASK}) == []  # not running any more: left alone


def test_only_the_tasks_asked_for_are_set_back(tmp_path: Path) -> None:
    folder = engine(tmp_path)
    before = (folder / agent_tasks.TASKS_DB).read_bytes()
    assert agent_tasks.restart_tasks(folder, {"another"}) == []
    assert agent_tasks.restart_tasks(folder, set()) == []
    assert (folder / agent_tasks.TASKS_DB).read_bytes() == before


def test_an_engine_without_a_record_has_nothing_to_set_back(tmp_path: Path) -> None:
    assert agent_tasks.restart_tasks(tmp_path, {RUNNING_TASK}) == []
    assert agent_tasks.task_states(tmp_path) == {}


@pytest.mark.parametrize("damage", ["truncated", "not bolt", "meta pages spoiled"])
def test_a_file_it_cannot_read_is_said_so(tmp_path: Path, damage: str) -> None:
    folder = engine(tmp_path)
    path = folder / agent_tasks.TASKS_DB
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[:40]
    elif damage == "not bolt":
        data = bytearray(b"\0" * len(data))
    else:
        for meta in (0, 1):  # a byte of each meta page's txid: their checksums no longer match
            data[meta * 4096 + 16 + 48] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError):
        agent_tasks.restart_tasks(folder, {RUNNING_TASK})


def test_the_newer_whole_meta_page_is_read(tmp_path: Path) -> None:
    """bbolt writes its two meta pages in turn: the one with the higher transaction ID is the file's."""
    folder = engine(tmp_path)
    data = (folder / agent_tasks.TASKS_DB).read_bytes()
    page_size, root = agent_tasks._meta(data)
    txids = [agent_tasks.META.unpack_from(data, i * page_size + 16)[8] for i in (0, 1)]
    roots = [agent_tasks.META.unpack_from(data, i * page_size + 16)[4] for i in (0, 1)]
    assert page_size == 4096 and root == roots[txids.index(max(txids))]


def test_a_record_too_big_for_one_page_is_read_through_its_branch_pages(tmp_path: Path) -> None:
    """agent-tasks-many.db: a worker given 25 tasks of one service (two of another being shut down); its
    tasks bucket spans several leaf pages under a branch page."""
    folder = engine(tmp_path, "agent-tasks-many.db")
    data = (folder / agent_tasks.TASKS_DB).read_bytes()
    assert any(agent_tasks.PAGE_HEADER.unpack_from(data, p * 4096)[1] & agent_tasks.BRANCH_PAGE
               for p in range(len(data) // 4096))
    states = agent_tasks.task_states(folder)
    running = sorted(t for t, s in states.items() if s == agent_tasks.RUNNING)
    assert len(running) == 25 and sorted(states.values()).count(640) == 2  # 640: shut down
    assert agent_tasks.restart_tasks(folder, set(running[:2])) == running[:2]
    after = agent_tasks.task_states(folder)
    assert [after[t] for t in running[:3]] == [agent_tasks.ACCEPTED, agent_tasks.ACCEPTED, agent_tasks.RUNNING]
