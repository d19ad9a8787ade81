"""The checks of lab rolling-update (labkit/checks/updates.py) through each of their outcomes, on the fake
cluster of tests/fakes.py, with the steps, hints and explanations of labs/07-rolling-update.toml. The scenes
follow the lab: web (nginx:1.24, dnsrr, on the overlay network front), the probe logging every request,
a stop-first update to nginx:1.25, a start-first update back to nginx:1.24, and a rollback.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import docker.errors
import pytest

from labkit.checks import CHECKS, Context
from labkit.checks.updates import Probe, parse_probe
from tests.fakes import T0, FakeAPI, FakeLab, Json, swarm_lab
from tests.test_checks_offline import (  # noqa: F401 (no_real_engine: autouse, so no real engine here either)
    answer_of,
    explain,
    failed,
    foreign_swarm_on_worker1,
    hints,
    no_real_engine,
    passed,
    run_check,
    step_for,
    wrong_answer,
)

UPDATE_CHECKS = ["web_service", "probe_running", "stop_first_update", "start_first_update", "rolled_back",
                 "blue_green"]
ALL_NODES = ("manager1", "worker1", "worker2")
PROBE_ARGS = ("sh", "-c", "while true; do wget -q -T 1 -O- http://web/whoami || echo FAIL; sleep 0.2; done")
REFUSED = "wget: can't connect to remote host (10.0.1.3): Connection refused"


# --- scenes, in the lab's order -------------------------------------------------------------------


def web_lab(image: str = "nginx:1.24", endpoint_mode: str | None = "dnsrr", networks: tuple[str, ...] = ("front",),
            on: tuple[str, ...] = ALL_NODES, replicas: int = 3) -> tuple[FakeLab, Json]:
    """web: the overlay network front made at 5 s, web created at 10 s on NETWORKS, its tasks running on ON."""
    lab = swarm_lab()
    lab.network("front", at=5)
    return lab, lab.service("web", replicas=replicas, on=on, image=image, args=(), networks=networks,
                            endpoint_mode=endpoint_mode, at=10)


def whoami(lab: FakeLab, service: Json, version: str) -> Callable[[float], str | None]:
    """What web's /whoami answers at any time: one of SERVICE's containers (12 hex digits) and VERSION."""
    containers = [t["Status"]["ContainerStatus"]["ContainerID"][:12] for t in lab.tasks(service)
                  if t["Status"]["ContainerStatus"].get("ContainerID")]

    def answer(at: float) -> str | None:
        return f"{containers[round(at * 5) % len(containers)]} nginx/{version}"

    return answer


def requests(lab: FakeLab, probe: Json, start: float, end: float, answer: Callable[[float], str | None]) -> None:
    """The probe asks every 0.2 s from START until before END; ANSWER(at) is what it got (None: no answer,
    which wget reports on stderr before the probe prints FAIL)."""
    lines: list[tuple[float, str]] = []
    for i in range(round((end - start) * 5)):
        at = round(start + i * 0.2, 1)
        got = answer(at)
        lines += [(at, got)] if got else [(at, REFUSED), (at + 0.001, "FAIL")]
    lab.log(probe, lines)


def probed_lab(version: str = "1.24") -> tuple[FakeLab, Json, Json]:
    """probe done: the probe (on manager1, created at 20 s) has been answered by web since 21 s until 40 s."""
    lab, web = web_lab()
    probe = lab.service("probe", on=("manager1",), image="alpine:latest", args=PROBE_ARGS, networks=("front",), at=20)
    requests(lab, probe, 21, 40, whoami(lab, web, version))
    return lab, web, probe


def never(at: float) -> None:
    return None


def stop_first_lab(failures: bool = True) -> tuple[FakeLab, Json, Json]:
    """stop-first done: web updated to nginx:1.25 (parallelism 3, stop-first) from 40 s to 44 s; with FAILURES,
    no task answered from 40 s to 42 s (10 requests failed); the probe carries on until 60 s. Requests that
    failed before the update (30 s, 39.4 s) or after it (47 s) were not the update's."""
    lab, web, probe = probed_lab()
    requests(lab, probe, 30, 30.2, never)
    requests(lab, probe, 39.4, 39.6, never)
    lab.update_image(web, "nginx:1.25", started=40, completed=44, parallelism=3, on=ALL_NODES)
    new = whoami(lab, web, "1.25")
    requests(lab, probe, 40, 60, lambda at: None if (failures and at < 42) or 47 <= at < 47.2 else new(at))
    return lab, web, probe


