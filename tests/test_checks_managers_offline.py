"""The checks of lab managers (labkit/checks/managers.py) through each of their outcomes, on the fake cluster
of tests/fakes.py, with the steps, hints and explanations of labs/12-managers.toml. The scenes follow the lab:
three managers and two workers; worker1 promoted (four managers) and demoted; pinger on the workers; manager1,
the leader, powered off (an election); manager2 off too (no quorum) and on again (a leader again); pinger
scaled to 3; manager2 off again and `--force-new-cluster` on manager3 (the only manager in Raft, manager1 and
manager2 managers by role only); manager1 and manager2 on again, waiting for a seat, then Reachable.
That the runner skips its node-down verdict for a step's `nodes_down` is the runner's business, not here.
manager_quorum and pinger_on_workers check several steps of the lab, so `run_check` and `answer_of` here take
the step's id (tests/test_checks_offline.py's find a check's only step).
"""

from __future__ import annotations

import copy

import pytest

from labkit.backends.base import PROMPT
from labkit.checks import ANSWERS, CHECKS, Context, Result
from labkit.labs import Step
from labkit.runner import quorum_after_stop
from tests.fakes import (
    ELECTING,
    HELD,
    NO_LEADER,
    NODE_CERT,
    FakeAPI,
    FakeDocker,
    FakeLab,
    Json,
    elect,
    force_new_cluster,
    issue_cert,
    managers_lab,
    no_leader,
    node_event,
    power_off,
    power_on,
    set_role,
    unreachable,
)
from tests.test_checks_offline import (  # noqa: F401 (no_real_engine: autouse, so no real engine here either)
    failed,
    no_real_engine,
    passed,
    steps,
    wrong_answer,
)

WORKERS = ("worker1", "worker2")
ELECTED = ("a new leader took office 7.5 s after manager1 went off (its dispatcher marked every node unknown "
           "until their heartbeats came)")


def step_of(check: str, step: str | None = None) -> Step:
    """The step of labs/12-managers.toml that CHECK checks: the one of id STEP, where several do."""
    found = [s for s in steps() if s.lab == "managers" and s.check == check and step in (None, s.id)]
    assert len(found) == 1, f"{len(found)} steps of lab managers use check {check!r} (step {step!r})"
    return found[0]


def run_check(name: str, lab: FakeLab, answer: str | None = None, step: str | None = None) -> Result:
    return CHECKS[name](Context(lab.cluster, step_of(name, step), answer))


def answer_of(name: str, lab: FakeLab, step: str | None = None) -> str:
    return ANSWERS[name](Context(lab.cluster, step_of(name, step)))


def hints(name: str, step: str | None = None) -> tuple[str, ...]:
    return step_of(name, step).hints


def explain(name: str, answer: str, step: str | None = None) -> str:
    return step_of(name, step).explain[answer]


def test_the_checks_ask_the_leader_when_there_are_several_managers():
    """A manager rejoining Raft may answer the control API one moment and not the next: the leader is
    the one to ask (else manager1's words would flicker to 'in a swarm, but as a worker')."""
    lab = managers_lab()
    assert Context(lab.cluster, step_of("manager_quorum", "quorum")).manager.name == "manager1"
    lab.swarm.set_leader("manager3")
    assert Context(lab.cluster, step_of("manager_quorum", "quorum")).manager.name == "manager3"


def test_the_leader_is_found_with_one_question_not_a_docker_info_per_manager(monkeypatch):
    """`docker info` costs each engine a run of runc (up to 0.1 s while engines start): the first manager
    that lists the nodes names the leader."""
    lab = managers_lab()
    lab.swarm.set_leader("manager2")
    infos: list[str] = []
    monkeypatch.setattr(FakeDocker, "info", lambda self: infos.append("info") or {})
    assert Context(lab.cluster, step_of("manager_quorum", "quorum")).manager.name == "manager2"
    assert infos == []


def test_a_manager_back_from_a_lost_cluster_is_not_the_one_asked():
    """After --force-new-cluster, manager1 boots believing it still manages the old cluster (control, but no
    leader): the checks ask manager3, which knows the leader, not manager1 (whose words would flicker)."""
    lab, _ = last_manager_lab()
    power_on(lab, "manager1", at=150, seated=False)
    stale = copy.deepcopy(lab.swarm)  # manager1's own copy of the old cluster, where it has no quorum
    stale.set_leader(None)
    stale.__dict__.setdefault("raft", {"refused": "", "events": []})["refused"] = NO_LEADER
    lab["manager1"].engine.swarm, lab["manager1"].engine.local_state = stale, "active"
    assert Context(lab.cluster, step_of("manager_quorum", "rejoin")).manager.name == "manager3"


