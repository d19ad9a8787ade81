"""The checks of lab autolock (labkit/checks/autolock.py) through each of their outcomes, on the fake cluster of
tests/fakes.py, with the steps, hints and explanations of labs/14-autolock.toml. The scenes follow the lab:
pinger on the workers, autolock on (the key file sealed), manager1 restarted and locked, a wrong key refused,
unlocked, the key rotated, autolock off. The unlock key labkit keeps lives in a temporary state directory;
the `{unlock_key}` field is tested here too.
"""

from __future__ import annotations

import pytest

from labkit.fields import UNLOCK_KEYS, render
from labkit.progress import Progress
from tests.fakes import FakeLab, Json, lock, set_autolock, swarm_lab, unlock
from tests.test_checks_offline import (  # noqa: F401 (no_real_engine: autouse, so no real engine here either)
    answer_of,
    explain,
    failed,
    hints,
    no_real_engine,
    passed,
    run_check,
    wrong_answer,
)

FIRST = "SWMKEY-1-first0key0printed0by0autolock0on0abcdef"
ROTATED = "SWMKEY-1-rotated0key0zzzzzzzzzzzzzzzzzzzzzzzzzzzz"


@pytest.fixture(autouse=True)
def state_dir(monkeypatch, tmp_path):
    """labkit's state (where it keeps the unlock key) in a directory of each test's own."""
    monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path))
    return tmp_path


def kept(lab: FakeLab) -> list[str]:
    return Progress(lab.cluster.lab).kept(UNLOCK_KEYS) or []


# --- scenes, in the lab's order -------------------------------------------------------------------


def pinger(lab: FakeLab, replicas: int = 2, on: tuple[str, ...] = ("worker1", "worker2"),
           constraints: tuple[str, ...] = ("node.role==worker",)) -> Json:
    return lab.service("pinger", replicas=replicas, on=on, constraints=constraints, at=5)


def service_lab() -> FakeLab:
    """service done: pinger on worker1 and worker2; autolock off (manager1's key file in the clear)."""
    lab = swarm_lab()
    pinger(lab)
    set_autolock(lab, False)
    return lab


def autolock_lab() -> FakeLab:
    """autolock done and checked: the key sealed, labkit keeps the key."""
    lab = service_lab()
    set_autolock(lab, True, FIRST)
    passed(run_check("autolock_enabled", lab))
    return lab


def locked_lab(refused_ago: int | None = None) -> FakeLab:
    """restart done: manager1 locked."""
    lab = autolock_lab()
    lock(lab, refused_ago=refused_ago)
    return lab


def unlocked_lab() -> FakeLab:
    lab = locked_lab()
    unlock(lab)
    return lab


# --- autolock:autolock ----------------------------------------------------------------------------


def test_autolock_enabled_keeps_the_key_off_the_nodes():
    lab = service_lab()
    set_autolock(lab, True, FIRST)
    result = run_check("autolock_enabled", lab)
    passed(result, "Autolock is on: manager1's disk holds the Raft key only sealed with the unlock key")
    assert "ENCRYPTED PRIVATE KEY" in result.evidence[0]
    assert any("unlock key SWMKEY-1-first0ke… kept by labkit on this computer" in e for e in result.evidence)
    assert kept(lab) == [FIRST]
    passed(run_check("autolock_enabled", lab))
    assert kept(lab) == [FIRST], "a key is kept once"


def test_autolock_enabled_off_says_the_key_lies_in_the_clear():
    lab = service_lab()
    result = run_check("autolock_enabled", lab)
    failed(result, "Autolock is off: the Raft log's key still lies readable", "--autolock=true")
    assert "PRIVATE KEY in the clear" in result.evidence[0]


def test_autolock_enabled_while_the_key_file_is_not_sealed_yet():
    lab = service_lab()
    set_autolock(lab, True, FIRST)
    lab["manager1"].outputs["head -n 1 /var/lib/docker/swarm/certificates/swarm-node.key"] = \
        "-----BEGIN PRIVATE KEY-----\n"
    failed(run_check("autolock_enabled", lab), "still sealing its key file", pending=True)


def test_autolock_enabled_on_a_locked_manager_or_without_a_swarm():
    lab = locked_lab()
    failed(run_check("autolock_enabled", lab), "manager1 is locked: it restarted and waits for its unlock key",
           f"`echo {FIRST} | docker swarm unlock`")
    failed(run_check("autolock_enabled", FakeLab()), "manager1 is in no swarm.", "`labkit reset autolock`")


