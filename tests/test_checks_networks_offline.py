"""The checks of lab networks (labkit/checks/networks.py) through each of their outcomes, on the fake cluster
of tests/fakes.py, with the steps, hints and explanations of labs/10-networks.toml. The scenes follow the lab:
the overlay network backend, web (dnsrr, on manager1 and worker2) asked by name from client on worker1,
webvip with a virtual IP, and web's port 8080 published in host mode or through the routing mesh. Whether
the kernel has IPVS is the fake nodes' answer, so both kinds of machine are tested here.
"""

from __future__ import annotations

import pytest

from tests.fakes import FakeContainer, FakeLab, Json, swarm_lab
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

NETWORK_CHECKS = ["overlay_lazy", "service_discovery", "virtual_ip", "published_port"]
ALL_NODES = ("manager1", "worker1", "worker2")
IPVS = "/proc/sys/net/ipv4/vs"
IP_VS_MODULE = "/sys/module/ip_vs"


# --- scenes, in the lab's order -------------------------------------------------------------------


def overlay_lab() -> FakeLab:
    """overlay done: the overlay network backend, made on manager1."""
    lab = swarm_lab()
    lab.network("backend", at=5)
    return lab


def web(lab: FakeLab, on: tuple[str, ...] = ("manager1", "worker2"), replicas: int = 2,
        ports: tuple[Json, ...] = ()) -> Json:
    return lab.service("web", replicas=replicas, on=on, image="nginx:1.25", args=(), networks=("backend",),
                       endpoint_mode="dnsrr", constraints=("node.hostname!=worker1",), ports=ports, at=10)


def client(lab: FakeLab, on: str = "worker1") -> Json:
    return lab.service("client", on=(on,), image="alpine:latest", args=("sleep", "1d"), networks=("backend",),
                       constraints=(f"node.hostname=={on}",), at=20)


def client_container(lab: FakeLab, service: Json) -> FakeContainer:
    return lab.container_of(lab.tasks(service)[0])


def answered_by(lab: FakeLab, service: Json) -> list[str]:
    """The 12-digit container ids that /whoami names: SERVICE's task containers' hostnames."""
    return [t["Status"]["ContainerStatus"]["ContainerID"][:12] for t in lab.tasks(service)]


def whoami_lines(ids: list[str], times: int, version: str = "1.25") -> bytes:
    if not ids:
        return b""
    return "".join(f"{ids[i % len(ids)]} nginx/{version}\n" for i in range(times)).encode()


def discovery_lab(answers: bytes | None = None) -> tuple[FakeLab, Json, FakeContainer]:
    """discovery done: web on manager1 and worker2, client on worker1; the client's requests to
    http://web/whoami are answered by both web tasks in turn (or give ANSWERS)."""
    lab = overlay_lab()
    w, c = web(lab), client(lab)
    container = client_container(lab, c)
    container.execs["http://web/"] = (0, whoami_lines(answered_by(lab, w), 6) if answers is None else answers)
    return lab, w, container


def vip_lab(ipvs: bool | str = True, answers: bool = True, running: bool = True) -> tuple[FakeLab, Json]:
    """vip done: webvip (a virtual IP on backend) on worker2; IPVS: whether manager1's kernel has it (or the
    directory that tells); ANSWERS: whether webvip's virtual IP answers the client."""
    lab, _, container = discovery_lab()
    vip = lab.service("webvip", on=("worker2",) if running else (), image="nginx:1.25", args=(),
                      networks=("backend",), at=30)
    if ipvs:
        lab["manager1"].dirs.add(ipvs if isinstance(ipvs, str) else IPVS)
    container.execs["http://webvip/"] = (0, whoami_lines(answered_by(lab, vip), 2)) if answers else \
        (0, b"wget: download timed out\nFAIL\nwget: download timed out\nFAIL\n")
    return lab, vip