# --- scenes, in the lab's order -------------------------------------------------------------------


def promoted_lab(reachability: str = "reachable") -> FakeLab:
    """promote done: worker1 a manager (in Raft with REACHABILITY)."""
    lab = managers_lab()
    set_role(lab, "worker1", "manager", reachability=reachability)
    return lab


def demoted_lab(cert_follows: bool = True) -> FakeLab:
    """demote done: worker1 a worker again (with CERT_FOLLOWS, holding a worker's certificate already)."""
    lab = promoted_lab()
    set_role(lab, "worker1", "worker", cert_follows=cert_follows)
    return lab


def pinger(lab: FakeLab, replicas: int = 2, on: tuple[str, ...] = WORKERS,
           constraints: tuple[str, ...] = ("node.role==worker",), state: str = "running") -> Json:
    return lab.service("pinger", replicas=replicas, on=on, args=("ping", "manager1"), constraints=constraints,
                       state=state, at=10)


def service_lab() -> tuple[FakeLab, Json]:
    """service done: pinger, two tasks, on the workers only."""
    lab = demoted_lab()
    return lab, pinger(lab)


def leader_down_lab(noticed: bool = True, elected: bool = True) -> tuple[FakeLab, Json]:
    """leader-down done: manager1 (the leader) off at 20 s; the others NOTICED (Unreachable, Down at 26 s) and
    ELECTED manager2 at 27.5 s (else they still see manager1 lead)."""
    lab, service = service_lab()
    power_off(lab, "manager1", at=20)
    if noticed:
        unreachable(lab, "manager1", at=26)
    if elected:
        elect(lab, "manager2", at=27.5)
    return lab, service


def quorum_lost_lab(noticed: bool = True) -> tuple[FakeLab, Json]:
    """quorum-lost done: manager2 off too, at 60 s; manager3, alone, NOTICED it has no leader."""
    lab, service = leader_down_lab()
    power_off(lab, "manager2", at=60)
    if noticed:
        no_leader(lab)
    return lab, service


def recovered_lab(elected: bool = True) -> tuple[FakeLab, Json]:
    """recover done: manager2 on again at 90 s, Reachable; with manager3 they ELECTED manager3 at 95 s."""
    lab, service = quorum_lost_lab()
    power_on(lab, "manager2", at=90)
    if elected:
        elect(lab, "manager3", at=95)
    return lab, service


def scaled_lab() -> tuple[FakeLab, Json]:
    """change done: pinger scaled to 3 on manager3 at 100 s."""
    lab, service = recovered_lab()
    lab.scale(service, 3, at=100)
    lab.task(service, "worker1", 3, at=101)
    return lab, service


def last_manager_lab(forced: bool = True, noticed: bool = True) -> tuple[FakeLab, Json]:
    """force-new-cluster done: manager2 off again at 120 s; manager3 NOTICED it has no leader, then FORCED a new
    cluster at 130 s."""
    lab, service = scaled_lab()
    power_off(lab, "manager2", at=120)
    if noticed:
        unreachable(lab, "manager2", at=126)
        no_leader(lab)
    if forced:
        force_new_cluster(lab, "manager3", at=130)
    return lab, service


def rejoined_lab(seated: tuple[str, ...] = ("manager1", "manager2"), started: tuple[str, ...] = ("manager1",
                 "manager2")) -> FakeLab:
    """rejoin done: manager1 and manager2 (those of STARTED) on again at 150 s; those of SEATED back in Raft."""
    lab, _ = last_manager_lab()
    for name in started:
        power_on(lab, name, at=150, seated=name in seated)
    return lab


# --- managers:quorum ---------------------------------------------------------------------------------


def test_quorum_three_managers_may_lose_one():
    lab = managers_lab()
    assert answer_of("manager_quorum", lab, step="quorum") == "1"
    for answer in ("1", "one", "1, it can lose one", "One."):
        passed(run_check("manager_quorum", lab, answer, step="quorum"), "Right:")
    assert run_check("manager_quorum", lab, "1", step="quorum").evidence == (
        "managers: manager1 Leader, manager2 Reachable, manager3 Reachable",
        "3 managers: a quorum is 2, so 1 may be lost")


