"""Every check through each of its outcomes, on a fake cluster (tests/fakes.py): no Docker engine,
milliseconds. The checks run for real; only the engines are fakes, answering like the real ones.
Each step, with its hints, comes from labs/*.toml exactly as learners see it. The real-cluster
tests prove the integration; these prove each branch says what it should.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import docker.errors
import pytest

from labkit.checks import ANSWERS, CHECKS, Context, Result
from labkit.labs import Step
from labkit.runner import course
from tests.fakes import CA_CERT, NODE_CERT, RAFT_DIR, FakeLab, ca_digest, fake_pem, ping_lab, swarm_lab

LABS_DIR = Path(__file__).resolve().parent.parent / "labs"
ALL_NODES = ("manager1", "worker1", "worker2")


@pytest.fixture(autouse=True)
def no_real_engine(monkeypatch):
    """A real Docker client made here would be a mistake: it fails the test, whatever engine runs."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a real docker.APIClient was created in an offline test")

    monkeypatch.setattr(docker.APIClient, "__init__", refuse)


@cache
def steps() -> tuple[Step, ...]:
    return tuple(step for lab in course(LABS_DIR) for step in lab.steps)


def step_for(check: str, lab: str | None = None) -> Step:
    """The step of labs/ that uses CHECK (in LAB, when several do)."""
    found = [s for s in steps() if s.check == check and lab in (None, s.lab)]
    assert len(found) == 1, f"{len(found)} steps use check {check!r} in lab {lab!r}"
    return found[0]


def run_check(name: str, lab: FakeLab, answer: str | None = None, in_lab: str | None = None) -> Result:
    return CHECKS[name](Context(lab.cluster, step_for(name, in_lab), answer))


def answer_of(name: str, lab: FakeLab, in_lab: str | None = None) -> str:
    return ANSWERS[name](Context(lab.cluster, step_for(name, in_lab)))


def hints(name: str, in_lab: str | None = None) -> tuple[str, ...]:
    return step_for(name, in_lab).hints


def passed(result: Result, *words: str) -> None:
    assert result.passed and not result.pending, result
    for word in words:
        assert word in result.summary, result.summary


def failed(result: Result, summary: str, hint: str | None = None, pending: bool = False) -> None:
    """Not passed; pending as given; SUMMARY and HINT are parts of what the learner reads."""
    assert (result.passed, result.pending) == (False, pending), result
    assert summary in result.summary, result.summary
    if hint is not None:
        assert result.hint is not None and hint in result.hint, result.hint


def wrong_answer(result: Result, answer: str) -> None:
    failed(result, f"'{answer}' is not what the cluster says")
    assert result.evidence == (), "evidence would give the answer away"


def foreign_swarm_on_worker1(lab: FakeLab) -> None:
    """`docker swarm init` ran on worker1: it leads a swarm of its own."""
    lab.init("worker1")


# --- swarm-init:info ------------------------------------------------------------------------------


def test_swarm_state_answer_inactive_before_init():
    lab = FakeLab()
    result = run_check("swarm_state_answer", lab, "Inactive.")
    passed(result, "Right: Inactive")
    assert result.evidence == ("manager1: Swarm: inactive",)
    assert answer_of("swarm_state_answer", lab) == "inactive"


def test_swarm_state_answer_after_init_accepts_active_and_the_earlier_inactive():
    lab = swarm_lab()
    passed(run_check("swarm_state_answer", lab, "active"), "Right: active")
    passed(run_check("swarm_state_answer", lab, "inactive"), "Right: inactive")
    assert answer_of("swarm_state_answer", lab) == "active"


def test_swarm_state_answer_wrong_and_missing():
    lab = FakeLab()
    result = run_check("swarm_state_answer", lab, "yes")
    wrong_answer(result, "yes")
    assert result.hint == hints("swarm_state_answer")[0]
    failed(run_check("swarm_state_answer", lab, "  "), "Run the command(s), then answer: What does the `Swarm:`")
    failed(run_check("swarm_state_answer", lab, None), "Run the command(s), then answer")