def published_lab(mode: str | None = "host", answering: tuple[str, ...] | None = None,
                  ipvs: bool = False, published: int = 8080) -> tuple[FakeLab, Json]:
    """publish done: web (tasks on manager1 and worker2) publishes PUBLISHED in MODE (None: the engine's
    default); http://NODE:8080/whoami answers on the nodes of ANSWERING (by default: where tasks run in host
    mode, every node in ingress mode), and is refused elsewhere."""
    lab = overlay_lab()
    port: Json = {"PublishedPort": published} | ({"PublishMode": mode} if mode else {})
    w = web(lab, ports=(port,))
    if ipvs:
        lab["manager1"].dirs.add(IPVS)
    if answering is None:
        answering = ("manager1", "worker2") if mode == "host" else ALL_NODES
    ids = answered_by(lab, w)
    for i, node in enumerate(ALL_NODES):
        url = f"http://{node}:8080/whoami"
        lab["manager1"].outputs[url] = f"{ids[i % len(ids)]} nginx/1.25\n" if node in answering else \
            (1, "", f"wget: can't connect to remote host ({lab[node].address}): Connection refused\n")
    return lab, w


# --- the kernel's IPVS ----------------------------------------------------------------------------------


def test_has_ipvs_reads_either_directory():
    from labkit.checks.networks import has_ipvs

    lab = swarm_lab()
    node = lab["manager1"]
    assert not has_ipvs(node)
    node.dirs.add(IP_VS_MODULE)
    assert has_ipvs(node)
    node.dirs = {IPVS}
    assert has_ipvs(node)


# --- networks:overlay ------------------------------------------------------------------------------


def test_overlay_lazy_no_is_right_while_worker1_runs_no_task_on_it():
    lab = overlay_lab()
    assert answer_of("overlay_lazy", lab) == "no"
    for answer in ("no", "No.", "not yet"):
        passed(run_check("overlay_lazy", lab, answer), "Right:")
    assert run_check("overlay_lazy", lab, "no").evidence == (
        "backend: driver overlay, scope swarm", "listed by: manager1 yes, worker1 no, worker2 no")


def test_overlay_lazy_yes_is_explained():
    lab = overlay_lab()
    result = run_check("overlay_lazy", lab, "yes")
    wrong_answer(result, "yes", explain("overlay_lazy", "yes"))
    assert result.hint == hints("overlay_lazy")[0]
    wrong_answer(run_check("overlay_lazy", lab, "maybe"), "maybe")
    failed(run_check("overlay_lazy", lab, None), "Predict, run the command(s), then answer: Right after you create")


def test_overlay_lazy_yes_once_a_task_on_worker1_uses_it():
    lab = overlay_lab()
    client(lab)
    result = run_check("overlay_lazy", lab, "yes")
    passed(result, "Right: yes.")
    assert result.evidence[1] == "listed by: manager1 yes, worker1 yes, worker2 no"
    wrong_answer(run_check("overlay_lazy", lab, "no"), "no")


def test_overlay_lazy_answer_follows_what_worker1_lists():
    lab = overlay_lab()
    client(lab)
    assert answer_of("overlay_lazy", lab) == "yes"


def test_overlay_lazy_a_network_whose_name_contains_backend_is_not_backend():
    lab = overlay_lab()
    lab.local_network("worker1", "backend-old")
    passed(run_check("overlay_lazy", lab, "no"))


def test_overlay_lazy_no_network_yet():
    lab = swarm_lab()
    failed(run_check("overlay_lazy", lab, "no"), "There is no overlay network called backend yet.",
           hint=hints("overlay_lazy")[0])


def test_overlay_lazy_a_bridge_network_called_backend_is_not_it():
    lab = swarm_lab()
    lab.local_network("manager1", "backend")
    failed(run_check("overlay_lazy", lab, "no"), "There is no overlay network called backend yet.")


# --- networks:discovery ------------------------------------------------------------------------------


