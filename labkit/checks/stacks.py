"""Checks of a stack: the whole app in one Compose file. `docker stack deploy -c ~/app/stack.yml app` on
manager1 makes a front (nginx as a proxy, port 8080 published in host mode), a backend service api (reached
by name with DNS round robin), the overlay network backend, the secret api_key and the config proxy, every
one named app_... and labelled com.docker.stack.namespace=app. Deploying the edited file again rolls only
the service that changed; a file with an error is refused whole; `docker stack rm app` removes it all.

The checks read the engines (services, tasks, networks, secrets, configs, containers) and, for what only the
file can tell, the CLI's own check of the file on manager1's disk (run with no engine to send it to)."""

from __future__ import annotations

import re
from typing import Any

from labkit.checks.base import Context, Result, check, image_of, judge_answer, per_look, replicas_of, timestamp
from labkit.checks.networks import has_ipvs

STACK = "app"
NAMESPACE = "com.docker.stack.namespace"  # the label `docker stack deploy` puts on everything it makes
FRONT, API = f"{STACK}_front", f"{STACK}_api"
NETWORK, SECRET, CONFIG = f"{STACK}_backend", f"{STACK}_api_key", f"{STACK}_proxy"
FILE = "~/app/stack.yml"
PORT = 8080
CONFIG_TARGET, SECRET_FILE = "/etc/nginx/nginx.conf", "/run/secrets/api_key"
NEW_IMAGE, NEW_REPLICAS = "nginx:1.25", 3
# The CLI loads and checks the file before it talks to any engine: with none to talk to, a good file ends at
# "Cannot connect", a bad one at what is wrong with it. Nothing is deployed.
VALIDATE = f"DOCKER_HOST=unix:///nonexistent.sock docker stack deploy -c {FILE} {STACK}"
NO_ENGINE = "Cannot connect to the Docker daemon"
WHOAMI = re.compile(r"^(\S+) nginx/(\S+)$")
UNKNOWN_KEY = re.compile(r"^(\S+) Additional property (\S+) is not allowed")
YAML_LINE = re.compile(r"^yaml: line (\d+): (.*)$")


# --- what the engines and the file say ---------------------------------------------------------------


def _mine(items: list[dict[str, Any]], labels_at: str = "Spec") -> list[dict[str, Any]]:
    """ITEMS labelled as the stack's (services, secrets and configs keep labels in Spec; networks at the top)."""
    def labels(item: dict[str, Any]) -> dict[str, str]:
        holder = item.get(labels_at) or {} if labels_at else item
        return holder.get("Labels") or {}
    return [i for i in items if labels(i).get(NAMESPACE) == STACK]


def _names(items: list[dict[str, Any]], labels_at: str = "Spec") -> dict[str, dict[str, Any]]:
    return {(i.get("Spec") or {}).get("Name") or i.get("Name", ""): i for i in _mine(items, labels_at)}


def stack_objects(ctx: Context) -> dict[str, dict[str, dict[str, Any]]]:
    """What the stack made, as the first manager lists it: services, networks, secrets, configs by name."""
    return {"services": _names(ctx.api.services()), "networks": _names(ctx.api.networks(), labels_at=""),
            "secrets": _names(ctx.api.secrets()), "configs": _names(ctx.api.configs())}


def other_stacks(ctx: Context) -> list[str]:
    """The names of stacks other than app that have services."""
    found = {(s["Spec"].get("Labels") or {}).get(NAMESPACE) for s in ctx.api.services()}
    return sorted(n for n in found if n and n != STACK)