# --- swarm-init:init ------------------------------------------------------------------------------


def test_swarm_initialised_inactive():
    result = run_check("swarm_initialised", FakeLab())
    failed(result, "Swarm mode is still inactive on manager1")
    assert result.hint == hints("swarm_initialised")[0]
    assert result.evidence == ("manager1: Swarm: inactive",)


def test_swarm_initialised_pending():
    lab = FakeLab()
    lab["manager1"].engine.local_state = "pending"
    failed(run_check("swarm_initialised", lab), "manager1 is still joining or creating a swarm", pending=True)


def test_swarm_initialised_manager1_joined_as_a_worker():
    lab = FakeLab()
    foreign_swarm_on_worker1(lab)
    lab.join("manager1", lab["worker1"].engine.swarm)  # type: ignore[arg-type]
    failed(run_check("swarm_initialised", lab), "manager1 is in a swarm, but as a worker",
           hint="On manager1 run `docker swarm leave --force`, then `docker swarm init`")


def test_swarm_initialised_init_ran_on_a_worker():
    lab = FakeLab()
    foreign_swarm_on_worker1(lab)
    result = run_check("swarm_initialised", lab)
    failed(result, "Swarm mode is active on worker1, but not on manager1",
           hint="`docker swarm init` ran on worker1, so worker1 leads a swarm of its own")
    assert "On worker1 run `docker swarm leave --force`" in (result.hint or "")
    assert result.evidence == ("worker1: leads its own swarm",)


def test_swarm_initialised_manager_not_leader_yet_is_pending():
    lab = swarm_lab()
    lab.swarm.set_leader(None)
    result = run_check("swarm_initialised", lab)
    failed(result, "manager1 is a manager but not the leader yet", pending=True)
    assert "manager1: Swarm: active, manager, not the leader" in result.evidence


def test_swarm_initialised_manager1_joined_another_nodes_swarm_as_a_manager():
    """Not pending: worker1 leads, and manager1 will never become leader by waiting."""
    lab = FakeLab()
    foreign_swarm_on_worker1(lab)
    lab.join("manager1", lab["worker1"].engine.swarm, role="manager")  # type: ignore[arg-type]
    result = run_check("swarm_initialised", lab)
    failed(result, "worker1 leads the swarm; manager1 joined it instead of creating it",
           hint="on every node run `docker swarm leave --force`, then `docker swarm init` on manager1")
    assert not result.pending


def test_swarm_initialised_leader_passes():
    lab = swarm_lab(joined=())
    result = run_check("swarm_initialised", lab)
    passed(result, "Swarm mode is active and manager1 is its leader")
    assert result.evidence == ("manager1: Swarm: active, manager, Leader", f"swarm id {lab.swarm.id[:12]}")


# --- nodes:node-ls --------------------------------------------------------------------------------


def test_leader_answer_not_initialised():
    failed(run_check("leader_answer", FakeLab(), "manager1"), "Swarm mode is not active on manager1 yet",
           hint="Run `docker swarm init` on manager1 first")


def test_leader_answer_right():
    lab = swarm_lab()
    result = run_check("leader_answer", lab, "Manager1.")
    passed(result, "Right: Manager1")
    assert result.evidence[0] == "3 node(s) in the swarm"
    assert "manager1: manager, ready, Leader" in result.evidence
    assert "worker1: worker, ready" in result.evidence
    assert answer_of("leader_answer", lab) == "manager1"


def test_leader_answer_wrong():
    lab = swarm_lab()
    result = run_check("leader_answer", lab, "worker1")
    wrong_answer(result, "worker1")
    assert result.hint == hints("leader_answer")[0]