def test_service_discovery_both_tasks_answer():
    lab, w, container = discovery_lab()
    assert answer_of("service_discovery", lab) == "2"
    for answer in ("2", "2 tasks"):
        passed(run_check("service_discovery", lab, answer), "Right:")
    ids = sorted(answered_by(lab, w))
    assert run_check("service_discovery", lab, "2").evidence == (
        "web tasks on: manager1, worker2", "client on: worker1",
        f"client asked http://web/whoami 6 times: 0 failed, answered by 2 task(s): {', '.join(ids)}")
    assert container.exec_log[-1] == ["sh", "-c", "for i in $(seq 6); do timeout 4 wget -q -T 2 -O- http://web/whoami "
                                      "|| echo FAIL; done"]  # each request bounded, as -T alone does not


def test_service_discovery_one_is_explained():
    lab, _, _ = discovery_lab()
    result = run_check("service_discovery", lab, "1")
    wrong_answer(result, "1", explain("service_discovery", "1"))
    assert result.hint == hints("service_discovery")[0]
    wrong_answer(run_check("service_discovery", lab, "6"), "6")
    failed(run_check("service_discovery", lab, None), "Predict, run the command(s), then answer: How many different")


def test_service_discovery_the_answer_in_words():
    lab, _, _ = discovery_lab()
    passed(run_check("service_discovery", lab, "two"))


def test_service_discovery_judges_what_its_own_requests_saw():
    """The check asks six times, and again (four rounds at most) while some web task has not answered:
    when one task answered all of them, 1 is what it saw."""
    lab, w, container = discovery_lab(answers=None)
    only = answered_by(lab, w)[:1]
    container.execs["http://web/"] = (0, whoami_lines(only, 6))
    assert answer_of("service_discovery", lab) == "1"
    assert len(container.exec_log) == 4
    result = run_check("service_discovery", lab, "1")
    passed(result)
    assert result.evidence[-1].startswith("client asked http://web/whoami 24 times: 0 failed, answered by 1 task(s)")


def test_service_discovery_asks_again_when_round_robin_picked_one_task_six_times():
    """DNS round robin is random: one round in 32 reaches one task only. The truth is what more rounds show."""
    lab, w, container = discovery_lab(answers=None)
    ids = answered_by(lab, w)
    container.execs["http://web/"] = [(0, whoami_lines(ids[:1], 6)), (0, whoami_lines(ids, 6))]
    result = run_check("service_discovery", lab, "2")
    passed(result, "Right:")
    assert len(container.exec_log) == 2
    assert result.evidence[-1] == f"client asked http://web/whoami 12 times: 0 failed, answered by 2 task(s): " \
        f"{', '.join(sorted(ids))}"


@pytest.mark.parametrize(("services", "missing"), [(("web",), "client"), (("client",), "web"),
                                                   ((), "web and client")])
def test_service_discovery_missing_services(services, missing):
    lab = overlay_lab()
    if "web" in services:
        web(lab)
    if "client" in services:
        client(lab)
    result = run_check("service_discovery", lab, "2")
    failed(result, f"There is no service called {missing} yet.", hint=hints("service_discovery")[0])
    assert answer_of("service_discovery", lab) == "0"


def test_service_discovery_web_starting_is_pending():
    lab = overlay_lab()
    w = web(lab, on=("manager1",))
    lab.task(w, "worker2", 2, state="preparing")
    client(lab)
    result = run_check("service_discovery", lab, "2")
    failed(result, "The services are starting.", pending=True, hint="Wait.")
    assert result.evidence == ("web tasks on: manager1", "client on: worker1")


def test_service_discovery_client_starting_is_pending():
    lab = overlay_lab()
    web(lab)
    lab.service("client", on=("worker1",), state="preparing", image="alpine:latest", args=("sleep", "1d"),
                networks=("backend",))
    result = run_check("service_discovery", lab, "2")
    failed(result, "The services are starting.", pending=True)
    assert result.evidence[1] == "client on: none"


def test_service_discovery_client_beside_a_web_task():
    lab = overlay_lab()
    web(lab)
    client(lab, on="worker2")
    failed(run_check("service_discovery", lab, "2"), "client runs on a node that also runs web: this step wants "
           "them on different nodes.", hint=hints("service_discovery")[0])