def start_first_lab(failures: int = 0) -> tuple[FakeLab, Json, Json]:
    """start-first done: web updated back to nginx:1.24 with start-first from 70 s to 80 s; FAILURES requests
    failed meanwhile (from 75 s)."""
    lab, web, probe = stop_first_lab()
    old = whoami(lab, web, "1.25")
    lab.update_image(web, "nginx:1.24", started=70, completed=80, order="start-first", on=ALL_NODES)
    new = whoami(lab, web, "1.24")
    requests(lab, probe, 60, 70, old)
    requests(lab, probe, 70, 90,
             lambda at: None if 75 <= at < 75 + failures * 0.2 else (old(at) if at < 76 else new(at)))
    return lab, web, probe


def rolled_back_lab() -> tuple[FakeLab, Json]:
    """rollback done: `docker service rollback web` from 100 s to 110 s: back to nginx:1.25."""
    lab, web, _ = start_first_lab()
    lab.rollback(web, started=100, completed=110, on=ALL_NODES)
    return lab, web


def ago(seconds: float) -> float:
    """The scene time (seconds after T0) that was SECONDS before now: blue_green reads the probe's last 3 s."""
    return (datetime.now(UTC) - T0).total_seconds() - seconds


def probe_of(lab: FakeLab) -> Json:
    return next(s for s in lab.swarm.services if s["Spec"]["Name"] == "probe")


def green_lab(aliases: dict[str, tuple[str, ...]] | None = None, networks: tuple[str, ...] = ("front",)
              ) -> tuple[FakeLab, Json, Json]:
    """blue-green, green created: after the rollback (web, blue, runs nginx:1.25), green (nginx:1.24, dnsrr,
    0 replicas) created at 120 s on NETWORKS with ALIASES (by default the alias web on front)."""
    lab, web = rolled_back_lab()
    green = lab.service("green", replicas=0, on=(), image="nginx:1.24", args=(), networks=networks,
                        endpoint_mode="dnsrr", aliases={"front": ("web",)} if aliases is None else aliases, at=120)
    return lab, web, green


def switched_lab(web_left: int = 0, green_on: tuple[str, ...] = ALL_NODES) -> tuple[FakeLab, Json, Json]:
    """blue-green done: `docker service scale green=3 web=0` at 130 s; WEB_LEFT of web's tasks not stopped
    yet, green's tasks running on GREEN_ON. The probe's lines near now are each test's own (``answered``)."""
    lab, web, green = green_lab()
    lab.scale(green, 3, at=130)
    lab.scale(web, 0, at=130)
    for task in [t for t in lab.tasks(web) if t["DesiredState"] == "running"][web_left:]:
        lab.shutdown(task, at=131)
    for slot, node in enumerate(green_on, 1):
        lab.task(green, node, slot, at=132)
    return lab, web, green


def answered(lab: FakeLab, start: float, end: float, answer: Callable[[float], str | None]) -> None:
    """The probe's requests from START to END seconds ago (START > END), answered by ANSWER(at)."""
    requests(lab, probe_of(lab), round(ago(start), 1), round(ago(end), 1), answer)


# --- every check: a swarm, and web -----------------------------------------------------------------


@pytest.mark.parametrize("name", UPDATE_CHECKS)
def test_no_web_service(name):
    lab = swarm_lab()
    lab.network("front")
    lab.service("probe", image="alpine:latest", args=PROBE_ARGS, networks=("front",))
    result = CHECKS[name](Context(lab.cluster, step_for(name), "1"))
    failed(result, "There is no service called web yet.")
    assert result.hint == hints(name)[0]


# --- rolling-update:web --------------------------------------------------------------------------


def test_web_service_passes():
    lab, _ = web_lab()
    result = run_check("web_service", lab)
    passed(result, "web runs 3 tasks of nginx:1.24 on the overlay network front.")
    assert result.evidence == ("web: nginx:1.24, endpoint mode dnsrr, network front", "3/3 tasks running")