def test_leader_answer_follows_the_leader():
    lab = FakeLab(managers=2)
    swarm = lab.init("manager1")
    lab.join("manager2", swarm, role="manager")
    swarm.set_leader("manager2")
    assert answer_of("leader_answer", lab) == "manager2"
    passed(run_check("leader_answer", lab, "manager2"))
    wrong_answer(run_check("leader_answer", lab, "manager1"), "manager1")


# --- nodes:join -----------------------------------------------------------------------------------


def test_workers_joined_not_initialised():
    failed(run_check("workers_joined", FakeLab()), "Swarm mode is not active on manager1 yet")


def test_workers_joined_one_missing():
    result = run_check("workers_joined", swarm_lab(joined=("worker1",)))
    failed(result, "worker2 has not joined yet.", hint=hints("workers_joined")[0])
    assert "worker1: worker, ready" in result.evidence


def test_workers_joined_both_missing():
    failed(run_check("workers_joined", swarm_lab(joined=())), "worker1 and worker2 have not joined yet.")


def test_workers_joined_as_a_manager():
    lab = swarm_lab(joined=("worker2",))
    lab.join("worker1", lab.swarm, role="manager")
    result = run_check("workers_joined", lab)
    failed(result, "worker1 joined as a manager, not as a worker.", hint="`docker node demote worker1`")
    assert "That was the manager token" in (result.hint or "")


def test_workers_joined_worker_leads_a_swarm_of_its_own():
    lab = swarm_lab(joined=("worker2",))
    foreign_swarm_on_worker1(lab)
    failed(run_check("workers_joined", lab), "worker1 leads a swarm of its own instead of joining this one.",
           hint="`docker swarm init` ran on worker1")


def test_workers_joined_not_ready_is_pending():
    lab = swarm_lab(joined=("worker1",))
    lab.join("worker2", lab.swarm, state="down")
    failed(run_check("workers_joined", lab), "worker2 joined but is not Ready yet.", pending=True)


def test_workers_joined_passes():
    result = run_check("workers_joined", swarm_lab())
    passed(result, "3 nodes are Ready: worker1, worker2 as workers.")
    assert result.evidence == ("manager1: manager, ready", "worker1: worker, ready", "worker2: worker, ready")


# --- first-service:create, scale:replicas ---------------------------------------------------------


def test_ping_service_not_initialised():
    failed(run_check("ping_service", FakeLab(), in_lab="first-service"), "Swarm mode is not active on manager1")


def test_ping_service_none_yet():
    result = run_check("ping_service", swarm_lab(), in_lab="first-service")
    failed(result, "No service runs `alpine ping` yet.")
    assert result.hint == hints("ping_service", "first-service")[0]


def test_ping_service_a_plain_docker_run_container_instead():
    lab = swarm_lab()
    lab.run_container("manager1", ["ping", "manager1"])
    result = run_check("ping_service", lab, in_lab="first-service")
    failed(result, "No service runs alpine ping, but a plain container does.",
           hint="`docker run` starts one container that Swarm does not manage")
    assert result.evidence == ("manager1: a container from `docker run`",)


def test_ping_service_ignores_task_containers_and_other_commands():
    lab, pinger = ping_lab()
    lab.run_container("worker1", ["sleep", "1000"])
    lab.remove_service(pinger, stopping=True)  # its task container is still there, labelled
    failed(run_check("ping_service", lab, in_lab="first-service"), "No service runs `alpine ping` yet.")


def test_ping_service_a_container_without_cmd_does_not_break_it():
    lab = swarm_lab()
    lab.run_container("worker1", None, name="from-entrypoint")
    failed(run_check("ping_service", lab, in_lab="first-service"), "No service runs `alpine ping` yet.")


def test_ping_service_two_ping_services():
    lab, _ = ping_lab()
    lab.service(name="eager_curie", on=("worker1",))
    failed(run_check("ping_service", lab, in_lab="first-service"),
           "There are 2 ping services (pinger, eager_curie); this lab follows one.",
           hint="remove the others with `docker service rm NAME`")