def test_autolock_off_forgets_the_kept_keys():
    lab = autolock_lab()
    set_autolock(lab, False)
    failed(run_check("autolock_enabled", lab), "Autolock is off")
    assert kept(lab) == []


# --- autolock:restart -----------------------------------------------------------------------------


def test_manager_locked_judges_the_prediction_with_the_workers_tasks():
    lab = locked_lab()
    assert answer_of("manager_locked", lab) == "2"
    result = run_check("manager_locked", lab, answer="2")
    passed(result, "Right: 2.")
    assert result.evidence == ("manager1: Swarm: locked (the engine answers; `docker node ls` is refused)",
                               "pinger containers running: worker1 1, worker2 1",
                               "labkit keeps the unlock key SWMKEY-1-first0ke…")
    passed(run_check("manager_locked", lab, answer="two tasks"))
    wrong_answer(run_check("manager_locked", lab, answer="0"), "0", explain("manager_locked", "0"))
    wrong_answer(run_check("manager_locked", lab, answer="none"), "none", explain("manager_locked", "none"))
    wrong_answer(run_check("manager_locked", lab, answer="3"), "3")
    failed(run_check("manager_locked", lab), "Predict, run the command(s), then answer")


def test_manager_locked_without_a_kept_key_says_where_to_find_it(state_dir):
    lab = locked_lab()
    Progress(lab.cluster.lab).keep(UNLOCK_KEYS, [])
    result = run_check("manager_locked", lab, answer="2")
    assert "labkit has not seen the unlock key" in result.evidence[-1]


def test_manager_locked_restarted_too_early_or_not_at_all():
    lab = service_lab()
    failed(run_check("manager_locked", lab, answer="2"), "manager1 is not locked: autolock is off",
           "Turn autolock on first")
    lab = autolock_lab()
    failed(run_check("manager_locked", lab, answer="2"), "it has not restarted since autolock went on",
           hints("manager_locked")[0])


def test_manager_locked_after_swarm_leave():
    lab = locked_lab()
    lab["manager1"].engine.local_state = "inactive"
    failed(run_check("manager_locked", lab, answer="2"), "If it left (`docker swarm leave --force`), it threw away",
           "`labkit reset autolock`")


# --- autolock:unlock ------------------------------------------------------------------------------


def test_manager_unlocked_passes_once_unlocked():
    lab = unlocked_lab()
    result = run_check("manager_unlocked", lab)
    passed(result, "manager1 is unlocked: it decrypted its Raft key and manages the swarm again")
    assert result.evidence == ("manager1: Swarm: active, manager",
                               "nodes: manager1 ready, worker1 ready, worker2 ready",
                               "autolock still on, unlock key SWMKEY-1-first0ke…")


def test_manager_unlocked_waits_for_the_workers_to_report_back():
    lab = unlocked_lab()
    lab.mark_node("worker1", "unknown", at=30)
    failed(run_check("manager_unlocked", lab), "manager1 is unlocked; the workers are reporting back to it.",
           "Unknown", pending=True)


def test_manager_unlocked_still_locked_gives_the_kept_key():
    failed(run_check("manager_unlocked", locked_lab()), "manager1 is still locked.",
           f"`echo {FIRST} | docker swarm unlock`")


def test_manager_unlocked_a_wrong_key_was_refused():
    result = run_check("manager_unlocked", locked_lab(refused_ago=4))
    failed(result, "manager1 is still locked: the key given was refused (\"invalid key provided\")",
           f"Not a join token (SWMTKN-…), not an older key: the unlock key (SWMKEY-1-…). labkit keeps the latest "
           f"one: `echo {FIRST} | docker swarm unlock` on manager1.")
    assert "manager1's engine refused an unlock key 4 s ago" in result.evidence[1]


def test_manager_unlocked_refused_without_a_kept_key():
    lab = locked_lab(refused_ago=4)
    Progress(lab.cluster.lab).keep(UNLOCK_KEYS, [])
    failed(run_check("manager_unlocked", lab), "the key given was refused", "Use the one `docker swarm update "
           "--autolock=true` printed")


def test_manager_unlocked_locked_and_no_key_ever_seen():
    lab = locked_lab()
    Progress(lab.cluster.lab).keep(UNLOCK_KEYS, [])
    failed(run_check("manager_unlocked", lab), "labkit has not seen its unlock key", "`labkit reset autolock`")


