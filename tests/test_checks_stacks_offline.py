"""The checks of lab stacks (labkit/checks/stacks.py) through each of their outcomes, on the fake cluster of
tests/fakes.py, with the steps, hints and explanations of labs/17-stacks.toml. The scenes follow the lab: the
stack app deployed from ~/app/stack.yml (app_front on manager1 publishing 8080 in host mode, with the config
app_proxy as its nginx.conf; app_api, two dnsrr replicas of nginx:1.24 with the secret app_api_key; the overlay
network app_backend), the file edited and deployed again (api rolls to nginx:1.25 with 3 replicas), a typo the
CLI refuses, and `docker stack rm app`. What the CLI's own check of the file says, and what front answers on
port 8080, are manager1's canned outputs.
"""

from __future__ import annotations

import pytest

from labkit.checks.stacks import NAMESPACE, VALIDATE
from tests.fakes import FakeLab, Json, swarm_lab
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

STACK_CHECKS = ["stack_deployed", "stack_proxied", "stack_updated", "stack_typo", "stack_removed"]
LABEL = {NAMESPACE: "app"}
GOOD_FILE = (1, "", "Cannot connect to the Docker daemon at unix:///nonexistent.sock. Is the docker daemon running?\n")
UNKNOWN_KEY = (1, "", "services.api.deploy Additional property replica is not allowed\n")
BAD_INDENT = (1, "", "yaml: line 16: did not find expected key\n")
NOT_A_NUMBER = (1, "", "services.api.deploy.replicas must be a integer\n")
NO_FILE = (1, "", "open /root/app/stack.yml: no such file or directory\n")
FRONT_URL = "http://manager1:8080/whoami"
PROXY = "events {}\nhttp { server { location / { set $backend http://api; proxy_pass $backend; } } }\n"


# --- scenes, in the lab's order -------------------------------------------------------------------


def label(*items: Json) -> None:
    """What `docker stack deploy` does to what it makes: the stack's label (networks keep it at the top)."""
    for item in items:
        item.get("Spec", item)["Labels"] = dict(LABEL)


def ready(lab: FakeLab, service: Json) -> None:
    """SERVICE's running task containers, as the stack's: labelled, and (api) with the secret's file."""
    for task in lab.tasks(service):
        if task["DesiredState"] == "running" and task["Status"]["ContainerStatus"].get("ContainerID"):
            container = lab.container_of(task)
            container.labels |= LABEL
            container.execs["test -s /run/secrets/api_key"] = (0, b"")


def ids(lab: FakeLab, service: Json) -> list[str]:
    """The hostnames SERVICE's running task containers answer /whoami with."""
    return [t["Status"]["ContainerStatus"]["ContainerID"][:12] for t in lab.tasks(service)
            if t["DesiredState"] == "running"]


def front_answers(lab: FakeLab, hosts: list[str], version: str = "1.24", times: int = 6) -> None:
    lab["manager1"].outputs[FRONT_URL] = "".join(f"{hosts[i % len(hosts)]} nginx/{version}\n" for i in range(times))


def stack_lab(file: tuple[int, str, str] = GOOD_FILE, api_mode: str = "dnsrr",
              port: Json | None = None, config: bool = True, secret: bool = True) -> tuple[FakeLab, Json, Json]:
    """deploy done: the stack app as the step's file makes it, front answering through the proxy with api's
    hostnames; FILE: what the CLI's check of ~/app/stack.yml says."""
    lab = swarm_lab()
    label(lab.network("app_backend", at=1), lab.secret("app_api_key", "key-4242", at=1),
          lab.config("app_proxy", PROXY, at=1))
    api = lab.service("app_api", replicas=2, on=("worker1", "worker2"), image="nginx:1.24", args=(),
                      networks=("app_backend",), endpoint_mode=api_mode, at=2)
    front = lab.service("app_front", on=("manager1",), image="nginx:1.25", args=(), networks=("app_backend",),
                        ports=(port or {"PublishedPort": 8080, "PublishMode": "host"},),
                        constraints=("node.role == manager",), at=2)
    if secret:
        lab.grant(api, "app_api_key", target="api_key")
    if config:
        lab.use_config(front, "app_proxy", target="/etc/nginx/nginx.conf")
    lab.mount_secrets(api, created=True)
    label(api, front)
    ready(lab, api)
    ready(lab, front)
    lab["manager1"].outputs[VALIDATE] = file
    front_answers(lab, ids(lab, api))
    return lab, api, front