def test_quorum_wrong_answers_are_explained():
    lab = managers_lab()
    for answer in ("2", "3"):
        result = run_check("manager_quorum", lab, answer, step="quorum")
        wrong_answer(result, answer, explain("manager_quorum", answer, step="quorum"))
        assert result.hint == hints("manager_quorum", step="quorum")[0]
    wrong_answer(run_check("manager_quorum", lab, "0", step="quorum"), "0")
    failed(run_check("manager_quorum", lab, None, step="quorum"),
           "Predict, run the command(s), then answer: With three managers, how many")


def test_quorum_one_manager_is_told():
    lab = FakeLab(managers=3, workers=2)
    lab.init("manager1")
    result = run_check("manager_quorum", lab, "1", step="quorum")
    failed(result, "The swarm has 1 manager; this step wants 3.", hint="`labkit reset managers`")
    assert result.evidence == ("managers: manager1 Leader", "1 manager: a quorum is 1, so 0 may be lost",
                               "not in Raft: none")


def test_quorum_a_manager_not_reachable_is_pending():
    lab = managers_lab()
    lab.swarm.node("manager3")["ManagerStatus"]["Reachability"] = "unknown"
    result = run_check("manager_quorum", lab, "1", step="quorum")
    failed(result, "manager3 is not reachable yet.", pending=True, hint="A new manager needs a few seconds")
    assert result.evidence[0] == "managers: manager1 Leader, manager2 Reachable, manager3 Unknown"
    lab.swarm.node("manager2")["ManagerStatus"]["Reachability"] = "unreachable"
    failed(run_check("manager_quorum", lab, "1", step="quorum"), "manager2, manager3 are not reachable yet.",
           pending=True)


# --- managers:promote ----------------------------------------------------------------------------------


def test_promote_four_managers_may_lose_one_too():
    lab = promoted_lab()
    assert answer_of("manager_quorum", lab, step="promote") == "1"
    result = run_check("manager_quorum", lab, "1", step="promote")
    passed(result, "Right: 1")
    assert result.evidence == ("managers: manager1 Leader, manager2 Reachable, manager3 Reachable, worker1 Reachable",
                               "4 managers: a quorum is 3, so 1 may be lost")


def test_promote_two_is_explained():
    lab = promoted_lab()
    result = run_check("manager_quorum", lab, "2", step="promote")
    wrong_answer(result, "2", explain("manager_quorum", "2", step="promote"))
    assert result.hint == hints("manager_quorum", step="promote")[0]
    failed(run_check("manager_quorum", lab, "", step="promote"),
           "Predict, run the command(s), then answer: With four managers")


def test_promote_not_done():
    result = run_check("manager_quorum", managers_lab(), "1", step="promote")
    failed(result, "The swarm has 3 managers; this step wants 4.", hint="`docker node promote worker1` on manager1.")
    assert "even" not in result.summary
    assert result.evidence[-1] == "not in Raft: worker1 worker (ready), worker2 worker (ready)"


def test_promote_new_manager_not_reachable_yet_is_pending():
    failed(run_check("manager_quorum", promoted_lab("unknown"), "1", step="promote"), "worker1 is not reachable yet.",
           pending=True, hint="watch `docker node ls`")


def test_promote_seat_taken_while_the_check_asks_is_pending_not_a_failure(monkeypatch):
    """worker1, promoted, takes its seat in Raft between two questions of the check: it reads one answer of
    the node list, so it says worker1 is joining (CI saw "3 managers; this step wants 4" with worker1 a
    manager by role, when the check asked twice)."""
    lab = promoted_lab()
    seat = lab.swarm.node("worker1").pop("ManagerStatus")
    asked = FakeAPI.nodes

    def seated_once_asked(api, filters=None):
        answer = asked(api, filters)
        lab.swarm.node("worker1")["ManagerStatus"] = seat
        return answer

    ctx = Context(lab.cluster, step_of("manager_quorum", "promote"), "1")
    assert ctx.manager.name == "manager1"  # found (by asking for the leader) before worker1 takes its seat
    monkeypatch.setattr(FakeAPI, "nodes", seated_once_asked)
    failed(CHECKS["manager_quorum"](ctx), "worker1: manager by role, not yet back in Raft.", pending=True)


# --- managers:demote -------------------------------------------------------------------------------------