def test_web_service_no_network_front():
    lab = swarm_lab()
    lab.service("web", replicas=3, on=ALL_NODES, image="nginx:1.24", args=(), endpoint_mode="dnsrr")
    failed(run_check("web_service", lab), "There is no overlay network called front.",
           hint="`docker network create --driver overlay front` on manager1.")


def test_web_service_front_is_not_an_overlay_network():
    lab = swarm_lab()
    lab.network("front", driver="bridge")
    lab.service("web", replicas=3, on=ALL_NODES, image="nginx:1.24", args=(), endpoint_mode="dnsrr")
    failed(run_check("web_service", lab), "There is no overlay network called front.")


def test_web_service_a_network_whose_name_only_contains_front_is_not_front():
    """The engine's name filter matches any part of a name: frontend is listed for `names=["front"]`."""
    lab = swarm_lab()
    lab.network("frontend")
    lab.service("web", replicas=3, on=ALL_NODES, image="nginx:1.24", args=(), networks=("frontend",),
                endpoint_mode="dnsrr")
    assert [n["Name"] for n in lab["manager1"].docker.api.networks(names=["front"])] == ["frontend"]
    failed(run_check("web_service", lab), "There is no overlay network called front.")


def test_web_service_not_on_front():
    lab, _ = web_lab(networks=())
    failed(run_check("web_service", lab), "web is not attached to the network front.",
           hint="Remove web and create it again with `--network front`.")


def test_web_service_another_image():
    lab, _ = web_lab(image="nginx:1.25")
    result = run_check("web_service", lab)
    failed(result, "web runs nginx:1.25; this lab starts from nginx:1.24.",
           hint="`docker service update --image nginx:1.24 web`.")
    assert result.evidence[0] == "web: nginx:1.25, endpoint mode dnsrr, network front"


@pytest.mark.parametrize("endpoint_mode", [None, "vip"])
def test_web_service_virtual_ip(endpoint_mode):
    lab, _ = web_lab(endpoint_mode=endpoint_mode)
    result = run_check("web_service", lab)
    failed(result, "web uses a virtual IP; this lab uses DNS round robin (`--endpoint-mode dnsrr`).",
           hint="Remove web and create it again with `--endpoint-mode dnsrr`.")
    assert "endpoint mode vip" in result.evidence[0]


def test_web_service_tasks_starting_is_pending():
    lab, web = web_lab(on=("manager1", "worker1"))
    lab.task(web, "worker2", 3, state="preparing")
    result = run_check("web_service", lab)
    failed(result, "web's tasks are starting.", pending=True, hint="Wait a moment.")
    assert result.evidence[1] == "2/3 tasks running"


def test_web_service_too_few_replicas_is_told_not_pending():
    lab, _ = web_lab(on=("manager1",), replicas=1)
    result = run_check("web_service", lab)
    assert not result.pending and "3" in result.summary, result


# --- rolling-update:probe --------------------------------------------------------------------------


def test_probe_running_passes():
    lab, _, _ = probed_lab()
    result = run_check("probe_running", lab)
    passed(result, "The probe is requesting web, and web answers.")
    assert result.evidence == ("10 requests: 0 failed; answered 10 by nginx/1.24",)


def test_probe_running_some_failures_among_the_last_requests_still_pass():
    lab, _, probe = probed_lab()
    requests(lab, probe, 40, 41, never)
    passed(run_check("probe_running", lab))


def test_probe_running_no_probe():
    lab, _ = web_lab()
    result = run_check("probe_running", lab)
    failed(result, "There is no service called probe yet.")
    assert result.hint == hints("probe_running")[0]


def test_probe_running_nothing_logged_yet_is_pending():
    lab, _ = web_lab()
    lab.service("probe", on=("manager1",), image="alpine:latest", args=PROBE_ARGS, networks=("front",), at=20)
    failed(run_check("probe_running", lab), "The probe has not logged a request yet.", pending=True,
           hint="`docker service logs probe`")