def updated_lab(front_replaced: bool = False, state: str | None = None,
                version: str = "1.25") -> tuple[FakeLab, Json, Json]:
    """update done: api rolled to nginx:1.25 with 3 replicas (started at 30 s, completed at 45 s); front's task
    kept (or replaced at 31 s); front answers with the new api tasks' hostnames (naming VERSION)."""
    lab, api, front = stack_lab()
    lab.scale(api, 3, at=30)
    lab.update_image(api, "nginx:1.25", started=30, completed=None if state == "updating" else 45, state=state,
                     on=("manager1", "worker1", "worker2"))
    label(api)
    ready(lab, api)
    if front_replaced:
        lab.move(front, ("manager1",), at=31)
        ready(lab, front)
    front_answers(lab, ids(lab, api), version)
    lab["manager1"].outputs["grep -n -e image: -e replicas:"] = "4:    image: nginx:1.25\n15:    image: nginx:1.25\n" \
                                                                "20:      replicas: 3\n"
    return lab, api, front


def without(lab: FakeLab, kind: str, name: str) -> None:
    setattr(lab.swarm, kind, [i for i in getattr(lab.swarm, kind) if (i.get("Spec") or i).get("Name") != name])


# --- stacks:deploy ---------------------------------------------------------------------------------------


def test_stack_deployed_passes_with_what_it_saw():
    lab, api, _ = stack_lab()
    result = run_check("stack_deployed", lab)
    passed(result, "The stack app runs: 2 services, its network, secret and config. front passes requests on to api.")
    hosts = ", ".join(sorted(ids(lab, api)))
    assert result.evidence == (
        "app_front: nginx:1.25, 1/1 running on manager1, port 8080 published in host mode",
        "app_api: nginx:1.24, 2/2 running on worker1, worker2, endpoint mode dnsrr",
        "network app_backend: overlay",
        "config app_proxy -> app_front at /etc/nginx/nginx.conf; secret app_api_key -> app_api at /run/secrets/api_key",
        f"3 requests to http://manager1:8080/whoami: 0 failed; hostnames {hosts} (api tasks), versions 1.24")


def test_stack_deployed_asks_front_from_a_throwaway_container_one_command_a_line():
    lab, _, _ = stack_lab()
    asked: list[str] = []
    manager1 = lab["manager1"]
    sh = manager1.sh
    manager1.sh = lambda script: asked.append(script) or sh(script)  # type: ignore[method-assign]
    run_check("stack_deployed", lab)
    assert "docker run --rm alpine sh -c 'for i in $(seq 3)\ndo wget -q -T 2 -O- http://manager1:8080/whoami " \
           "2>&1\ndone'" in asked
    assert VALIDATE not in asked, "a good stack needs no look at the file"


def test_stack_deployed_no_stack_yet():
    lab = swarm_lab()
    lab["manager1"].outputs[VALIDATE] = GOOD_FILE
    failed(run_check("stack_deployed", lab), "There is no stack called app yet.", hint=hints("stack_deployed")[0])


def test_stack_deployed_no_file_yet():
    lab = swarm_lab()
    lab["manager1"].outputs[VALIDATE] = NO_FILE
    failed(run_check("stack_deployed", lab), "There is no ~/app/stack.yml on manager1.",
           hint=hints("stack_deployed")[0])


def test_stack_deployed_a_misspelt_key_is_named():
    lab = swarm_lab()
    lab["manager1"].outputs[VALIDATE] = UNKNOWN_KEY
    failed(run_check("stack_deployed", lab), "~/app/stack.yml on manager1 has an error, so `docker stack deploy` "
           "refused it and changed nothing: services.api.deploy Additional property replica is not allowed",
           hint="`replica` is not a key Compose knows under `services.api.deploy`: check its spelling")


def test_stack_deployed_bad_indentation_names_the_line():
    lab = swarm_lab()
    lab["manager1"].outputs[VALIDATE] = BAD_INDENT
    failed(run_check("stack_deployed", lab), "has an error, so `docker stack deploy` refused it and changed "
           "nothing: yaml: line 16: did not find expected key",
           hint="Line 16 of ~/app/stack.yml (or the line above it) is not valid YAML. YAML reads the nesting "
           "from the indentation")