@pytest.mark.parametrize("output", [
    b"wget: bad address 'web'\nFAIL\n" * 6,
    b"a1b2c3d4e5f6 nginx/1.25\nwget: download timed out\nFAIL\n" + b"a1b2c3d4e5f6 nginx/1.25\n" * 4,
    b"",
])
def test_service_discovery_cannot_reach_web_is_pending(output):
    lab, _, _ = discovery_lab(answers=output)
    result = run_check("service_discovery", lab, "2")
    failed(result, "client cannot reach web by its name yet.", pending=True,
           hint="Are both services on the network backend?")


def test_service_discovery_client_container_not_found_is_pending():
    lab, _, container = discovery_lab()
    lab["worker1"].engine.containers.remove(container)
    result = run_check("service_discovery", lab, "2")
    failed(result, "client cannot reach web by its name yet.", pending=True)
    assert result.evidence[2] == "client asked http://web/whoami 0 times: 0 failed, answered by 0 task(s): "


# --- networks:vip --------------------------------------------------------------------------------------


def test_virtual_ip_with_ipvs_answers():
    lab, _ = vip_lab()
    result = run_check("virtual_ip", lab)
    passed(result, "webvip has one virtual IP, and the kernel balances it over the tasks.")
    assert result.evidence == ("webvip: endpoint mode vip, virtual IP(s) 10.0.1.2/24", "webvip tasks on: worker2",
                               "IPVS in the kernel: yes", "client asked http://webvip/whoami twice: 2 answered")
    script = client_container(lab, lab.swarm.services[1]).exec_log[-1][2]
    assert script.startswith("for i in $(seq 2); do timeout 4 wget")


def test_virtual_ip_ipvs_as_a_module():
    passed(run_check("virtual_ip", vip_lab(ipvs=IP_VS_MODULE)[0]), "the kernel balances it")


def test_virtual_ip_with_ipvs_not_answering_yet_is_pending():
    result = run_check("virtual_ip", vip_lab(answers=False)[0])
    failed(result, "webvip's virtual IP does not answer yet.", pending=True, hint="Is webvip on the network backend?")
    assert result.evidence[-1] == "client asked http://webvip/whoami twice: 0 answered"


def test_virtual_ip_without_ipvs_passes_and_says_why_dnsrr():
    lab = vip_lab(ipvs=False, answers=False)[0]
    result = run_check("virtual_ip", lab)
    passed(result, "webvip got a virtual IP, but this machine's kernel has no IPVS: requests to it go nowhere. "
           "That is why this course uses --endpoint-mode dnsrr here.")
    assert "IPVS in the kernel: no" in result.evidence
    assert result.evidence[-1] == "client asked http://webvip/whoami once: 0 answered"  # once shows it
    script = client_container(lab, lab.swarm.services[1]).exec_log[-1][2]
    assert script == ("for i in $(seq 1); do wget -q -T 2 -O- http://webvip/whoami & p=$!; sleep 0.3; "  # not 4 s,
                      "if kill $p 2>/dev/null; then echo FAIL; else wait $p || echo FAIL; fi; done")  # nor 1 s


def test_virtual_ip_no_service():
    lab, _, _ = discovery_lab()
    failed(run_check("virtual_ip", lab), "There is no service called webvip yet.", hint=hints("virtual_ip")[0])


def test_virtual_ip_no_task_running_yet_is_pending():
    result = run_check("virtual_ip", vip_lab(running=False)[0])
    failed(result, "webvip is starting.", pending=True, hint="Wait a moment.")
    assert result.evidence[1] == "webvip tasks on: none"


def test_virtual_ip_no_virtual_ip_yet_is_pending():
    lab, vip = vip_lab()
    vip["Endpoint"].pop("VirtualIPs")
    result = run_check("virtual_ip", lab)
    failed(result, "webvip is starting.", pending=True)
    assert result.evidence[0] == "webvip: endpoint mode vip, virtual IP(s) none yet"