def test_probe_running_only_junk_logged_is_pending():
    lab, _ = web_lab()
    probe = lab.service("probe", on=("manager1",), image="alpine:latest", args=PROBE_ARGS, at=20)
    lab.log(probe, [(21, "wget: bad address 'web'")])
    failed(run_check("probe_running", lab), "The probe has not logged a request yet.", pending=True)


def test_probe_running_every_request_fails_is_pending():
    """A probe off the network front cannot resolve web: every request fails."""
    lab, _ = web_lab()
    probe = lab.service("probe", on=("manager1",), image="alpine:latest", args=PROBE_ARGS, at=20)
    requests(lab, probe, 21, 25, never)
    result = run_check("probe_running", lab)
    failed(result, "The probe's requests fail.", pending=True, hint="Is the probe on the network front?")
    assert result.evidence == ("10 requests: 10 failed; answered none answered",)


def test_probe_running_logs_unavailable_count_as_nothing_logged(monkeypatch):
    lab, _, _ = probed_lab()

    def unavailable(*args: object, **kwargs: object) -> None:
        raise docker.errors.APIError("500 Server Error: rpc error: code = Unavailable")

    monkeypatch.setattr(FakeAPI, "service_logs", unavailable)
    failed(run_check("probe_running", lab), "The probe has not logged a request yet.", pending=True)


# --- parse_probe, Probe -----------------------------------------------------------------------------


def test_parse_probe_reads_raw_and_prefixed_lines_and_skips_junk():
    probe = parse_probe([
        "2026-11-25T13:45:01.123456789Z a1b2c3d4e5f6 nginx/1.25",
        "2026-11-25T13:45:01.323456789Z wget: can't connect to remote host (10.0.1.3): Connection refused",
        "2026-11-25T13:45:01.323556789Z FAIL",
        "2026-11-25T13:45:01.5Z probe.1.x7kq2m9p0abc@manager1    | 0f9e8d7c6b5a nginx/1.24",
        "2026-11-25T13:45:01.7Z probe.1.x7kq2m9p0abc@manager1    | FAIL",
        "2026-11-25T13:45:02Z 0f9e8d7c6b5a nginx/1.24.0",
        "a1b2c3d4e5f6 nginx/1.25",
        "not a timestamp FAIL",
        "",
        "2026-11-25T13:45:03.1Z <html><body>502 Bad Gateway</body></html>",
    ])
    t = datetime(2026, 11, 25, 13, 45, 1, tzinfo=UTC)
    assert probe.answers == (
        (t + timedelta(microseconds=123456), "1.25"),
        (t + timedelta(microseconds=323556), None),
        (t + timedelta(microseconds=500000), "1.24"),
        (t + timedelta(microseconds=700000), None),
        (t + timedelta(seconds=1), "1.24"),
    )
    assert probe.failed == 2
    assert probe.by_version() == {"1.24": 2, "1.25": 1}
    assert probe.describe() == "5 requests: 2 failed; answered 2 by nginx/1.24, 1 by nginx/1.25"


def test_probe_between_keeps_both_ends_and_describes_nothing():
    t = datetime(2026, 11, 25, 13, 45, tzinfo=UTC)
    probe = Probe(tuple((t + timedelta(seconds=s), v) for s, v in ((0, "1.24"), (1, None), (2, "1.25"), (3, None))))
    assert probe.between(t + timedelta(seconds=1), t + timedelta(seconds=2)).answers == probe.answers[1:3]
    assert probe.between(t + timedelta(seconds=4), t + timedelta(seconds=5)).describe() == \
        "0 requests: 0 failed; answered none answered"
    assert Probe(((t, None),)).by_version() == {}


def test_the_fake_service_logs_are_chunks_with_timestamps_and_since():
    lab, _, probe = probed_lab()
    api = lab["manager1"].docker.api
    chunks = list(api.service_logs(probe["ID"], stdout=True, stderr=True, timestamps=True))
    assert len(chunks) > 1 and all(isinstance(c, bytes) for c in chunks)
    lines = b"".join(chunks).decode().splitlines()
    assert lines[0].startswith("2024-05-01T12:00:21.000000123Z ") and lines[0].endswith(" nginx/1.24")
    since = int((T0 + timedelta(seconds=39)).timestamp())
    assert len(b"".join(api.service_logs(probe["ID"], stdout=True, stderr=True, since=since)).splitlines()) == 5