def file_problem(ctx: Context) -> tuple[str, str] | None:
    """What is wrong with ~/app/stack.yml on manager1, as the CLI's own check says it: (summary, hint);
    None when the file is good."""
    done = ctx.manager.run(VALIDATE, timeout=30)
    said = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    if any(NO_ENGINE in line for line in said):
        return None
    message = said[-1] if said else f"exit code {done.exit_code}"
    if "no such file" in message:
        return f"There is no {FILE} on {ctx.manager.name}.", ctx.step.hints[0]
    summary = f"{FILE} on {ctx.manager.name} has an error, so `docker stack deploy` refused it and changed " \
              f"nothing: {message}"
    if m := UNKNOWN_KEY.match(message):
        where, key = m.groups()
        return summary, (f"`{key}` is not a key Compose knows under `{where}`: check its spelling (`replicas`, "
                         f"not `replica`) and its indentation (a key indented too far or too little lands under "
                         f"the wrong parent). Then deploy again.")
    if m := YAML_LINE.match(message):
        return summary, (f"Line {m.group(1)} of {FILE} (or the line above it) is not valid YAML. YAML reads "
                         "the nesting from the indentation: each key must line up with the keys beside it "
                         "(spaces, not tabs). Then deploy again.")
    return summary, f"Correct {FILE} as the message says, then deploy again."


def _file_result(ctx: Context) -> Result | None:
    problem = file_problem(ctx)
    if problem is None:
        return None
    summary, hint = problem
    return Result(False, summary, hint=hint)


def _no_stack(ctx: Context) -> Result:
    """Why there is no stack called app: deployed under another name, a file the CLI refused, or not yet."""
    others = other_stacks(ctx)
    if others:
        return Result(False, f"There is a stack called {others[0]}, but none called {STACK}: the name is the "
                      "last word of `docker stack deploy`.", (f"stacks: {', '.join(others)}",),
                      hint=f"`docker stack rm {others[0]}`, then `docker stack deploy -c {FILE} {STACK}`.")
    return _file_result(ctx) or Result(False, f"There is no stack called {STACK} yet.", hint=ctx.step.hints[0])


def _tasks(ctx: Context, service: dict[str, Any]) -> list[dict[str, Any]]:
    return ctx.running_tasks(service)


def _replicas(service: dict[str, Any]) -> int:
    return int(replicas_of(service, 1))


def _container_ids(tasks: list[dict[str, Any]]) -> set[str]:
    """The hostnames a task's container answers /whoami with: its container id's first 12 digits."""
    return {str(t["Status"].get("ContainerStatus", {}).get("ContainerID", ""))[:12] for t in tasks} - {""}


def ask_front(ctx: Context, node: str, times: int) -> list[str]:
    """TIMES requests to http://NODE:8080/whoami from a throwaway container on the first manager: each
    answer, or wget's error (the script has lines, not `;`: one shell command per line)."""
    script = f"for i in $(seq {times})\ndo wget -q -T 2 -O- http://{node}:{PORT}/whoami 2>&1\ndone"
    done = ctx.manager.run(f"docker run --rm alpine sh -c '{script}'", timeout=60)
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def _who(answers: list[str], times: int, api_ids: set[str], front_ids: set[str]) -> tuple[str, list[str]]:
    """Who answered TIMES requests: 'api', 'front', 'both', or 'none' (some failed, or an unknown host
    answered); and the versions named."""
    found = [m.groups() for a in answers if (m := WHOAMI.match(a))]
    hosts, versions = {h for h, _ in found}, sorted({v for _, v in found})
    if len(found) < times or not hosts <= api_ids | front_ids:
        return "none", versions
    if hosts <= api_ids:
        return "api", versions
    return ("front" if hosts <= front_ids else "both"), versions


# --- the stack as deployed -------------------------------------------------------------------------------