# --- networks:publish ------------------------------------------------------------------------------------


def test_published_port_host_mode_answers_only_where_tasks_run():
    lab, _ = published_lab()
    result = run_check("published_port", lab)
    passed(result, "Port 8080 answers on only the nodes that run a task.")
    assert result.evidence == ("publish mode host, IPVS: no", "web tasks on: manager1, worker2",
                               "port 8080 answers on: manager1 yes, worker1 no, worker2 yes")


def test_published_port_host_mode_with_ipvs_too():
    passed(run_check("published_port", published_lab(ipvs=True)[0]), "only the nodes that run a task")


def test_published_port_host_mode_not_answering_yet_is_pending():
    result = run_check("published_port", published_lab(answering=("manager1",))[0])
    failed(result, "The published port does not answer where it should yet.", pending=True,
           hint="Tasks restart when their ports change")
    assert result.evidence[2] == "port 8080 answers on: manager1 yes, worker1 no, worker2 no"


@pytest.mark.parametrize("mode", ["ingress", None])
def test_published_port_ingress_with_ipvs_answers_on_every_node(mode):
    result = run_check("published_port", published_lab(mode=mode, ipvs=True)[0])
    passed(result, "Port 8080 answers on every node, task or not (the routing mesh).")
    assert result.evidence[0] == "publish mode ingress, IPVS: yes"


def test_published_port_ingress_with_ipvs_a_node_not_answering_yet_is_pending():
    lab, _ = published_lab(mode="ingress", ipvs=True, answering=("manager1", "worker2"))
    failed(run_check("published_port", lab), "The published port does not answer where it should yet.", pending=True)


def test_published_port_ingress_without_ipvs_is_told_to_use_host_mode():
    result = run_check("published_port", published_lab(mode="ingress")[0])
    failed(result, "web publishes 8080 through the routing mesh, but this machine's kernel has no IPVS: the mesh "
           "cannot work here.", hint="Publish in host mode instead: `docker service update --publish-rm 8080 "
           "--publish-add mode=host,target=80,published=8080 web`.")
    assert result.evidence == ("publish mode ingress, IPVS: no",)


def test_published_port_no_web():
    lab = overlay_lab()
    failed(run_check("published_port", lab), "There is no service called web.", hint=hints("published_port")[0])


@pytest.mark.parametrize("published", [None, 8081])
def test_published_port_not_8080(published):
    lab = overlay_lab()
    web(lab, ports=({"PublishedPort": published, "PublishMode": "host"},) if published else ())
    failed(run_check("published_port", lab), "web does not publish port 8080.", hint=hints("published_port")[0])


def test_published_port_tasks_restarting_is_pending():
    lab, w = published_lab()
    task = lab.tasks(w)[1]
    lab.fail(task, at=40)
    result = run_check("published_port", lab)
    failed(result, "web's tasks are restarting with the published port.", pending=True,
           hint="Tasks restart when their ports change: wait a moment.")
    assert result.evidence == ("web tasks running on: manager1 (1/2)",)


def test_published_port_update_rolling_is_pending():
    lab, w = published_lab()
    w["UpdateStatus"] = {"State": "updating", "StartedAt": w["UpdatedAt"], "Message": "update in progress"}
    failed(run_check("published_port", lab), "web's tasks are restarting with the published port.", pending=True)


def test_published_port_asks_each_node_from_one_throwaway_container_on_manager1():
    lab, _ = published_lab()
    asked: list[str] = []
    manager1 = lab["manager1"]
    sh = manager1.sh
    manager1.sh = lambda script: asked.append(script) or sh(script)  # type: ignore[method-assign]
    run_check("published_port", lab)
    script = "; ".join(f"echo == {n}; timeout 4 wget -q -T 2 -O- http://{n}:8080/whoami" for n in ALL_NODES)
    assert [a for a in asked if "wget" in a and "docker run" in a] == [f"docker run --rm alpine sh -c '{script}'"]