# --- rolling-update:stop-first ---------------------------------------------------------------------


def test_stop_first_update_counts_the_failures_inside_the_update_window():
    lab, _, _ = stop_first_lab()
    assert answer_of("stop_first_update", lab) == "10"
    for answer in ("some", "Yes, some.", "a few", "10", "10 requests"):
        passed(run_check("stop_first_update", lab, answer), "Right:")
    result = run_check("stop_first_update", lab, "some")
    assert result.evidence == (
        "web: nginx:1.25, update order stop-first, parallelism 3",
        "update: completed; running: nginx:1.25, nginx:1.25, nginx:1.25",
        "while it rolled: 31 requests: 10 failed; answered 21 by nginx/1.25")


def test_stop_first_update_a_failure_just_after_completion_counts():
    """The window ends 2 s after CompletedAt: a request that failed 1.8 s after it is the update's."""
    lab, _, probe = stop_first_lab()
    lab.swarm.logs[probe["ID"]] = [(at, line) for at, line in lab.swarm.logs[probe["ID"]]
                                   if not 45.6 < at < 46]
    requests(lab, probe, 45.8, 46, never)
    assert answer_of("stop_first_update", lab) == "11"


def test_stop_first_update_none_is_explained():
    lab, _, _ = stop_first_lab()
    result = run_check("stop_first_update", lab, "none")
    wrong_answer(result, "none", explain("stop_first_update", "none"))
    assert result.hint == hints("stop_first_update")[0]


def test_stop_first_update_zero_gets_the_count_the_probe_saw():
    lab, _, _ = stop_first_lab()
    wrong_answer(run_check("stop_first_update", lab, "0"), "0", "The probe saw 10 failed requests: with the old "
                 "tasks stopped before the new ones answered, for a moment no task served web.")
    wrong_answer(run_check("stop_first_update", lab, "3"), "3")
    failed(run_check("stop_first_update", lab, None), "Predict, run the command(s), then answer: How many of the")


def test_stop_first_update_without_failures_none_is_right():
    lab, _, _ = stop_first_lab(failures=False)
    assert answer_of("stop_first_update", lab) == "0"
    passed(run_check("stop_first_update", lab, "none"), "Right: none.")
    passed(run_check("stop_first_update", lab, "0"))
    wrong_answer(run_check("stop_first_update", lab, "some"), "some")


def test_stop_first_update_not_updated_yet():
    lab, _, _ = probed_lab()
    result = run_check("stop_first_update", lab, "some")
    failed(result, "web runs nginx:1.24, not nginx:1.25 yet.", hint=hints("stop_first_update")[0])
    assert result.evidence[1] == "update: none yet; running: nginx:1.24, nginx:1.24, nginx:1.24"
    assert answer_of("stop_first_update", lab) == ""


def test_stop_first_update_with_start_first():
    lab, web, _ = probed_lab()
    lab.update_image(web, "nginx:1.25", started=40, completed=44, order="start-first", on=ALL_NODES)
    failed(run_check("stop_first_update", lab, "some"), "web was updated with order start-first; this step uses "
           "stop-first.", hint=hints("stop_first_update")[0])


def test_stop_first_update_rolling_is_pending():
    lab, web, _ = probed_lab()
    lab.update_image(web, "nginx:1.25", started=40, parallelism=3)
    result = run_check("stop_first_update", lab, "some")
    failed(result, "The update is rolling.", pending=True, hint="Watch the map.")
    assert result.evidence[1] == "update: updating; running: nginx:1.24, nginx:1.24, nginx:1.24"


def test_stop_first_update_completed_but_a_task_still_starting_is_pending():
    lab, web, _ = probed_lab()
    lab.update_image(web, "nginx:1.25", started=40, completed=44, parallelism=3, on=("manager1", "worker1"))
    lab.task(web, "worker2", 3, state="starting", at=44)
    failed(run_check("stop_first_update", lab, "some"), "The update is rolling.", pending=True)