def test_demote_back_to_three():
    result = run_check("manager_quorum", demoted_lab(), step="demote")
    passed(result, "3 managers, all reachable: the swarm may lose 1.")
    assert result.evidence[0] == "managers: manager1 Leader, manager2 Reachable, manager3 Reachable"


def test_demote_waits_until_worker1_is_a_worker_that_knows_every_manager():
    """Until its engine holds a worker certificate and a session, a demoted worker1 knows only the manager it
    joined through (manager1): powered off on the next steps, that left worker1 Down for good in a replay."""
    lab = demoted_lab()
    worker1 = lab["worker1"].engine
    worker1.knows = [f"{lab['manager1'].address}:2377"]
    failed(run_check("manager_quorum", lab, step="demote"),
           "worker1 is a worker again, and knows 1 of the 3 managers yet.", pending=True,
           hint="`docker info` on worker1")
    worker1.knows, worker1.local_state = None, "error"
    worker1.error = "manager stopped: can't initialize raft node"
    failed(run_check("manager_quorum", lab, step="demote"),
           "worker1 is becoming a worker: manager stopped: can't initialize raft node.", pending=True)
    worker1.local_state, worker1.error = "active", ""
    passed(run_check("manager_quorum", lab, step="demote"), "3 managers, all reachable")


def test_demote_waits_while_worker1_still_runs_a_manager(monkeypatch):
    lab = demoted_lab()  # out of Raft; its engine still runs a manager
    still = lab["worker1"].engine
    was = type(still).is_manager
    monkeypatch.setattr(type(still), "is_manager", property(lambda e: e is still or was.fget(e)))
    failed(run_check("manager_quorum", lab, step="demote"), "worker1 still runs as a manager: it is leaving Raft.",
           pending=True)


def test_demote_waits_until_worker1_holds_a_worker_certificate():
    """Out of Raft, its manager stopped, worker1 still holds a manager's certificate for some seconds (8 s
    measured). Managers powered off then, its engine starts a manager again and stays Down: the regression
    run lost worker1 so at managers:recover, three steps later."""
    lab = demoted_lab(cert_follows=False)
    failed(run_check("manager_quorum", lab, step="demote"),
           "worker1 has left Raft; the certificate on its disk still says OU=swarm-manager, a worker's is on its "
           "way.", pending=True, hint="trades its manager certificate for a worker's")
    lab["worker1"].files.pop(NODE_CERT)
    failed(run_check("manager_quorum", lab, step="demote"), "the certificate on its disk still says OU=unreadable",
           pending=True)
    issue_cert(lab, "worker1")
    passed(run_check("manager_quorum", lab, step="demote"), "3 managers, all reachable")


def test_demote_not_done_names_the_even_number():
    result = run_check("manager_quorum", promoted_lab(), step="demote")
    failed(result, "The swarm has 4 managers; this step wants 3. An even number adds no tolerance: 4 managers may "
           "lose 1, like 3.", hint="`docker node demote worker1` on manager1.")
    assert not result.pending


# --- managers:service --------------------------------------------------------------------------------------


def test_service_on_the_workers():
    lab, _ = service_lab()
    result = run_check("pinger_on_workers", lab, step="service")
    passed(result, "pinger runs 2 tasks, on the workers only.")
    assert result.evidence == ("constraints: node.role==worker", "pinger tasks on: worker1, worker2")


def test_service_constraint_written_with_spaces():
    lab = demoted_lab()
    pinger(lab, constraints=("node.role == worker",))
    passed(run_check("pinger_on_workers", lab, step="service"), "pinger runs 2 tasks")


def test_service_missing():
    lab = demoted_lab()
    result = run_check("pinger_on_workers", lab, step="service")
    failed(result, "There is no service called pinger yet.", hint=hints("pinger_on_workers", step="service")[0])


def test_service_without_the_constraint():
    lab = demoted_lab()
    pinger(lab, on=("manager2", "worker1"), constraints=())
    result = run_check("pinger_on_workers", lab, step="service")
    failed(result, "pinger may run on managers; this lab keeps its tasks on the workers.",
           hint="`docker service update --constraint-add node.role==worker pinger`")
    assert result.evidence == ("constraints: none", "pinger tasks on: manager2, worker1")
    assert not result.pending


def test_service_one_replica():
    lab = demoted_lab()
    pinger(lab, replicas=1, on=("worker1",))
    failed(run_check("pinger_on_workers", lab, step="service"), "pinger asks for 1 replica(s); this step wants 2.",
           hint=hints("pinger_on_workers", step="service")[0])