def _deployed(ctx: Context) -> tuple[Result, dict[str, Any]]:
    """The stack app as the step's file makes it, all its tasks running, front answering through the proxy.
    Gives the result and what it saw (services, tasks, front's node)."""
    if not ctx.swarm_active():
        return ctx.not_initialised(), {}
    made = stack_objects(ctx)
    services = made["services"]
    if not services:
        return _no_stack(ctx), {}
    wanted = {"services": (FRONT, API), "networks": (NETWORK,), "secrets": (SECRET,), "configs": (CONFIG,)}
    missing = [f"{kind[:-1]} {name}" for kind, names in wanted.items() for name in names if name not in made[kind]]
    if missing:
        return (_file_result(ctx) or Result(
            False, f"The stack {STACK} has no {', '.join(missing)}: its file is not the step's.",
            (f"the stack has: {', '.join(sorted(n for kind in made.values() for n in kind))}",),
            hint=f"Compare {FILE} with the step's file, then deploy it again (the same command updates the "
                 "stack).")), {}
    front, api = services[FRONT], services[API]
    ipvs = has_ipvs(ctx.manager)
    ports = (front["Spec"].get("EndpointSpec") or {}).get("Ports") or []
    port = next((p for p in ports if p.get("PublishedPort") == PORT), None)
    if port is None:
        return Result(False, f"front does not publish port {PORT}.", hint=f"Under front, the file needs "
                      f"`ports: - {{ target: 80, published: {PORT}, mode: host }}`; deploy again."), {}
    if port.get("PublishMode", "ingress") == "ingress" and not ipvs:
        return Result(False, f"front publishes {PORT} through the routing mesh (ingress), but this machine's "
                      "kernel has no IPVS: the mesh cannot work here.", ("front: publish mode ingress, IPVS: no",),
                      hint=f"Publish in host mode: `- {{ target: 80, published: {PORT}, mode: host }}` under "
                      "front's `ports:`; deploy again."), {}
    mode = (api["Spec"].get("EndpointSpec") or {}).get("Mode", "vip")
    if mode != "dnsrr" and not ipvs:
        return Result(False, "api has a virtual IP (endpoint mode vip), which needs IPVS, and this machine's "
                      "kernel has none: front's requests to `api` would go nowhere.", ("api: endpoint mode vip",),
                      hint="Add `endpoint_mode: dnsrr` under api's `deploy:`; deploy again."), {}
    container = lambda s: s["Spec"]["TaskTemplate"]["ContainerSpec"]  # noqa: E731
    configs = {c.get("ConfigName"): (c.get("File") or {}).get("Name") for c in container(front).get("Configs") or []}
    if configs.get(CONFIG) != CONFIG_TARGET:
        return Result(False, f"front is not given the config proxy as {CONFIG_TARGET}: it would answer by "
                      "itself instead of passing requests to api.", hint="Under front the file needs `configs: "
                      f"- source: proxy target: {CONFIG_TARGET}` (as in the step); deploy again."), {}
    secrets = {s.get("SecretName"): (s.get("File") or {}).get("Name") for s in container(api).get("Secrets") or []}
    if SECRET not in secrets:
        return Result(False, "api is not given the secret api_key.",
                      hint="Under api the file needs `secrets: [api_key]`; deploy again."), {}
    hosts = ctx.hostnames()
    front_tasks, api_tasks = _tasks(ctx, front), _tasks(ctx, api)
    where = lambda ts: ", ".join(sorted(hosts.get(t["NodeID"], "?") for t in ts)) or "none"  # noqa: E731
    evidence = [f"{FRONT}: {image_of(container(front))}, {len(front_tasks)}/{_replicas(front)} running on "
                f"{where(front_tasks)}, port {PORT} published in {port.get('PublishMode', 'ingress')} mode",
                f"{API}: {image_of(container(api))}, {len(api_tasks)}/{_replicas(api)} running on "
                f"{where(api_tasks)}, endpoint mode {mode}",
                f"network {NETWORK}: {made['networks'][NETWORK].get('Driver')}",
                f"config {CONFIG} -> {FRONT} at {CONFIG_TARGET}; secret {SECRET} -> {API} at "
                f"/run/secrets/{secrets[SECRET]}"]
    seen = {"front": front, "api": api, "front_tasks": front_tasks, "api_tasks": api_tasks,
            "front_node": hosts.get(front_tasks[0]["NodeID"], "?") if front_tasks else ""}
    if len(front_tasks) < _replicas(front) or len(api_tasks) < _replicas(api) or not front_tasks:
        return Result(False, "The stack's tasks are starting.", tuple(evidence), pending=True,
                      hint="Wait a moment; `docker stack ps app` shows each task's state."), seen
    if not _secret_mounted(ctx, api_tasks[0], hosts):
        return Result(False, f"api's task has no {SECRET_FILE} yet.", tuple(evidence), pending=True,
                      hint="Wait a moment: the secret is mounted when the task starts."), seen
    return Result(True, f"The stack {STACK} runs: {len(services)} services, its network, secret and config.",
                  tuple(evidence)), seen