def test_stop_first_update_without_a_probe():
    lab, web = web_lab()
    lab.update_image(web, "nginx:1.25", started=40, completed=44, parallelism=3, on=ALL_NODES)
    failed(run_check("stop_first_update", lab, "some"), "There is no probe to measure the update.",
           hint="Create the probe first (previous step).")
    assert answer_of("stop_first_update", lab) == ""


# --- rolling-update:start-first --------------------------------------------------------------------


def test_start_first_update_nothing_fails():
    lab, _, _ = start_first_lab()
    assert answer_of("start_first_update", lab) == "0"
    for answer in ("none", "0", "No.", "0 requests"):
        passed(run_check("start_first_update", lab, answer), "Right:")
    result = run_check("start_first_update", lab, "0")
    assert result.evidence[0] == "web: nginx:1.24, update order start-first, parallelism 1"
    assert result.evidence[2] == "while it rolled: 61 requests: 0 failed; answered 31 by nginx/1.24, 30 by nginx/1.25"


def test_start_first_update_some_is_explained():
    lab, _, _ = start_first_lab()
    result = run_check("start_first_update", lab, "some")
    wrong_answer(result, "some", explain("start_first_update", "some"))
    assert result.hint == hints("start_first_update")[0]
    wrong_answer(run_check("start_first_update", lab, "10"), "10")


def test_start_first_update_a_few_failures_say_some():
    lab, _, _ = start_first_lab(failures=2)
    assert answer_of("start_first_update", lab) == "2"
    passed(run_check("start_first_update", lab, "some"))
    passed(run_check("start_first_update", lab, "2"))
    wrong_answer(run_check("start_first_update", lab, "none"), "none")


def test_start_first_update_still_on_nginx_1_25():
    lab, _, _ = stop_first_lab()
    failed(run_check("start_first_update", lab, "0"), "web runs nginx:1.25, not nginx:1.24 yet.",
           hint=hints("start_first_update")[0])


def test_start_first_update_with_stop_first():
    lab, web, _ = stop_first_lab()
    lab.update_image(web, "nginx:1.24", started=70, completed=80, order="stop-first", on=ALL_NODES)
    failed(run_check("start_first_update", lab, "0"), "web was updated with order stop-first; this step uses "
           "start-first.")


def test_start_first_update_rolling_is_pending():
    lab, web, _ = stop_first_lab()
    lab.update_image(web, "nginx:1.24", started=70, order="start-first")
    failed(run_check("start_first_update", lab, "0"), "The update is rolling.", pending=True)


# --- rolling-update:rollback ----------------------------------------------------------------------


def test_rolled_back_to_nginx_1_25():
    lab, _ = rolled_back_lab()
    assert answer_of("rolled_back", lab) == "1.25"
    for answer in ("1.25", "nginx:1.25", "nginx/1.25"):
        passed(run_check("rolled_back", lab, answer), "Right:")
    assert run_check("rolled_back", lab, "1.25").evidence == (
        "web: nginx:1.25, update state rollback_completed", "running: nginx:1.25, nginx:1.25, nginx:1.25")


def test_rolled_back_1_24_is_explained():
    lab, _ = rolled_back_lab()
    result = run_check("rolled_back", lab, "1.24")
    wrong_answer(result, "1.24", explain("rolled_back", "1.24"))
    assert result.hint == hints("rolled_back")[0]
    wrong_answer(run_check("rolled_back", lab, "1.23"), "1.23")
    failed(run_check("rolled_back", lab, ""), "Predict, run the command(s), then answer: After `docker service")


def test_rolled_back_not_yet():
    lab, _, _ = start_first_lab()
    result = run_check("rolled_back", lab, "1.25")
    failed(result, "web has not been rolled back.", hint=hints("rolled_back")[0])
    assert result.evidence[0] == "web: nginx:1.24, update state completed"


def test_rolled_back_rolling_is_pending():
    lab, web, _ = start_first_lab()
    lab.rollback(web, started=100)
    failed(run_check("rolled_back", lab, "1.25"), "The rollback is rolling.", pending=True, hint="Watch the map.")


def test_rolled_back_completed_but_old_tasks_still_running_is_pending():
    lab, web, _ = start_first_lab()
    lab.rollback(web, started=100, completed=110)
    failed(run_check("rolled_back", lab, "1.25"), "The rollback is rolling.", pending=True)


