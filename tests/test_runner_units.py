"""The runner's own logic on a fake lab (tests/fakes.py): what it does when an engine drops a request of a
solution unanswered. No Docker: the engine's answers are canned."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from labkit.backends.base import RunResult
from labkit.errors import SolutionFailed
from labkit.labs import find
from labkit.runner import apply_solution, course, dropped
from tests.fakes import FakeLab, swarm_lab

RM = "docker service rm pinger agent"
EOF_ERROR = ('error during connect: Delete "http://%2Fvar%2Frun%2Fdocker.sock/v1.41/services/agent": EOF\n')


@pytest.fixture(autouse=True)
def own_progress(tmp_path, monkeypatch) -> None:
    """The runner records the learner's progress: here in a folder of the test's own."""
    monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path))


def placement_clean() -> object:
    _, step = find("placement:clean", course())
    assert step is not None
    return step


def scene(answers: list[Callable[[FakeLab], RunResult]]) -> tuple[FakeLab, list[str]]:
    """pinger and agent run; manager1 answers `docker service rm pinger agent` with ANSWERS in turn."""
    lab = swarm_lab()
    lab.service("pinger", replicas=1, on=["worker1"])
    lab.service("agent", mode="global", on=["manager1", "worker1", "worker2"])
    asked: list[str] = []
    manager = lab["manager1"]
    shell = manager.run

    def run(cmd: str | list[str], timeout: float = 60) -> RunResult:
        if cmd == RM:
            asked.append(cmd)
            return answers[len(asked) - 1](lab)
        return shell(cmd, timeout)

    manager.run = run  # type: ignore[method-assign]
    return lab, asked


def remove(*names: str, error: str = "") -> Callable[[FakeLab], RunResult]:
    def answer(lab: FakeLab) -> RunResult:
        for service in [s for s in lab.swarm.services if s["Spec"]["Name"] in names]:
            lab.remove_service(service)
        return RunResult(1 if error else 0, "" if error else "\n".join(names) + "\n", error)
    return answer


def test_a_dropped_connection_is_told_apart_from_a_refusal() -> None:
    assert dropped(RunResult(1, "", EOF_ERROR))
    assert not dropped(RunResult(1, "", "Error response from daemon: service agent not found\n"))
    assert not dropped(RunResult(1, "", "error during connect: Get ...: dial unix /var/run/docker.sock: "
                                        "connect: no such file or directory\n"))


def test_a_request_the_engine_dropped_unanswered_is_asked_again() -> None:
    lab, asked = scene([remove("pinger", error=EOF_ERROR), remove("pinger", "agent")])
    said: list[str] = []
    result = apply_solution(lab.cluster, placement_clean(), said.append)
    assert result.passed, result.summary
    assert len(asked) == 2 and any("dropped" in line for line in said)


def test_a_request_carried_out_before_its_connection_dropped_is_not_asked_again() -> None:
    lab, asked = scene([remove("pinger", "agent", error=EOF_ERROR)])  # a second `rm` would fail: not found
    assert apply_solution(lab.cluster, placement_clean(), lambda _: None).passed
    assert len(asked) == 1


def test_a_refusal_is_not_asked_again_and_says_how_to_start_the_step_over() -> None:
    lab, asked = scene([remove(error="Error response from daemon: rpc error: code = Unknown\n")])
    with pytest.raises(SolutionFailed, match=r"placement:clean failed on manager1.*labkit reset placement:clean"):
        apply_solution(lab.cluster, placement_clean(), lambda _: None)
    assert len(asked) == 1


def test_a_questions_answer_and_its_check_share_one_look_at_the_cluster() -> None:
    """`labkit solve` (and every replay) answers a question with the truth, then checks it: the requests a
    check sends from a container (here client's to web, one exec a round) go once per look, not twice."""
    from tests.test_checks_networks_offline import discovery_lab

    lab, _, client = discovery_lab()
    _, step = find("networks:discovery", course())
    assert step is not None and step.question and step.solution
    result = apply_solution(lab.cluster, step, lambda message: None)
    assert result.passed, result
    assert len(client.exec_log) == 2  # a look before the solution (it passes: none runs), then the answer's