def test_stack_deployed_another_error_is_quoted():
    lab = swarm_lab()
    lab["manager1"].outputs[VALIDATE] = NOT_A_NUMBER
    failed(run_check("stack_deployed", lab), "changed nothing: services.api.deploy.replicas must be a integer",
           hint="Correct ~/app/stack.yml as the message says, then deploy again.")


def test_stack_deployed_under_another_name():
    lab, api, front = stack_lab()
    for s in (api, front):
        s["Spec"]["Labels"] = {NAMESPACE: "myapp"}
    result = run_check("stack_deployed", lab)
    failed(result, "There is a stack called myapp, but none called app",
           hint="`docker stack rm myapp`, then `docker stack deploy -c ~/app/stack.yml app`.")
    assert result.evidence == ("stacks: myapp",)


@pytest.mark.parametrize(("kind", "name", "missing"), [("secrets", "app_api_key", "secret app_api_key"),
                                                       ("configs", "app_proxy", "config app_proxy"),
                                                       ("networks", "app_backend", "network app_backend")])
def test_stack_deployed_a_piece_missing(kind, name, missing):
    lab, _, _ = stack_lab()
    without(lab, kind, name)
    result = run_check("stack_deployed", lab)
    failed(result, f"The stack app has no {missing}: its file is not the step's.",
           hint="Compare ~/app/stack.yml with the step's file")
    assert result.evidence[0].startswith("the stack has: app_")


def test_stack_deployed_a_service_missing_while_the_file_has_an_error():
    lab, _, front = stack_lab(file=UNKNOWN_KEY)
    lab.remove_service(front)
    failed(run_check("stack_deployed", lab), "refused it and changed nothing: services.api.deploy Additional")


def test_stack_deployed_no_published_port():
    lab, _, _ = stack_lab(port={"PublishedPort": 8081, "PublishMode": "host"})
    failed(run_check("stack_deployed", lab), "front does not publish port 8080.",
           hint="`ports: - { target: 80, published: 8080, mode: host }`")


def test_stack_deployed_routing_mesh_without_ipvs():
    lab, _, _ = stack_lab(port={"PublishedPort": 8080})
    result = run_check("stack_deployed", lab)
    failed(result, "front publishes 8080 through the routing mesh (ingress), but this machine's kernel has no IPVS",
           hint="Publish in host mode: `- { target: 80, published: 8080, mode: host }`")
    assert result.evidence == ("front: publish mode ingress, IPVS: no",)


def test_stack_deployed_routing_mesh_and_vip_with_ipvs_pass():
    lab, _, _ = stack_lab(port={"PublishedPort": 8080, "PublishMode": "ingress"}, api_mode="vip")
    lab["manager1"].dirs.add("/proc/sys/net/ipv4/vs")
    passed(run_check("stack_deployed", lab))


def test_stack_deployed_api_with_a_virtual_ip_without_ipvs():
    lab, _, _ = stack_lab(api_mode="vip")
    failed(run_check("stack_deployed", lab), "api has a virtual IP (endpoint mode vip), which needs IPVS",
           hint="Add `endpoint_mode: dnsrr` under api's `deploy:`")


def test_stack_deployed_front_without_the_config():
    failed(run_check("stack_deployed", stack_lab(config=False)[0]),
           "front is not given the config proxy as /etc/nginx/nginx.conf", hint="Under front the file needs `configs:")


def test_stack_deployed_api_without_the_secret():
    failed(run_check("stack_deployed", stack_lab(secret=False)[0]), "api is not given the secret api_key.",
           hint="`secrets: [api_key]`")


def test_stack_deployed_tasks_starting_is_pending():
    lab, api, _ = stack_lab()
    lab.fail(lab.tasks(api)[1], at=5)
    result = run_check("stack_deployed", lab)
    failed(result, "The stack's tasks are starting.", pending=True, hint="`docker stack ps app`")
    assert result.evidence[1] == "app_api: nginx:1.24, 1/2 running on worker1, endpoint mode dnsrr"


def test_stack_deployed_secret_not_seen_in_the_container_is_pending():
    lab, api, _ = stack_lab()
    lab.container_of(lab.tasks(api)[0]).execs["test -s /run/secrets/api_key"] = (1, b"")
    failed(run_check("stack_deployed", lab), "api's task has no /run/secrets/api_key yet.", pending=True)