def test_ping_service_other_services_do_not_count():
    lab = swarm_lab()
    lab.service(name="web", args=("nginx", "-g", "daemon off;"), image="nginx:latest")
    lab.service(name="busy", args=("ping", "manager1"), image="busybox:latest")
    failed(run_check("ping_service", lab, in_lab="first-service"), "No service runs `alpine ping` yet.")


def test_ping_service_pings_outside_the_lab():
    lab = swarm_lab()
    lab.service(args=("ping", "8.8.8.8"))
    failed(run_check("ping_service", lab, in_lab="first-service"),
           "Service pinger pings 8.8.8.8, which is not a lab node.",
           hint="This lab has no internet. Remove it (`docker service rm pinger`)")


def test_ping_service_wrong_replica_count():
    lab, _ = ping_lab(replicas=1)
    result = run_check("ping_service", lab, in_lab="scale")
    failed(result, "Service pinger asks for 1 replica(s); this step wants 3.",
           hint="`docker service update pinger --replicas 3` on manager1")
    assert "You asked for" not in (result.hint or "")


def test_ping_service_two_replicas_when_three_are_wanted():
    lab, _ = ping_lab(replicas=2, on=("manager1", "worker1"))
    result = run_check("ping_service", lab, in_lab="scale")
    failed(result, "Service pinger asks for 2 replica(s); this step wants 3.",
           hint="You asked for 2 replicas; this step wants 3. Your service is called pinger")


def test_ping_service_tasks_starting_is_pending():
    lab, pinger = ping_lab(replicas=3, on=("manager1",))
    lab.task(pinger, "worker1", 2, state="preparing")
    lab.task(pinger, "worker2", 3, state="starting")
    result = run_check("ping_service", lab, in_lab="scale")
    failed(result, "1 of 3 tasks of pinger run (preparing, starting).", pending=True,
           hint="`docker service ps` shows their state")
    assert result.evidence == ("service pinger: 1/3 tasks running", "task on manager1")


def test_ping_service_no_task_scheduled_is_pending():
    lab, _ = ping_lab(replicas=1, on=())
    failed(run_check("ping_service", lab, in_lab="first-service"), "0 of 1 tasks of pinger run (none scheduled).",
           pending=True)


def test_ping_service_passes_with_one_replica():
    lab, _ = ping_lab()
    result = run_check("ping_service", lab, in_lab="first-service")
    passed(result, "Service pinger runs 1 task(s).")
    assert result.evidence == ("service pinger: 1/1 tasks running", "task on manager1")


def test_ping_service_passes_with_three_replicas_pinging_an_address():
    lab = swarm_lab()
    lab.service(replicas=3, on=ALL_NODES, args=("ping", lab["manager1"].address))
    result = run_check("ping_service", lab, in_lab="scale")
    passed(result, "Service pinger runs 3 task(s).")
    assert result.evidence[1:] == ("task on manager1", "task on worker1", "task on worker2")


def test_ping_service_counts_only_tasks_meant_to_run():
    lab, pinger = ping_lab(replicas=3, on=ALL_NODES)
    lab.fail(lab.tasks(pinger)[2], at=5)  # worker2's task failed: its old entry must not count
    failed(run_check("ping_service", lab, in_lab="scale"), "2 of 3 tasks of pinger run (none scheduled).",
           pending=True)


# --- first-service:find ---------------------------------------------------------------------------


def test_task_node_answer_right_and_wrong():
    lab, _ = ping_lab(on=("worker2",))
    assert answer_of("task_node_answer", lab) == "worker2"
    result = run_check("task_node_answer", lab, "worker2")
    passed(result, "Right: worker2")
    assert result.evidence == ("pinger has a task on worker2",)
    wrong = run_check("task_node_answer", lab, "manager1")
    wrong_answer(wrong, "manager1")
    assert wrong.hint == hints("task_node_answer")[0]