def test_rolled_back_answer_follows_a_second_rollback():
    lab, web = rolled_back_lab()
    lab.rollback(web, started=120, completed=130, on=ALL_NODES)
    passed(run_check("rolled_back", lab, "1.24"))
    assert answer_of("rolled_back", lab) == "1.24"


# --- rolling-update:blue-green ---------------------------------------------------------------------


def test_blue_green_passes():
    lab, _, green = switched_lab()
    answered(lab, 2.5, 0.1, whoami(lab, green, "1.24"))
    result = run_check("blue_green", lab)
    passed(result, "All of web's traffic goes to green, switched in one command.")
    assert result.evidence == ("web (blue, nginx:1.25): 0 replicas, 0 running",
                               "green (nginx:1.24): 3 replicas, 3 running",
                               "the probe, last 3 s: 12 requests: 0 failed; answered 12 by nginx/1.24")


def test_blue_green_only_the_last_3_seconds_count():
    """Blue's answers and failures during the switch, 3.5 s ago (read: the logs are read from 4 s back)
    and long ago, are not the probe's last 3 s."""
    lab, web, green = switched_lab()
    answered(lab, 4, 3.4, whoami(lab, web, "1.25"))
    answered(lab, 3.4, 3.2, never)
    answered(lab, 3, 0.2, whoami(lab, green, "1.24"))
    result = run_check("blue_green", lab)
    passed(result)
    assert result.evidence[2].startswith("the probe, last 3 s: ") and "nginx/1.25" not in result.evidence[2]
    assert "0 failed" in result.evidence[2]


def test_blue_green_no_green_service():
    lab, _ = rolled_back_lab()
    result = run_check("blue_green", lab)
    failed(result, "There is no service called green yet.", hint=hints("blue_green")[0])
    assert result.evidence == ()


@pytest.mark.parametrize(("networks", "aliases"), [
    ((), {}),                                    # not on any network
    (("front",), {}),                            # on front, no alias
    (("front",), {"front": ("green", "blue")}),  # on front, other aliases
    (("front", "back"), {"back": ("web",)}),     # the alias web, on another network
])
def test_blue_green_green_does_not_answer_to_web_on_front(networks, aliases):
    lab = rolled_back_lab()[0]
    lab.network("back", at=115)
    lab.service("green", replicas=0, on=(), image="nginx:1.24", args=(), networks=networks, endpoint_mode="dnsrr",
                aliases=aliases, at=120)
    result = run_check("blue_green", lab)
    failed(result, "green does not answer to the name web on the network front.",
           hint="Create green with `--network name=front,alias=web`.")
    assert result.evidence == ()


def test_blue_green_not_switched_yet():
    lab, _, _ = green_lab()
    result = run_check("blue_green", lab)
    failed(result, "The traffic has not been switched to green.",
           hint="One command: `docker service scale green=3 web=0`.")
    assert result.evidence == ("web (blue, nginx:1.25): 3 replicas, 3 running",
                               "green (nginx:1.24): 0 replicas, 0 running")


@pytest.mark.parametrize(("green_replicas", "web_replicas"), [(3, 3), (0, 0), (2, 0), (3, 1)])
def test_blue_green_half_switched_is_not_pending(green_replicas, web_replicas):
    lab, web, green = green_lab()
    lab.scale(green, green_replicas, at=130)
    lab.scale(web, web_replicas, at=130)
    result = run_check("blue_green", lab)
    failed(result, "The traffic has not been switched to green.", hint="`docker service scale green=3 web=0`")
    assert result.evidence[0].startswith(f"web (blue, nginx:1.25): {web_replicas} replicas")
    assert result.evidence[1].startswith(f"green (nginx:1.24): {green_replicas} replicas")


def test_blue_green_switching_is_pending():
    lab, _, _ = switched_lab(web_left=1)
    result = run_check("blue_green", lab)
    failed(result, "The switch is happening.", pending=True, hint="Watch the map.")
    assert result.evidence == ("web (blue, nginx:1.25): 0 replicas, 1 running",
                               "green (nginx:1.24): 3 replicas, 3 running")
    lab, _, green = switched_lab(green_on=("manager1", "worker1"))
    lab.task(green, "worker2", 3, state="starting", at=132)
    result = run_check("blue_green", lab)
    failed(result, "The switch is happening.", pending=True)
    assert result.evidence[1] == "green (nginx:1.24): 3 replicas, 2 running"