def test_stack_deployed_front_answering_by_itself():
    lab, _, front = stack_lab()
    front_answers(lab, ids(lab, front), "1.25")
    result = run_check("stack_deployed", lab)
    failed(result, "front answers by itself: its nginx does not pass the requests on to api.",
           hint="front's /etc/nginx/nginx.conf must be the config proxy")
    assert result.evidence[-1].endswith("(front), versions 1.25")


@pytest.mark.parametrize("output", [(1, "wget: server returned error: HTTP/1.1 502 Bad Gateway\n", ""), ""])
def test_stack_deployed_front_not_answering_is_pending(output):
    lab, _, _ = stack_lab()
    lab["manager1"].outputs[FRONT_URL] = output
    result = run_check("stack_deployed", lab)
    failed(result, "front does not answer through the proxy yet.", pending=True,
           hint="`docker service logs app_front`")
    assert "3 requests to http://manager1:8080/whoami: 3 failed; hostnames none (none)" in result.evidence[-1]


# --- stacks:proxy ----------------------------------------------------------------------------------------


def test_stack_proxied_api_is_right():
    lab, api, front = stack_lab()
    assert answer_of("stack_proxied", lab) == "api"
    for answer in ("api", "api's tasks", "The api tasks", "app_api"):
        passed(run_check("stack_proxied", lab, answer), "Right:")
    assert run_check("stack_proxied", lab, "api").evidence == (
        f"front's task: hostname {ids(lab, front)[0]} on manager1",
        f"6 requests to http://manager1:8080/whoami: 0 failed; hostnames {', '.join(sorted(ids(lab, api)))} "
        "(api tasks), versions 1.24")


def test_stack_proxied_front_is_explained():
    lab, _, _ = stack_lab()
    result = run_check("stack_proxied", lab, "front")
    wrong_answer(result, "front", explain("stack_proxied", "front"))
    assert result.hint == hints("stack_proxied")[0]
    wrong_answer(run_check("stack_proxied", lab, "both"), "both")
    failed(run_check("stack_proxied", lab, None), "Predict, run the command(s), then answer: Whose hostname")


def test_stack_proxied_front_answering_by_itself_is_not_judged():
    lab, _, front = stack_lab()
    front_answers(lab, ids(lab, front), "1.25")
    assert answer_of("stack_proxied", lab) == "front"
    failed(run_check("stack_proxied", lab, "front"), "front answers by itself")


def test_stack_proxied_some_requests_failing_is_pending():
    lab, api, _ = stack_lab()
    lab["manager1"].outputs[FRONT_URL] = f"{ids(lab, api)[0]} nginx/1.24\nwget: download timed out\n"
    failed(run_check("stack_proxied", lab, "api"), "front does not answer through the proxy yet.", pending=True)
    assert answer_of("stack_proxied", lab) == ""


def test_stack_proxied_no_stack():
    lab = swarm_lab()
    lab["manager1"].outputs[VALIDATE] = GOOD_FILE
    failed(run_check("stack_proxied", lab, "api"), "There is no stack called app yet.")


# --- stacks:update ---------------------------------------------------------------------------------------


def test_stack_updated_front_kept_so_no_is_right():
    lab, api, front = updated_lab()
    assert answer_of("stack_updated", lab) == "no"
    result = run_check("stack_updated", lab, "no")
    passed(result, "Right: no.")
    kept = lab.tasks(front)[0]["ID"][:12]
    assert result.evidence == (
        "api: nginx:1.24 -> nginx:1.25, 3/3 tasks running nginx:1.25; 2 old task(s) shut down",
        "api's update: completed (parallelism 1, order stop-first)",
        f"front: its service was sent again too (updated 2024-05-01T12:00:02), but its task {kept} has run "
        "since before the deploy",
        f"6 requests to http://manager1:8080/whoami: 0 failed; hostnames {', '.join(sorted(ids(lab, api)))} "
        "(api tasks), versions 1.25")


def test_stack_updated_yes_is_explained():
    lab, _, _ = updated_lab()
    result = run_check("stack_updated", lab, "yes")
    wrong_answer(result, "yes", explain("stack_updated", "yes"))
    assert result.hint == hints("stack_updated")[0]
    failed(run_check("stack_updated", lab, None), "Predict, run the command(s), then answer: After the second")