def test_task_node_answer_no_running_task_is_pending():
    lab, _ = ping_lab(on=("worker1",), state="preparing")
    failed(run_check("task_node_answer", lab, "worker1"), "The service has no running task yet.", pending=True)
    assert answer_of("task_node_answer", lab) == ""


def test_task_node_answer_without_a_service():
    lab = swarm_lab()
    failed(run_check("task_node_answer", lab, "worker1"), "No service runs `alpine ping` yet.")
    assert answer_of("task_node_answer", lab) == ""


# --- self-heal:kill -------------------------------------------------------------------------------


def three_pingers() -> tuple[FakeLab, dict]:
    return ping_lab(replicas=3, on=ALL_NODES)


def test_self_healed_service_removed():
    lab, pinger = three_pingers()
    lab.remove_service(pinger)
    failed(run_check("self_healed", lab), "The service is gone: it was removed, not one of its containers.",
           hint="`docker service rm` removes the whole service")


def test_self_healed_no_failure_yet():
    result = run_check("self_healed", three_pingers()[0])
    failed(result, "No task of pinger has failed yet.",
           hint=hints("self_healed")[1] + " Find the node with `docker service ps` on manager1.")
    assert result.evidence == ("3 tasks running, on manager1, worker1, worker2",)


def test_self_healed_container_gone_but_not_noticed_yet_is_pending():
    lab, pinger = three_pingers()
    lab.remove_container(lab.tasks(pinger)[1])
    failed(run_check("self_healed", lab), "The container of a task on worker1 is gone; the orchestrator is noticing.",
           pending=True)


def test_self_healed_failed_without_replacement_yet_is_pending():
    lab, pinger = three_pingers()
    killed = lab.tasks(pinger)[1]
    lab.fail(killed, at=10)
    result = run_check("self_healed", lab)
    failed(result, "The orchestrator saw the task fail and is starting a replacement.", pending=True,
           hint="Swarm waits 5 s")
    assert result.evidence == (f"task {killed['ID'][:12]} on worker1 failed: task: non-zero exit (137)",)


def test_self_healed_replacement_still_starting_is_pending():
    lab, pinger = three_pingers()
    killed = lab.tasks(pinger)[1]
    lab.fail(killed, at=10)
    lab.task(pinger, "worker1", killed["Slot"], state="starting", at=15)
    failed(run_check("self_healed", lab), "is starting a replacement", pending=True)


def test_self_healed_passes_with_the_seconds_it_took():
    lab, pinger = three_pingers()
    killed = lab.tasks(pinger)[1]
    lab.fail(killed, at=10)
    replacement = lab.replace(killed, at=15.2)
    result = run_check("self_healed", lab)
    passed(result, "Healed: a replacement task was running 5.2 s after the container was removed.")
    assert f"replacement {replacement['ID'][:12]} running on worker1" in result.evidence
    assert result.evidence[-1] == "3/3 tasks running"


def test_self_healed_judges_the_latest_failure():
    lab, pinger = three_pingers()
    first, _, third = lab.tasks(pinger)
    lab.fail(third, at=10)  # the engine lists tasks in no time order: the later failure comes first here
    lab.replace(third, at=15)
    lab.fail(first, at=30)
    failed(run_check("self_healed", lab), "is starting a replacement", pending=True)
    lab.replace(first, at=36.5, node="worker1")
    passed(run_check("self_healed", lab), "running 6.5 s after")


def test_self_healed_replacement_is_in_the_failed_tasks_slot():
    lab, pinger = three_pingers()
    pinger["Spec"]["Mode"]["Replicated"]["Replicas"] = 4  # scaled up meanwhile: a new task in slot 4
    killed = lab.tasks(pinger)[1]
    lab.fail(killed, at=10)
    lab.task(pinger, "worker1", 4, at=12)
    failed(run_check("self_healed", lab), "is starting a replacement", pending=True)