def test_service_tasks_starting_is_pending():
    lab = demoted_lab()
    service = pinger(lab, on=("worker1",))
    lab.task(service, "worker2", 2, state="preparing")
    result = run_check("pinger_on_workers", lab, step="service")
    failed(result, "pinger's tasks are starting.", pending=True, hint="Wait a moment.")
    assert result.evidence[1:] == ("pinger tasks on: worker1", "pinger.2 on worker2: preparing")


def test_change_a_task_no_worker_can_take_says_why():
    lab, service = recovered_lab()
    lab.scale(service, 3, at=100)
    task = lab.task(service, "worker1", 3, state="pending")
    task["NodeID"] = ""
    task["Status"]["Message"] = "pending task scheduling"
    task["Status"]["Err"] = ("no suitable node (1 node not available for new tasks; scheduling constraints not "
                             "satisfied on 4 nodes)")
    result = run_check("pinger_on_workers", lab, step="change")
    failed(result, "pinger's tasks are starting.", pending=True, hint="Wait a moment.")
    assert result.evidence[2:] == ("pinger.3: pending (no suitable node (1 node not available for new tasks; "
                                   "scheduling constraints not satisfied on 4 nodes))",)


# --- managers:leader-down ------------------------------------------------------------------------------------


def test_leader_elected_two_must_vote_and_how_long_it_took():
    lab, _ = leader_down_lab()
    assert answer_of("leader_elected", lab) == "2"
    for answer in ("2", "two", "2 managers", "Two."):
        passed(run_check("leader_elected", lab, answer), "Right:")
    assert run_check("leader_elected", lab, "2").evidence == (
        "managers: manager1 Unreachable, manager2 Leader, manager3 Reachable",
        "pinger containers running on: worker1 1, worker2 1", ELECTED)


def test_leader_elected_wrong_answers_are_explained():
    lab, _ = leader_down_lab()
    for answer in ("3", "1"):
        result = run_check("leader_elected", lab, answer)
        wrong_answer(result, answer, explain("leader_elected", answer))
        assert result.hint == hints("leader_elected")[0]
    wrong_answer(run_check("leader_elected", lab, "4"), "4")
    failed(run_check("leader_elected", lab, None), "Predict, run the command(s), then answer: How many managers")


def test_leader_elected_manager1_still_running():
    lab, _ = service_lab()
    result = run_check("leader_elected", lab, "2")
    failed(result, "manager1 is still running.", hint="`labkit node stop manager1`")
    assert not result.pending


def test_leader_elected_no_other_manager_answers_yet_is_pending():
    lab, _ = leader_down_lab(noticed=False, elected=False)
    for name in ("manager2", "manager3"):
        lab[name].engine.answers = False
    failed(run_check("leader_elected", lab, "2"), "No other manager answers with the control API yet.", pending=True,
           hint="The managers wait for missed heartbeats before they elect")


def test_leader_elected_not_noticed_yet_is_pending():
    lab, _ = leader_down_lab(noticed=False, elected=False)
    result = run_check("leader_elected", lab, "2")
    failed(result, "The managers have not elected a new leader yet.", pending=True, hint="give it 10 to 20 s")
    assert result.evidence == ("managers: manager1 Leader, manager2 Reachable, manager3 Reachable",
                               "pinger containers running on: worker1 1, worker2 1")


def test_leader_elected_while_they_elect_is_pending():
    lab, _ = leader_down_lab(elected=False)
    no_leader(lab, ELECTING)
    result = run_check("leader_elected", lab, "2")
    failed(result, "The managers are electing a new leader.", pending=True, hint="give it 10 to 20 s")
    assert result.evidence == (ELECTING,)
    no_leader(lab, NO_LEADER)
    assert run_check("leader_elected", lab, "2").evidence == (NO_LEADER,)


def test_leader_elected_the_first_unknown_after_the_stop_is_the_election():
    """A node marked unknown before manager1 went off (in the same second) is no election; a node coming back
    (unknown -> ready) is none either."""
    lab, _ = service_lab()
    node_event(lab, 20.2, "worker2", "ready", "unknown")
    power_off(lab, "manager1", at=20.7)
    node_event(lab, 21, "worker1", "unknown", "ready")
    unreachable(lab, "manager1", at=26)
    elect(lab, "manager3", at=27.5)
    assert run_check("leader_elected", lab, "2").evidence[2].startswith(
        "a new leader took office 6.8 s after manager1 went off")