def test_stack_updated_front_replaced_then_yes_is_what_happened():
    lab, _, front = updated_lab(front_replaced=True)
    assert answer_of("stack_updated", lab) == "yes"
    result = run_check("stack_updated", lab, "yes")
    passed(result)
    running = next(t for t in lab.tasks(front) if t["DesiredState"] == "running")
    assert f"and its task was replaced (now {running['ID'][:12]})" in result.evidence[2]


def test_stack_updated_not_deployed_again_says_what_the_file_says():
    lab, _, _ = stack_lab()
    lab["manager1"].outputs["grep -n -e image: -e replicas:"] = "4:    image: nginx:1.25\n15:    image: nginx:1.25\n" \
                                                                "20:      replicas: 3\n"
    result = run_check("stack_updated", lab, "no")
    failed(result, "api runs nginx:1.24, not nginx:1.25; api has 2 replicas, not 3: deploy the edited file again.",
           hint=hints("stack_updated")[0])
    assert result.evidence == ("~/app/stack.yml says: 4: image: nginx:1.25; 15: image: nginx:1.25; 20: replicas: 3",)
    assert answer_of("stack_updated", lab) == ""


def test_stack_updated_only_the_replicas_changed():
    lab, api, _ = stack_lab()
    lab.scale(api, 3, at=30)
    lab.task(api, "manager1", 3, at=31)
    ready(lab, api)
    failed(run_check("stack_updated", lab, "no"), "api runs nginx:1.24, not nginx:1.25: deploy the edited file again.")


def test_stack_updated_the_edit_broke_the_file():
    lab, _, _ = stack_lab(file=BAD_INDENT)
    failed(run_check("stack_updated", lab, "no"), "refused it and changed nothing: yaml: line 16",
           hint="Line 16 of ~/app/stack.yml")


def test_stack_updated_rolling_is_pending():
    lab, _, _ = updated_lab(state="updating")
    result = run_check("stack_updated", lab, "no")
    failed(result, "api is rolling to nginx:1.25: 3 of 3 tasks run it.", pending=True,
           hint="Wait: the update replaces one task at a time.")
    assert result.evidence[1] == "api's update: updating (parallelism 1, order stop-first)"


def test_stack_updated_new_tasks_not_all_running_is_pending():
    lab, api, _ = updated_lab(state="updating")
    lab.fail(lab.tasks(api)[-1], at=40)
    failed(run_check("stack_updated", lab, "no"), "api is rolling to nginx:1.25: 2 of 3 tasks run it.", pending=True)


def test_stack_updated_paused():
    lab, api, _ = updated_lab(state="paused")
    api["UpdateStatus"]["Message"] = "update paused due to failure or early termination of task x"
    failed(run_check("stack_updated", lab, "no"), "api's update stopped: paused: update paused due to failure",
           hint="`docker service ps app_api`")


def test_stack_updated_created_anew_is_not_an_update():
    lab, api, _ = updated_lab()
    del api["PreviousSpec"], api["UpdateStatus"]
    failed(run_check("stack_updated", lab, "no"), "api was created with nginx:1.25, not updated: was the stack "
           "removed and deployed anew?", hint="`labkit reset stacks:update`")


def test_stack_updated_front_still_reaching_old_tasks_is_pending():
    lab, _, _ = updated_lab(version="1.24")
    failed(run_check("stack_updated", lab, "no"), "front does not reach the new api tasks yet.", pending=True,
           hint="front's nginx looks `api` up again every 5 s")


def test_stack_updated_no_stack():
    lab = swarm_lab()
    lab["manager1"].outputs[VALIDATE] = GOOD_FILE
    failed(run_check("stack_updated", lab, "no"), "There is no stack called app yet.")


# --- stacks:typo -----------------------------------------------------------------------------------------


def typo_lab(file: tuple[int, str, str] = UNKNOWN_KEY) -> tuple[FakeLab, Json]:
    lab, api, _ = updated_lab()
    lab["manager1"].outputs[VALIDATE] = file
    return lab, api


def test_stack_typo_refused_so_no_is_right():
    lab, _ = typo_lab()
    assert answer_of("stack_typo", lab) == "no"
    result = run_check("stack_typo", lab, "no")
    passed(result, "Right: no.")
    assert result.evidence == (
        "docker's check of ~/app/stack.yml: services.api.deploy Additional property replica is not allowed",
        "api: 3 replicas of nginx:1.25",
        "what it suggests: `replica` is not a key Compose knows under `services.api.deploy`: check its spelling "
        "(`replicas`, not `replica`) and its indentation (a key indented too far or too little lands under the "
        "wrong parent). Then deploy again.")