def test_self_healed_waits_for_every_replica():
    lab, pinger = ping_lab(replicas=3, on=("manager1", "worker1"))
    lab.task(pinger, "worker2", 3, state="starting")
    killed = lab.tasks(pinger)[1]
    lab.fail(killed, at=10)
    lab.replace(killed, at=15)
    failed(run_check("self_healed", lab), "is starting a replacement", pending=True)


# --- cleanup:rm -----------------------------------------------------------------------------------


def test_service_removed_not_initialised():
    failed(run_check("service_removed", FakeLab()), "Swarm mode is not active on manager1 yet")


def test_service_removed_still_there():
    lab, _ = three_pingers()
    failed(run_check("service_removed", lab), "Service pinger is still there.",
           hint="On manager1: `docker service rm pinger`.")


def test_service_removed_containers_stopping_is_pending():
    lab, pinger = three_pingers()
    lab.remove_service(pinger, stopping=True)
    result = run_check("service_removed", lab)
    failed(result, "The service is gone; its containers are still stopping.", pending=True)
    assert len(result.evidence) == 3 and result.evidence[0].startswith("manager1: pinger.1.")


def test_service_removed_sees_stopped_task_containers_too():
    lab, pinger = three_pingers()
    lab.remove_service(pinger, stopping=True)
    for container in lab["worker1"].engine.containers:
        container.status = "exited"
    assert len(run_check("service_removed", lab).evidence) == 3


def test_service_removed_passes():
    lab, pinger = three_pingers()
    lab.run_container("worker1", ["ping", "manager1"])  # not a task: the step does not care
    lab.remove_service(pinger)
    result = run_check("service_removed", lab)
    passed(result, "No service is left, and no task container remains on any node.")
    assert result.evidence == ("docker service ls: empty", "checked 3 nodes")


# --- swarm-init: root-ca, node-cert, join-tokens, raft ---------------------------------------------


def test_root_ca_right_and_wrong():
    lab = swarm_lab(joined=())
    assert answer_of("root_ca", lab) == "swarm-ca"
    result = run_check("root_ca", lab, "swarm-ca")
    passed(result, "Right: swarm-ca")
    assert result.evidence == (f"{CA_CERT} exists and equals what `docker swarm ca` prints", "subject CN=swarm-ca")
    wrong = run_check("root_ca", lab, "swarm-root-ca")
    wrong_answer(wrong, "swarm-root-ca")
    assert wrong.hint == hints("root_ca")[0]


def test_root_ca_missing_on_disk():
    lab = swarm_lab(joined=())
    del lab["manager1"].files[CA_CERT]
    failed(run_check("root_ca", lab, "swarm-ca"), f"{CA_CERT} is missing on manager1.",
           hint="Was the swarm created here?")


def test_root_ca_differs_from_docker_swarm_ca():
    lab = swarm_lab(joined=())
    lab["manager1"].outputs["docker swarm ca"] = "-----BEGIN CERTIFICATE-----\nrotated\n-----END CERTIFICATE-----\n"
    failed(run_check("root_ca", lab, "swarm-ca"), "`docker swarm ca` prints another certificate than the one on disk.",
           hint="The root CA was rotated")


def test_node_certificate_right_and_wrong():
    lab = swarm_lab(joined=())
    node_id = lab["manager1"].engine.node_id
    assert answer_of("node_certificate", lab) == "swarm-manager"
    result = run_check("node_certificate", lab, "swarm-manager")
    passed(result, "Right: swarm-manager")
    assert result.evidence == ("issuer CN=swarm-ca (the root CA), verified: OK",
                               f"subject OU=swarm-manager, CN={node_id} (manager1's node id: {node_id})")
    wrong = run_check("node_certificate", lab, "swarm-worker")
    wrong_answer(wrong, "swarm-worker")
    assert wrong.hint == hints("node_certificate")[0]