def test_manager_unlocked_the_boot_write_is_no_attempt():
    """The engine writes its swarm state as it starts: that alone is no refused key."""
    lab = autolock_lab()
    lock(lab, up=40, refused_ago=39)
    failed(run_check("manager_unlocked", lab), "manager1 is still locked.")
    lab["manager1"].outputs["date +%s.%3N"] = (1, "", "date: not found\n")
    failed(run_check("manager_unlocked", lab), "manager1 is still locked.")


def test_manager_unlocked_taking_up_its_role_and_after_leave():
    lab = unlocked_lab()
    lab["manager1"].engine.swarm.node("manager1")["Spec"]["Role"] = "worker"  # ControlAvailable false
    failed(run_check("manager_unlocked", lab), "taking up its manager role", pending=True)
    lab = locked_lab()
    lab["manager1"].engine.local_state = "inactive"
    failed(run_check("manager_unlocked", lab), "manager1 is in no swarm")


# --- autolock:rotate ------------------------------------------------------------------------------


def test_key_rotated_passes_with_a_new_key_and_keeps_it():
    lab = unlocked_lab()
    failed(run_check("key_rotated", lab), "The unlock key is still the one autolock printed.",
           hints("key_rotated")[0])
    set_autolock(lab, True, ROTATED)
    result = run_check("key_rotated", lab)
    passed(result, "The unlock key is new")
    assert result.evidence[0] == "unlock key was SWMKEY-1-first0ke…, now SWMKEY-1-rotated0… (kept by labkit)"
    assert kept(lab) == [FIRST, ROTATED]
    passed(run_check("key_rotated", lab))  # checked again: still rotated
    assert render("echo {unlock_key} | docker swarm unlock", lab.cluster) == f"echo {ROTATED} | docker swarm unlock"


def test_key_rotated_with_autolock_off_locked_or_no_key_seen():
    lab = unlocked_lab()
    set_autolock(lab, False)
    failed(run_check("key_rotated", lab), "Autolock is off: there is no unlock key to rotate", "--autolock=true")
    failed(run_check("key_rotated", locked_lab()), "manager1 is locked")
    lab = service_lab()
    Progress(lab.cluster.lab).keep(UNLOCK_KEYS, [])
    set_autolock(lab, True, ROTATED)  # labkit never saw the first key
    failed(run_check("key_rotated", lab), "labkit had not seen this swarm's unlock key before",
           "`docker swarm unlock-key --rotate`")


# --- autolock:off ---------------------------------------------------------------------------------


def test_autolock_disabled_passes_with_the_key_in_the_clear_and_pinger_gone():
    lab = unlocked_lab()
    failed(run_check("autolock_disabled", lab), "Autolock is still on.", hints("autolock_disabled")[0])
    set_autolock(lab, False)
    failed(run_check("autolock_disabled", lab), "Autolock is off, but pinger still runs.", "docker service rm pinger")
    lab.remove_service(lab.swarm.services[0])
    result = run_check("autolock_disabled", lab)
    passed(result, "Autolock is off")
    assert "PRIVATE KEY in the clear" in result.evidence[0]
    assert kept(lab) == []


def test_autolock_disabled_while_the_file_is_rewritten_or_locked():
    lab = unlocked_lab()
    _autolock = lab.swarm.__dict__["autolock"]
    _autolock.update(on=False, key="")  # the spec says off; the key file is still sealed
    failed(run_check("autolock_disabled", lab), "rewriting its key file in the clear", pending=True)
    failed(run_check("autolock_disabled", locked_lab()), "manager1 is locked")


# --- the {unlock_key} field -----------------------------------------------------------------------


def test_unlock_key_field_from_the_engine_then_from_labkit_while_locked():
    lab = service_lab()
    assert render("{unlock_key}", lab.cluster) == "<the unlock key autolock printed>"
    set_autolock(lab, True, FIRST)
    assert render("echo {unlock_key}", lab.cluster) == f"echo {FIRST}", "read from the unlocked manager"
    lock(lab)
    assert render("{unlock_key}", lab.cluster) == "<the unlock key autolock printed>", "nothing kept yet"
    Progress(lab.cluster.lab).keep(UNLOCK_KEYS, [FIRST])
    assert render("{unlock_key}", lab.cluster) == FIRST