def _secret_mounted(ctx: Context, task: dict[str, Any], hosts: dict[str, str]) -> bool:
    """Whether TASK's container has the secret's file (not empty), asked on its node's engine."""
    node = next((n for n in ctx.cluster.nodes if n.name == hosts.get(task["NodeID"])), None)
    cid = task["Status"].get("ContainerStatus", {}).get("ContainerID")
    if node is None or not cid:
        return False
    try:
        code, _ = node.docker.containers.get(cid).exec_run(["sh", "-c", f"test -s {SECRET_FILE}"])
    except Exception:  # the container went away meanwhile: not seen
        return False
    return code == 0


def _through_proxy(ctx: Context, seen: dict[str, Any], times: int) -> tuple[str, list[str], str]:
    """Ask front TIMES: who answered ('api', 'front', 'both', 'none'), the versions, and a line of evidence."""
    answers = ask_front(ctx, seen["front_node"], times)
    who, versions = _who(answers, times, _container_ids(seen["api_tasks"]), _container_ids(seen["front_tasks"]))
    named = sorted({m.group(1) for a in answers if (m := WHOAMI.match(a))})
    failed = sum(not WHOAMI.match(a) for a in answers) + max(0, times - len(answers))
    line = (f"{times} requests to http://{seen['front_node']}:{PORT}/whoami: {failed} failed; "
            f"hostnames {', '.join(named) or 'none'} "
            f"({'api tasks' if who == 'api' else 'front' if who == 'front' else who}), "
            f"versions {', '.join(versions) or 'none'}")
    return who, versions, line


def _not_proxied(who: str, evidence: tuple[str, ...]) -> Result:
    if who == "front" or who == "both":
        return Result(False, "front answers by itself: its nginx does not pass the requests on to api.", evidence,
                      hint=f"front's {CONFIG_TARGET} must be the config proxy (proxy.conf, with `proxy_pass`): "
                      "check proxy.conf and the `configs:` of front, then deploy again.")
    return Result(False, "front does not answer through the proxy yet.", evidence, pending=True,
                  hint="Wait a moment; if it lasts, `docker service logs app_front` shows nginx's error.")


@check("stack_deployed")
def stack_deployed(ctx: Context) -> Result:
    """The stack app deployed from the step's file: services, network, secret, config, tasks running, and
    front passing requests to api."""
    result, seen = _deployed(ctx)
    if not result.passed:
        return result
    who, _, line = _through_proxy(ctx, seen, 3)
    evidence = (*result.evidence, line)
    if who != "api":
        return _not_proxied(who, evidence)
    return Result(True, result.summary + " front passes requests on to api.", evidence)


@per_look
def _proxied(ctx: Context) -> tuple[Result, str]:
    result, seen = _deployed(ctx)
    if not result.passed:
        return result, ""
    front_host = ", ".join(sorted(_container_ids(seen["front_tasks"])))
    who, _, line = _through_proxy(ctx, seen, 6)
    evidence = (f"front's task: hostname {front_host} on {seen['front_node']}", line)
    if who not in ("api", "front"):
        return _not_proxied(who, evidence), ""
    return Result(True, "", evidence), who


@check("stack_proxied", answer=lambda ctx: _proxied(ctx)[1])
def stack_proxied(ctx: Context) -> Result:
    """Asked six times, front answers with api's hostnames: it is a proxy. The learner predicted whose."""
    result, who = _proxied(ctx)
    if not result.passed:
        return result
    if who == "front":
        return _not_proxied(who, result.evidence)
    return judge_answer(ctx, ["api", "api tasks", "the api tasks", "api's tasks", "app_api"], result.evidence)


# --- deploying the changed file --------------------------------------------------------------------------