def test_node_certificate_not_signed_by_the_root_ca():
    lab = swarm_lab(joined=())
    verify = (f"CN = abc\nerror 20 at 0 depth lookup: unable to get local issuer certificate\n"
              f"error {NODE_CERT}: verification failed\n")
    lab["manager1"].outputs[f"openssl verify -CAfile {CA_CERT} {NODE_CERT}"] = verify
    result = run_check("node_certificate", lab, "swarm-manager")
    failed(result, "manager1's node certificate is not signed by the swarm's root CA.",
           hint="Run the openssl verify command.")
    assert result.evidence == (verify.strip(),)


def test_node_certificate_of_another_node():
    lab = swarm_lab(joined=())
    lab["manager1"].outputs[f"openssl x509 -in {NODE_CERT} -noout -subject"] = \
        f"subject=CN=someothernodeid,OU=swarm-manager,O={lab.swarm.id}\n"
    failed(run_check("node_certificate", lab, "swarm-manager"), "The node certificate names another node id.",
           hint="Re-run init.")


def test_join_tokens_right_and_wrong():
    lab = swarm_lab(joined=())
    assert answer_of("join_tokens", lab) == "SWMTKN-1"
    result = run_check("join_tokens", lab, "SWMTKN-1-")
    passed(result, "Right: SWMTKN-1-")
    digest = ca_digest(lab.swarm.ca_pem)
    assert result.evidence == (f"worker token: SWMTKN-1-{digest[:8]}…-<secret>, carries the CA digest",
                               f"manager token: SWMTKN-1-{digest[:8]}…-<secret>, carries the CA digest")
    passed(run_check("join_tokens", lab, "swmtkn-1"))
    wrong = run_check("join_tokens", lab, "SWMTKN")
    wrong_answer(wrong, "SWMTKN")
    assert wrong.hint == hints("join_tokens")[0]


def test_join_tokens_carry_a_digest_with_leading_zeros():
    pem = next(p for p in (fake_pem(str(i)) for i in range(10_000)) if ca_digest(p).startswith("0"))
    lab = swarm_lab(joined=(), ca_pem=pem)
    assert lab.swarm.tokens["Worker"].startswith("SWMTKN-1-0")
    passed(run_check("join_tokens", lab, "SWMTKN-1"))


@pytest.mark.parametrize(("role", "token"), [("Worker", "SWMTKN-1-short-secret"), ("Manager", "")])
def test_join_tokens_missing_or_malformed(role, token):
    lab = swarm_lab(joined=())
    lab.swarm.tokens[role] = token
    failed(run_check("join_tokens", lab, "SWMTKN-1"), f"The {role.lower()} join token is missing or malformed.",
           hint="Re-run init.")


def test_join_tokens_without_the_root_ca_digest():
    lab = swarm_lab(joined=())
    lab.swarm.tokens["Manager"] = f"SWMTKN-1-{ca_digest('another CA')}-{lab.new_id()}"
    failed(run_check("join_tokens", lab, "SWMTKN-1"), "The manager token does not carry the root CA's digest.",
           hint="print the tokens again")


def test_join_tokens_the_same_for_both_roles():
    lab = swarm_lab(joined=())
    lab.swarm.tokens["Manager"] = lab.swarm.tokens["Worker"]
    failed(run_check("join_tokens", lab, "SWMTKN-1"), "Worker and manager tokens are the same.", hint="Rotate them.")


def test_raft_encrypted_right_and_wrong():
    lab = swarm_lab(joined=())
    assert answer_of("raft_encrypted", lab) == "yes"
    result = run_check("raft_encrypted", lab, "Yes")
    passed(result, "Right: Yes")
    assert result.evidence == (f"{RAFT_DIR}: wal-v3-encrypted/ and snap-v3-encrypted/",
                               "the join tokens stored in Raft are not found in clear text")
    wrong = run_check("raft_encrypted", lab, "no")
    wrong_answer(wrong, "no")
    assert wrong.hint == hints("raft_encrypted")[0]