def test_leader_elected_when_labkit_cannot_tell():
    lab, _ = leader_down_lab()
    lab["manager1"].__dict__.pop("off_since")  # a backend that cannot tell when a node went off
    result = run_check("leader_elected", lab, "2")
    passed(result, "Right: 2")
    assert result.evidence[2] == ("when the new leader took office: unknown (labkit cannot tell when the old one "
                                  "stopped)")
    lab, _ = leader_down_lab()
    lab.swarm.__dict__["raft"]["events"].clear()
    assert run_check("leader_elected", lab, "2").evidence[2] == ("when the new leader took office: not in the "
                                                                  "engine's events")


# --- managers:quorum-lost ----------------------------------------------------------------------------------------


def test_quorum_lost_tasks_keep_running():
    lab, _ = quorum_lost_lab()
    assert answer_of("quorum_lost", lab) == "yes"
    for answer in ("yes", "Yes, they do.", "they keep running"):
        passed(run_check("quorum_lost", lab, answer), "Right:")
    assert run_check("quorum_lost", lab, "yes").evidence == (
        "managers off: manager1, manager2", f"manager3: {NO_LEADER}",
        "pinger containers running on: worker1 1, worker2 1")


def test_quorum_lost_no_is_explained():
    lab, _ = quorum_lost_lab()
    result = run_check("quorum_lost", lab, "no")
    wrong_answer(result, "no", explain("quorum_lost", "no"))
    assert result.hint == hints("quorum_lost")[0]
    wrong_answer(run_check("quorum_lost", lab, "maybe"), "maybe")
    failed(run_check("quorum_lost", lab, None), "Predict, run the command(s), then answer: With manager1 and manager2")


def test_quorum_lost_only_manager1_off():
    lab, _ = leader_down_lab()
    result = run_check("quorum_lost", lab, "yes")
    failed(result, "Only 1 manager(s) off: the others still make a majority.", hint="`labkit node stop manager2`")
    assert not result.pending
    assert result.evidence[:2] == ("managers off: manager1", "the managers: a leader answers")


def test_quorum_lost_not_noticed_yet_is_pending():
    lab, _ = quorum_lost_lab(noticed=False)
    result = run_check("quorum_lost", lab, "yes")
    failed(result, "The last manager has not noticed yet that it lost its quorum.", pending=True,
           hint="run `docker node ls` on it again")
    assert result.evidence[0] == "managers off: manager1, manager2"


def test_quorum_lost_while_the_last_manager_holds_requests():
    """Until it notices (10 Raft ticks) that it lost its leader, manager3 holds requests until dockerd's 20 s
    deadline, then refuses them: the check gives up after a few seconds and calls that no leader too (a
    replay's wait, and a learner's check, need not hang 20 s)."""
    lab, _ = quorum_lost_lab(noticed=False)
    no_leader(lab, HELD)
    result = run_check("quorum_lost", lab, "yes")
    passed(result, "Right:")
    assert result.evidence[1] == f"manager3: no answer within {PROMPT} s (it waits for a leader)"
    lab, _ = leader_down_lab(elected=False)  # one manager off, held while the others elect: no lost quorum
    no_leader(lab, HELD)
    failed(run_check("quorum_lost", lab, "yes"), "Only 1 manager(s) off: the others still make a majority.")


def test_the_status_of_a_manager_that_holds_requests_reads_error_without_waiting_for_its_deadline():
    """`labkit status`, a reset's look at the swarm and its save ask each node's swarm state: a manager that
    holds `docker info` for 20 s reads "error" (as it does once it says it has no leader) after a few."""
    lab, _ = quorum_lost_lab(noticed=False)
    no_leader(lab, HELD)
    assert lab["manager3"].status().swarm == "error"
    assert lab.swarm.__dict__["raft"]["waited"] == PROMPT


def test_quorum_after_a_stop_counts_the_managers_powered_on():
    """A reset's replay elects a manager before its stop ends the quorum (runner.replay_command): whether it
    does counts the managers in Raft that are on, not those the leader still calls reachable."""
    lab, _ = leader_down_lab()
    assert quorum_after_stop(lab.cluster, "manager3") is False
    assert quorum_after_stop(lab.cluster, "worker1") is True
    lab.swarm.node("manager1")["ManagerStatus"]["Reachability"] = "reachable"  # not missed yet
    assert quorum_after_stop(lab.cluster, "manager3") is False
    no_leader(lab)
    assert quorum_after_stop(lab.cluster, "manager3") is None