def test_stack_typo_yes_is_explained():
    lab, _ = typo_lab()
    result = run_check("stack_typo", lab, "yes")
    wrong_answer(result, "yes", explain("stack_typo", "yes"))
    assert result.hint == hints("stack_typo")[0]


def test_stack_typo_an_indentation_error_works_as_well():
    lab, _ = typo_lab(BAD_INDENT)
    result = run_check("stack_typo", lab, "no")
    passed(result)
    assert result.evidence[0] == "docker's check of ~/app/stack.yml: yaml: line 16: did not find expected key"


def test_stack_typo_no_typo_yet():
    lab, _ = typo_lab(GOOD_FILE)
    result = run_check("stack_typo", lab, "no")
    failed(result, "~/app/stack.yml has no error now: this step deploys a file with a typo.",
           hint=hints("stack_typo")[0])
    assert result.evidence == ("api: 3 replicas of nginx:1.25",)


def test_stack_typo_the_stack_changed_after_all():
    """The typo corrected to `replicas: 4` and deployed, then broken again: the stack did change."""
    lab, api = typo_lab()
    lab.scale(api, 4, at=60)
    assert answer_of("stack_typo", lab) == "yes"
    wrong_answer(run_check("stack_typo", lab, "no"), "no")


def test_stack_typo_no_file():
    lab, _ = typo_lab(NO_FILE)
    failed(run_check("stack_typo", lab, "no"), "There is no ~/app/stack.yml on manager1.")


def test_stack_typo_no_stack():
    lab = swarm_lab()
    lab["manager1"].outputs[VALIDATE] = UNKNOWN_KEY
    failed(run_check("stack_typo", lab, "no"), "refused it and changed nothing")


# --- stacks:remove ---------------------------------------------------------------------------------------


def removed_lab(lingering: bool = False) -> FakeLab:
    """remove done: `docker stack rm app` removed the services, secret, config and network; with LINGERING,
    a container on worker1 and the network there are still going."""
    lab, api, front = updated_lab()
    lab.remove_service(api, stopping=lingering)  # with LINGERING: its containers are still stopping
    lab.remove_service(front)
    for kind, name in (("secrets", "app_api_key"), ("configs", "app_proxy")):
        without(lab, kind, name)
    lab.swarm.networks = []
    if lingering:  # worker1 has not let go of its copy of the network yet
        lab.local_network("worker1", "app_backend", driver="overlay")
    return lab


def test_stack_removed_nothing_left():
    result = run_check("stack_removed", removed_lab())
    passed(result, "Nothing of the stack app remains: no service, network, secret, config or container, on any node.")
    assert result.evidence == ("left on the managers: nothing labelled com.docker.stack.namespace=app",
                               "manager1: 0 container(s) of the stack", "worker1: 0 container(s) of the stack",
                               "worker2: 0 container(s) of the stack")


def test_stack_removed_still_there():
    lab, _, _ = updated_lab()
    result = run_check("stack_removed", lab)
    failed(result, "The stack app is still there.", hint=hints("stack_removed")[0])
    assert result.evidence[0] == ("left on the managers: service app_api, app_front; network app_backend; "
                                  "secret app_api_key; config app_proxy")


def test_stack_removed_services_removed_one_by_one_leave_the_rest():
    lab, api, front = updated_lab()
    lab.remove_service(api)
    lab.remove_service(front)
    result = run_check("stack_removed", lab)
    failed(result, "The services are gone, but the stack's network and secret and config remain: `docker service "
           "rm` removes services only.", hint="`docker stack rm app` removes everything the stack made.")
    assert not result.pending


def test_stack_removed_containers_and_network_going_is_pending():
    result = run_check("stack_removed", removed_lab(lingering=True))
    failed(result, "The stack app is being removed", pending=True, hint="Wait a few seconds.")
    assert "worker1: 1 container(s) of the stack, network app_backend still listed" in result.evidence
    assert "left on the managers: nothing labelled com.docker.stack.namespace=app" in result.evidence


def test_stack_removed_network_left_on_the_managers_is_pending():
    lab = removed_lab()
    label(lab.network("app_backend", at=1))
    failed(run_check("stack_removed", lab), "The stack app is being removed", pending=True)