def test_blue_green_probe_silent_for_3_seconds_is_pending():
    """The probe logged nothing in the last 3 s: only its requests of long ago (and 3.5 s ago)."""
    lab, web, _ = switched_lab()
    answered(lab, 3.8, 3.4, whoami(lab, web, "1.25"))
    result = run_check("blue_green", lab)
    failed(result, "The probe has not answered since the switch.", pending=True,
           hint="`docker service logs --tail 5 probe`.")
    assert len(result.evidence) == 2


def test_blue_green_no_probe_or_logs_unavailable_is_pending(monkeypatch):
    lab, _, _ = switched_lab()
    lab.remove_service(probe_of(lab))
    failed(run_check("blue_green", lab), "The probe has not answered since the switch.", pending=True)
    lab, _, green = switched_lab()
    answered(lab, 2.5, 0.1, whoami(lab, green, "1.24"))

    def unavailable(*args: object, **kwargs: object) -> None:
        raise docker.errors.APIError("500 Server Error: rpc error: code = Unavailable")

    monkeypatch.setattr(FakeAPI, "service_logs", unavailable)
    failed(run_check("blue_green", lab), "The probe has not answered since the switch.", pending=True)


def test_blue_green_only_junk_in_the_last_3_seconds_is_pending():
    lab, _, _ = switched_lab()
    lab.log(probe_of(lab), [(ago(1), "wget: bad address 'web'")])
    failed(run_check("blue_green", lab), "The probe has not answered since the switch.", pending=True)


def test_blue_green_probe_still_gets_blue_is_pending():
    lab, web, green = switched_lab()
    blue, new = whoami(lab, web, "1.25"), whoami(lab, green, "1.24")
    answered(lab, 2.5, 0.1, lambda at: blue(at) if at < ago(1.5) else new(at))
    result = run_check("blue_green", lab)
    failed(result, "The probe still gets other answers.", pending=True,
           hint="Wait a few seconds: the name web now answers with green's tasks only.")
    assert "nginx/1.24" in result.evidence[2] and "nginx/1.25" in result.evidence[2]


def test_blue_green_probe_only_gets_blue_is_pending():
    lab, web, _ = switched_lab()
    answered(lab, 2.5, 0.1, whoami(lab, web, "1.25"))
    result = run_check("blue_green", lab)
    failed(result, "The probe still gets other answers.", pending=True)
    assert result.evidence[2] == "the probe, last 3 s: 12 requests: 0 failed; answered 12 by nginx/1.25"


def test_blue_green_probe_failures_are_pending():
    lab, _, green = switched_lab()
    new = whoami(lab, green, "1.24")
    answered(lab, 2.5, 0.1, lambda at: None if at < ago(2) else new(at))
    result = run_check("blue_green", lab)
    failed(result, "The probe still gets other answers.", pending=True)
    assert "3 failed" in result.evidence[2] and "nginx/1.25" not in result.evidence[2]


def test_blue_green_probe_every_request_fails_is_pending():
    lab, _, _ = switched_lab()
    answered(lab, 2.5, 0.1, never)
    result = run_check("blue_green", lab)
    failed(result, "The probe still gets other answers.", pending=True)
    assert result.evidence[2] == "the probe, last 3 s: 12 requests: 12 failed; answered none answered"


def test_the_fake_keeps_green_s_alias_and_replicas_as_the_engine_does():
    lab, web, green = switched_lab()
    front = lab.network_id("front")
    assert green["Spec"]["TaskTemplate"]["Networks"] == [{"Target": front, "Aliases": ["web"]}]
    assert web["Spec"]["TaskTemplate"]["Networks"] == [{"Target": front}]
    assert green["Spec"]["Mode"] == {"Replicated": {"Replicas": 3}} and web["Spec"]["Mode"]["Replicated"] == \
        {"Replicas": 0}
    assert [t["Status"]["State"] for t in lab.tasks(web) if t["DesiredState"] == "running"] == []