def test_quorum_lost_without_running_tasks_the_answer_is_no():
    lab, service = quorum_lost_lab()
    for task in lab.tasks(service):
        lab.remove_container(task)
    assert answer_of("quorum_lost", lab) == "no"
    result = run_check("quorum_lost", lab, "no")
    passed(result, "Right: no")
    assert result.evidence[2] == "pinger containers running on: worker1 0, worker2 0"


# --- managers:recover ---------------------------------------------------------------------------------------------


def test_leader_back():
    lab, _ = recovered_lab()
    result = run_check("leader_back", lab)
    passed(result, "The swarm has a leader again, and every node that is on reports to it.")
    assert result.evidence == ("managers: manager1 Unreachable, manager2 Reachable, manager3 Leader",)


def test_leader_back_while_a_worker_has_not_found_the_new_leader_is_pending():
    """The next step scales pinger on the workers: a worker still unknown to the new leader would get no task
    (a regression run's scale-up waited 90 s in vain once)."""
    lab, _ = recovered_lab()
    lab.mark_node("worker1", "unknown", at=96)
    result = run_check("leader_back", lab)
    failed(result, "The swarm has a leader again; not every node reports to it yet: worker1 (unknown).",
           pending=True, hint="watch `docker node ls` until they are Ready")


def test_leader_back_manager2_still_off():
    lab, _ = quorum_lost_lab()
    result = run_check("leader_back", lab)
    failed(result, "The swarm still has no leader: too few managers are on.", hint="`labkit node start manager2`")
    assert not result.pending
    assert result.evidence == (f"manager3: {NO_LEADER}", "managers off: manager1, manager2")


def test_leader_back_on_but_no_leader_yet_is_pending():
    lab, _ = recovered_lab(elected=False)
    result = run_check("leader_back", lab)
    failed(result, "The managers are electing a leader.", pending=True, hint="elect a leader within 10 to 20 s")
    assert result.evidence[1] == "managers off: manager1"


def test_leader_back_while_the_manager_holds_requests_is_pending():
    lab, _ = recovered_lab(elected=False)
    no_leader(lab, HELD)
    result = run_check("leader_back", lab)
    failed(result, "The managers are electing a leader.", pending=True)
    assert result.evidence == (f"manager2: no answer within {PROMPT} s (it waits for a leader)",
                               "managers off: manager1")


def test_leader_back_while_they_elect_is_pending():
    lab, _ = recovered_lab(elected=False)
    no_leader(lab, "rpc error: code = Unknown desc = raft: no elected cluster leader")
    result = run_check("leader_back", lab)
    failed(result, "The managers are electing a leader.", pending=True, hint="Give it a few seconds.")
    assert result.evidence == ("rpc error: code = Unknown desc = raft: no elected cluster leader",)
    elect(lab, "manager3", at=95)
    lab.swarm.set_leader(None)  # they answer, and name no leader yet
    result = run_check("leader_back", lab)
    failed(result, "The managers are electing a leader.", pending=True, hint="Wait a moment.")
    assert result.evidence == ("managers: manager1 Unreachable, manager2 Reachable, manager3 Reachable",)


# --- managers:change -----------------------------------------------------------------------------------------------


def test_change_three_replicas_on_the_workers():
    lab, _ = scaled_lab()
    result = run_check("pinger_on_workers", lab, step="change")
    passed(result, "pinger runs 3 tasks, on the workers only.")
    assert result.evidence == ("constraints: node.role==worker", "pinger tasks on: worker1, worker1, worker2")


def test_change_not_scaled_yet():
    lab, _ = recovered_lab()
    failed(run_check("pinger_on_workers", lab, step="change"), "pinger asks for 2 replica(s); this step wants 3.",
           hint="`docker service update --detach --replicas 3 pinger` on manager3.")


# --- managers:force-new-cluster ---------------------------------------------------------------------------------------


def test_new_cluster_keeps_the_services():
    lab, _ = last_manager_lab()
    assert answer_of("new_cluster", lab) == "yes"
    for answer in ("yes", "Yes, it is.", "it is"):
        passed(run_check("new_cluster", lab, answer), "Right:")
    assert run_check("new_cluster", lab, "yes").evidence == ("managers: manager3 Leader", "pinger: there")