def _file_says(ctx: Context) -> str:
    done = ctx.manager.run(f"grep -n -e image: -e replicas: {FILE}", timeout=30)
    return "; ".join(" ".join(line.split()) for line in done.stdout.splitlines() if line.strip()) or "nothing"


@per_look
def _updated(ctx: Context) -> tuple[Result, str]:
    result, seen = _deployed(ctx)
    if not seen:  # no stack, or not the step's
        return result, ""
    api, front = seen["api"], seen["front"]
    spec = api["Spec"]["TaskTemplate"]["ContainerSpec"]
    image, replicas = image_of(spec), _replicas(api)
    wrong = ([f"api runs {image}, not {NEW_IMAGE}"] if image != NEW_IMAGE else []) + \
        ([f"api has {replicas} replicas, not {NEW_REPLICAS}"] if replicas != NEW_REPLICAS else [])
    if wrong:
        return (_file_result(ctx) or Result(
            False, "; ".join(wrong) + ": deploy the edited file again.",
            (f"{FILE} says: {_file_says(ctx)}",), hint=ctx.step.hints[0])), ""
    before = image_of((api.get("PreviousSpec") or {}).get("TaskTemplate", {}).get("ContainerSpec", {}))
    status = api.get("UpdateStatus") or {}
    if not before or not status:
        return Result(False, f"api was created with {NEW_IMAGE}, not updated: was the stack removed and "
                      "deployed anew?", hint=f"This step updates the running stack: deploy the edited file "
                      f"again without `docker stack rm`. To start over: `labkit reset {ctx.step.lab}:update`."), ""
    all_api = ctx.api.tasks(filters={"service": api["ID"]})
    running = [t for t in seen["api_tasks"] if image_of(t.get("Spec", {}).get("ContainerSpec", {})) == NEW_IMAGE]
    old = [t for t in all_api if image_of(t.get("Spec", {}).get("ContainerSpec", {})) != NEW_IMAGE
           and t["DesiredState"] != "running"]
    config = api["Spec"].get("UpdateConfig") or {}
    evidence = [f"api: {before} -> {image}, {len(running)}/{replicas} tasks running {image}; "
                f"{len(old)} old task(s) shut down",
                f"api's update: {status.get('State')} (parallelism {config.get('Parallelism', 1)}, "
                f"order {config.get('Order', 'stop-first')})"]
    if status.get("State") in ("paused", "rollback_started", "rollback_completed", "rollback_paused"):
        return Result(False, f"api's update stopped: {status.get('State')}: {status.get('Message', '')}",
                      tuple(evidence), hint="`docker service ps app_api` shows why its new tasks failed."), ""
    if status.get("State") == "updating" or len(running) < replicas:
        return Result(False, f"api is rolling to {NEW_IMAGE}: {len(running)} of {replicas} tasks run it.",
                      tuple(evidence), pending=True, hint="Wait: the update replaces one task at a time."), ""
    if not result.passed:
        return result, ""
    started = timestamp(status.get("StartedAt", "1970-01-01T00:00:00Z"))
    front_tasks = ctx.api.tasks(filters={"service": front["ID"]})
    replaced = any(t["DesiredState"] != "running" and timestamp(t.get("UpdatedAt", t["CreatedAt"])) >= started
                   for t in front_tasks) or any(timestamp(t["CreatedAt"]) >= started for t in seen["front_tasks"])
    current = seen["front_tasks"][0]["ID"][:12] if seen["front_tasks"] else "none"
    evidence.append(f"front: its service was sent again too (updated {front.get('UpdatedAt', '?')[:19]}), "
                    + (f"and its task was replaced (now {current})" if replaced else
                       f"but its task {current} has run since before the deploy"))
    who, versions, line = _through_proxy(ctx, seen, 6)
    evidence.append(line)
    if who != "api" or versions != [NEW_IMAGE.split(":")[1]]:
        return Result(False, "front does not reach the new api tasks yet.", tuple(evidence), pending=True,
                      hint="Wait a moment: front's nginx looks `api` up again every 5 s."), ""
    return Result(True, "", tuple(evidence)), "yes" if replaced else "no"