def test_raft_encrypted_not_encrypted_dirs():
    lab = swarm_lab(joined=())
    lab["manager1"].outputs[f"ls {RAFT_DIR}"] = "snap\nwal\n"
    result = run_check("raft_encrypted", lab, "yes")
    failed(result, f"No encrypted Raft data under {RAFT_DIR}.", hint="Is this node a manager?")
    assert result.evidence == ("found: snap wal",)


def test_raft_encrypted_tokens_in_clear_text():
    lab = swarm_lab(joined=())
    lab["manager1"].outputs[f"grep -rl SWMTKN {RAFT_DIR}"] = f"{RAFT_DIR}/wal-v3-encrypted/0-0.wal\n"
    result = run_check("raft_encrypted", lab, "yes")
    failed(result, "The Raft data holds join tokens in clear text.", hint="This engine does not encrypt Raft data.")
    assert f"found in clear text in {RAFT_DIR}/wal-v3-encrypted/0-0.wal" in result.evidence


# --- every check that needs a swarm ---------------------------------------------------------------

NEEDS_A_SWARM = [("leader_answer", None), ("workers_joined", None), ("ping_service", "first-service"),
                 ("ping_service", "scale"), ("task_node_answer", None), ("self_healed", None),
                 ("service_removed", None), ("root_ca", None), ("node_certificate", None), ("join_tokens", None),
                 ("raft_encrypted", None)]


@pytest.mark.parametrize(("name", "in_lab"), NEEDS_A_SWARM)
def test_not_initialised(name, in_lab):
    result = CHECKS[name](Context(FakeLab().cluster, step_for(name, in_lab), "an answer"))
    failed(result, "Swarm mode is not active on manager1 yet.",
           hint="Run `docker swarm init` on manager1 first (lab swarm-init, step init).")
    assert result.evidence == ("manager1: Swarm: inactive",)


@pytest.mark.parametrize("name", ["leader_answer", "workers_joined", "ping_service", "task_node_answer",
                                  "self_healed", "service_removed"])
def test_manager1_in_a_swarm_as_a_worker(name):
    lab = FakeLab()
    foreign_swarm_on_worker1(lab)
    lab.join("manager1", lab["worker1"].engine.swarm)  # type: ignore[arg-type]
    result = CHECKS[name](Context(lab.cluster, step_for(name, "first-service" if name == "ping_service" else None)))
    assert not result.passed and not result.pending
    assert "worker" in result.summary


def test_the_fake_engines_tell_labkit_their_swarm_state():
    """The fake answers the way labkit's own reading of an engine (labkit status) expects."""
    assert [s.swarm for s in FakeLab().cluster.status()] == ["inactive"] * 3
    lab = swarm_lab(joined=("worker2",))
    lab.init("worker1")
    assert [s.swarm for s in lab.cluster.status()] == ["leader", "leader", "worker"]
    lab.swarm.set_leader(None)
    assert lab.cluster.status()[0].swarm == "manager"


def test_every_check_and_answer_is_driven_here():
    """Each registered check runs in a test above through `run_check("name", ...)`, each answer through
    `answer_of("name", ...)` (read from this file, so it holds whatever tests are selected)."""
    calls = [n for n in ast.walk(ast.parse(Path(__file__).read_text())) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Name) and n.args and isinstance(n.args[0], ast.Constant)]
    driven = {c.args[0].value for c in calls if c.func.id == "run_check"}  # type: ignore[attr-defined]
    answered = {c.args[0].value for c in calls if c.func.id == "answer_of"}  # type: ignore[attr-defined]
    assert set(CHECKS) - driven == set()
    assert set(ANSWERS) - answered == set()
    assert {s.check for s in steps()} <= set(CHECKS)