def test_new_cluster_no_is_explained():
    lab, _ = last_manager_lab()
    result = run_check("new_cluster", lab, "no")
    wrong_answer(result, "no", explain("new_cluster", "no"))
    assert result.hint == hints("new_cluster")[0]
    failed(run_check("new_cluster", lab, None), "Predict, run the command(s), then answer: After --force-new-cluster")


def test_new_cluster_manager2_still_on():
    lab, _ = scaled_lab()
    result = run_check("new_cluster", lab, "yes")
    failed(result, "manager3 is not the only manager yet.", hint="`labkit node stop manager2`, then")
    assert not result.pending and result.evidence[0].startswith("managers: manager1 Unreachable, manager2 ")


def test_new_cluster_not_forced_yet_has_no_quorum():
    lab, _ = last_manager_lab(forced=False)
    result = run_check("new_cluster", lab, "yes")
    failed(result, "manager3 has no quorum: it cannot lead alone.", hint="`docker swarm init --force-new-cluster")
    assert result.evidence == (f"manager3: {NO_LEADER}",)


def test_new_cluster_manager3_not_alone_yet():
    lab, _ = last_manager_lab(forced=False, noticed=False)
    result = run_check("new_cluster", lab, "yes")
    failed(result, "manager3 is not the only manager yet.", hint=hints("new_cluster")[0])
    assert result.evidence == ("managers: manager1 Unreachable, manager2 Reachable, manager3 Leader",
                               "pinger: there")


def test_new_cluster_without_pinger_the_answer_is_no():
    lab, service = last_manager_lab()
    lab.remove_service(service)
    assert answer_of("new_cluster", lab) == "no"
    result = run_check("new_cluster", lab, "no")
    passed(result, "Right: no")
    assert result.evidence == ("managers: manager3 Leader", "pinger: gone")


# --- managers:rejoin ------------------------------------------------------------------------------------------------


def test_rejoin_three_managers_again():
    result = run_check("manager_quorum", rejoined_lab(), step="rejoin")
    passed(result, "3 managers, all reachable: the swarm may lose 1.")
    assert result.evidence == ("managers: manager1 Reachable, manager2 Reachable, manager3 Leader",
                               "3 managers: a quorum is 2, so 1 may be lost")


def test_rejoin_managers_by_role_waiting_for_a_seat_are_pending():
    result = run_check("manager_quorum", rejoined_lab(seated=()), step="rejoin")
    failed(result, "manager1, manager2: manager by role, not yet back in Raft.", pending=True,
           hint="waits for a seat in Raft")
    assert result.evidence == ("managers: manager3 Leader", "1 manager: a quorum is 1, so 0 may be lost")
    result = run_check("manager_quorum", rejoined_lab(seated=("manager1",)), step="rejoin")
    failed(result, "manager2: manager by role, not yet back in Raft.", pending=True)
    assert result.evidence[0] == "managers: manager1 Reachable, manager3 Leader"


def test_rejoin_before_they_are_started_is_pending_too():
    """While manager1 and manager2 are off the check waits as well; that they are off is what the runner tells
    (the step takes no node down on purpose)."""
    failed(run_check("manager_quorum", rejoined_lab(started=()), step="rejoin"),
           "manager1, manager2: manager by role, not yet back in Raft.", pending=True)


# --- the fake managers, as the engine answers ---------------------------------------------------------------------


def test_the_fake_managers_answer_as_the_engine_does():
    lab, _ = quorum_lost_lab()
    manager3 = lab["manager3"]
    swarm = manager3.docker.info()["Swarm"]
    assert (swarm["LocalNodeState"], swarm["ControlAvailable"]) == ("active", True)  # it still says it manages
    for call in (manager3.docker.api.nodes, manager3.docker.api.services):
        with pytest.raises(Exception) as refused:
            call()
        assert refused.value.explanation == NO_LEADER  # type: ignore[attr-defined]
    assert (lab["manager1"].health(), lab["manager1"].stopped_at()) == ("stopped", "2024-05-01T12:00:20.000000123Z")
    assert lab["manager3"].stopped_at() is None
    lab, _ = leader_down_lab()
    events = list(lab["manager2"].docker.api.events(since=1714564827, until=1714564827,
                                                     filters={"type": "node", "event": "update"}, decode=True))
    assert [(e["Actor"]["Attributes"]["name"], e["Actor"]["Attributes"]["state.new"]) for e in events] == [
        ("manager3", "unknown"), ("worker1", "unknown"), ("worker2", "unknown")]
    assert [e["timeNano"] for e in events] == [1714564827_500000000] * 3