@check("stack_updated", answer=lambda ctx: _updated(ctx)[1])
def stack_updated(ctx: Context) -> Result:
    """The edited file deployed again: api rolled to nginx:1.25 with 3 replicas, front's task kept, and front
    reaching the new api tasks. The learner predicted whether front's task is replaced."""
    result, replaced = _updated(ctx)
    if not result.passed:
        return result
    return judge_answer(ctx, ["yes", "y"] if replaced == "yes" else ["no", "n"], result.evidence)


# --- a typo ---------------------------------------------------------------------------------------------


@per_look
def _typo(ctx: Context) -> tuple[Result, str]:
    if not ctx.swarm_active():
        return ctx.not_initialised(), ""
    services = stack_objects(ctx)["services"]
    if API not in services:
        return _no_stack(ctx), ""
    api = services[API]
    image, replicas = image_of(api["Spec"]["TaskTemplate"]["ContainerSpec"]), _replicas(api)
    changed = "no" if (image, replicas) == (NEW_IMAGE, NEW_REPLICAS) else "yes"
    evidence = [f"api: {replicas} replicas of {image}"]
    problem = file_problem(ctx)
    if problem is None:
        return Result(False, f"{FILE} has no error now: this step deploys a file with a typo.", tuple(evidence),
                      hint=ctx.step.hints[0]), changed
    summary, hint = problem
    if summary.startswith("There is no"):
        return Result(False, summary, hint=hint), changed
    evidence.insert(0, f"docker's check of {FILE}: {summary.split(': ', 1)[1]}")
    evidence.append(f"what it suggests: {hint}")
    return Result(True, "", tuple(evidence)), changed


@check("stack_typo", answer=lambda ctx: _typo(ctx)[1])
def stack_typo(ctx: Context) -> Result:
    """A deploy of a file with an error is refused whole: the stack keeps its spec. The learner predicted it."""
    result, changed = _typo(ctx)
    if not result.passed:
        return result
    return judge_answer(ctx, ["yes", "y"] if changed == "yes" else ["no", "n", "nothing"], result.evidence)


# --- removing it ----------------------------------------------------------------------------------------


@check("stack_removed")
def stack_removed(ctx: Context) -> Result:
    """Nothing of the stack app remains: no service, network, secret or config labelled with it on the
    managers, and no container of it or its network on any node."""
    if not ctx.swarm_active():
        return ctx.not_initialised()
    made = stack_objects(ctx)
    left = {kind: sorted(names) for kind, names in made.items() if names}
    per_node: list[str] = []
    lingering = False
    for node in ctx.cluster.nodes:
        containers = node.docker.containers.list(filters={"label": f"{NAMESPACE}={STACK}"}, ignore_removed=True)
        network = any(n.name == NETWORK for n in node.docker.networks.list(names=[NETWORK]))
        lingering |= bool(containers) or network
        per_node.append(f"{node.name}: {len(containers)} container(s) of the stack"
                        + (f", network {NETWORK} still listed" if network else ""))
    kept = "; ".join(f"{kind[:-1]} {', '.join(names)}" for kind, names in left.items())
    evidence = (f"left on the managers: {kept or 'nothing labelled ' + NAMESPACE + '=' + STACK}", *per_node)
    if "services" in left:
        return Result(False, f"The stack {STACK} is still there.", evidence, hint=ctx.step.hints[0])
    if left.keys() & {"secrets", "configs"}:
        return Result(False, f"The services are gone, but the stack's {' and '.join(k[:-1] for k in left)} "
                      "remain: `docker service rm` removes services only.", evidence,
                      hint=f"`docker stack rm {STACK}` removes everything the stack made.")
    if left or lingering:
        return Result(False, f"The stack {STACK} is being removed: its containers and network are going.",
                      evidence, pending=True, hint="Wait a few seconds.")
    return Result(True, f"Nothing of the stack {STACK} remains: no service, network, secret, config or "
                  "container, on any node.", evidence)
