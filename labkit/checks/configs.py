"""Checks of swarm configs (labs/16-configs.toml): configs stored in the managers' Raft log and shown
by inspect (they are not secret), mounted as files in the tasks of nginx (a page and a server config),
refused removal while in use, never changed in place, and rolled out as a new config swapped into the
service, which replaces its tasks one by one."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import docker.errors

from labkit.checks.base import Context, Result, check, judge_answer, replicas_of
from labkit.checks.networks import has_ipvs

NGINX_CONF = "/etc/nginx/nginx.conf"  # the only file this lab's nginx reads its configuration from
INDEX = "/usr/share/nginx/html/index.html"  # the page nginx serves at /


def _configs(ctx: Context) -> dict[str, dict[str, Any]]:
    """The swarm's configs by name, as the first manager lists them (their data included)."""
    return {c["Spec"]["Name"]: c for c in ctx.api.configs()}


def _data(config: dict[str, Any]) -> str:
    """A config's content as text (the API gives it in base64)."""
    try:
        return base64.b64decode(config["Spec"].get("Data") or "").decode(errors="replace")
    except (binascii.Error, ValueError):
        return ""


def _first_line(text: str) -> str:
    line = next((x.strip() for x in text.splitlines() if x.strip()), "")
    return line if len(line) <= 60 else line[:57] + "..."


def _mounts(spec: dict[str, Any]) -> dict[str, str]:
    """Config name -> the file it is mounted at, in a task template or a task's spec."""
    return {c.get("ConfigName", "?"): (c.get("File") or {}).get("Name", "")
            for c in spec.get("ContainerSpec", {}).get("Configs") or []}


def _listing(mounts: dict[str, str]) -> str:
    return ", ".join(f"{c} at {_at(t)}" for c, t in sorted(mounts.items())) or "no config"


def _at(target: str) -> str:
    """Where a mount's target lands: a relative name (no `target=`) is at the container's root."""
    return target if target.startswith("/") else "/" + target


def _wanted(service: dict[str, Any]) -> int:
    return int(replicas_of(service, 1))


END = "== labkit: wget exit code"  # a line no page of this lab holds


def _get(container: Any, paths: tuple[str, ...]) -> list[str | None]:
    """What nginx in CONTAINER answers at each of PATHS, asked from inside the container in one exec (an
    exec costs 40 ms, up to 0.4 s while engines start); None where it does not answer.
    (No -T: the nginx image's busybox wget crashes with it.)"""
    script = "; ".join(f"wget -q -O- http://127.0.0.1{path}; r=$?; echo; echo '{END}' $r" for path in paths)
    try:
        _, out = container.exec_run(["sh", "-c", script])
    except docker.errors.APIError:
        return [None] * len(paths)
    answers: list[str | None] = []
    body: list[str] = []
    for line in (out or b"").decode(errors="replace").splitlines():
        if line.startswith(END):
            answers.append("\n".join(body).strip() if line[len(END):].strip() == "0" else None)
            body = []
        else:
            body.append(line)
    return (answers + [None] * len(paths))[:len(paths)]


def _task_container(ctx: Context, task: dict[str, Any], hosts: dict[str, str]) -> Any:
    cid = (task["Status"].get("ContainerStatus") or {}).get("ContainerID")
    try:
        return ctx.cluster[hosts.get(task.get("NodeID", ""), "?")].docker.containers.get(cid) if cid else None
    except Exception:  # the node or the container is gone: the task is being replaced
        return None


def _probe(ctx: Context, tasks: list[dict[str, Any]]) -> list[tuple[str, str, str | None, str | None]]:
    """Each running task: (short id, node, its page at /, its /whoami)."""
    hosts = ctx.hostnames()
    found = []
    for task in sorted(tasks, key=lambda t: t.get("Slot", 0)):
        container = _task_container(ctx, task, hosts)
        page, whoami = _get(container, ("/", "/whoami")) if container else (None, None)
        found.append((task["ID"][:12], hosts.get(task.get("NodeID", ""), "?"), page, whoami))
    return found


def _failures(ctx: Context, service: dict[str, Any]) -> list[str]:
    """Errors of SERVICE's failed tasks that ran its current configs (older tasks' errors are history)."""
    mounts = _mounts(service["Spec"]["TaskTemplate"])
    hosts = ctx.hostnames()
    return [f"task {t['ID'][:12]} on {hosts.get(t.get('NodeID', ''), '?')}: {t['Status'].get('Err') or 'failed'}"
            for t in ctx.api.tasks(filters={"service": service["ID"]})
            if t["Status"]["State"] in ("failed", "rejected") and _mounts(t.get("Spec", {})) == mounts]


def _server_fix(ctx: Context, service: dict[str, Any]) -> str:
    """How to replace SERVICE's server config: a new version of it (the next free name), swapped in."""
    name = service["Spec"]["Name"]
    current = next((c for c, t in _mounts(service["Spec"]["TaskTemplate"]).items() if _at(t) == NGINX_CONF),
                   "site-v1")
    stem = current.rsplit("-v", 1)[0] + "-v"
    taken = [int(n[len(stem):]) for n in _configs(ctx) if n.startswith(stem) and n[len(stem):].isdigit()]
    new = f"{stem}{max(taken, default=1) + 1}"
    return (f"store the fixed site.conf as a new config, `docker config create {new} site.conf`, and swap it in: "
            f"`docker service update --config-rm {current} --config-add source={new},target={NGINX_CONF} {name}`.")


def _converging(ctx: Context, service: dict[str, Any], running: list[dict[str, Any]]) -> Result | None:
    """Why SERVICE's tasks are not all running yet: its new tasks fail (nginx refused its configuration; not
    pending), or they are still starting or being replaced (pending). None once all run."""
    name = service["Spec"]["Name"]
    status = service.get("UpdateStatus") or {}
    if len(running) >= _wanted(service) and status.get("State") not in ("updating", "paused"):
        return None
    failures = _failures(ctx, service)
    evidence = (f"{name}: {len(running)}/{_wanted(service)} tasks running", *failures[:3])
    if failures and (status.get("State") == "paused" or not running):
        paused = " (so its update is paused)" if status.get("State") == "paused" else ""
        return Result(False, f"{name}'s new tasks stop as soon as they start{paused}: nginx refused its "
                      "configuration.", evidence,
                      hint=f"`docker service logs {name}` shows nginx's complaint. Fix it and "
                      f"{_server_fix(ctx, service)}")
    if status.get("State") == "paused":
        return Result(False, f"{name}'s update is paused: a new task failed.",
                      (f"update status: {status.get('Message', 'paused')}", *evidence),
                      hint=f"`docker service ps {name} --no-trunc` shows the error; `docker service logs {name}` "
                      "what nginx said.")
    return Result(False, f"{name}'s tasks are starting.", evidence, pending=True,
                  hint="Wait a moment: each task starts with the configs it mounts.")


# --- create ------------------------------------------------------------------------------------------


def _shown_answer(ctx: Context) -> str:
    configs = _configs(ctx)
    names = [str(n) for n in ctx.params.get("configs", ["site-v1", "page-v1"])]
    return "yes" if any(configs.get(n, {}).get("Spec", {}).get("Data") for n in names) else "no"


@check("configs_stored", answer=_shown_answer)
def configs_stored(ctx: Context) -> Result:
    """The step's configs exist in the swarm, with content; the learner predicted whether inspect shows it."""
    if not ctx.swarm_active():
        return ctx.not_initialised()
    names = [str(n) for n in ctx.params.get("configs", ["site-v1", "page-v1"])]
    configs = _configs(ctx)
    missing = [n for n in names if n not in configs]
    if missing:
        others = sorted(set(configs) - set(names))
        return Result(False, f"There is no config called {' or '.join(missing)} yet.",
                      (f"configs in the swarm: {', '.join(sorted(configs)) or 'none'}",),
                      hint=ctx.step.hints[1] if others and len(ctx.step.hints) > 1 else ctx.step.hints[0])
    evidence = []
    for name in names:
        text = _data(configs[name])
        evidence.append(f"{name}: {len(text.encode())} bytes, {len(text.splitlines())} line(s), "
                        f"shown by the API as it was given: {_first_line(text)!r}")
    return judge_answer(ctx, ["yes", "y"] if _shown_answer(ctx) == "yes" else ["no", "n"], evidence)


# --- serve -------------------------------------------------------------------------------------------


def _versions(config: str, mounts: dict[str, str]) -> list[str]:
    """The configs in MOUNTS that are CONFIG or another version of it (site-v1: site-v2, site-v3, ...)."""
    stem = config.rsplit("-v", 1)[0] + "-v"
    return sorted(n for n in mounts if n == config or n.startswith(stem))


def _mount_problem(ctx: Context, name: str, mounts: dict[str, str], config: str, target: str) -> Result | None:
    """Why service NAME does not mount CONFIG (or a later version of it) at TARGET, in its own words for
    each mistake; None when it does."""
    versions = _versions(config, mounts)
    if not versions:
        return Result(False, f"{name} does not use the config {config}.",
                      (f"{name} mounts: {_listing(mounts)}",),
                      hint=ctx.step.hints[0])
    if any(_at(mounts[v]) == target for v in versions):
        return None
    config = versions[-1]
    at = _at(mounts[config])
    reads = "reads its configuration from" if target == NGINX_CONF else "serves its page at / from"
    return Result(False, f"{name} mounts {config} at {at}, a file nginx never reads: nginx {reads} {target}.",
                  (f"{config} mounted at {at}" + (" (no target=: a config lands at /NAME)" if at == f"/{config}"
                                                 else ""),),
                  hint=f"Mount it where nginx reads it: `docker service update --config-rm {config} "
                  f"--config-add source={config},target={target} {name}`.")


def _port_problem(ctx: Context, service: dict[str, Any], port: int) -> Result | None:
    name = service["Spec"]["Name"]
    ports = (service["Spec"].get("EndpointSpec") or {}).get("Ports") or []
    found = next((p for p in ports if p.get("PublishedPort") == port), None)
    if found is None:
        return Result(False, f"{name} does not publish port {port}.", hint=ctx.step.hints[0])
    if found.get("PublishMode", "ingress") == "ingress" and not has_ipvs(ctx.manager):
        return Result(False, f"{name} publishes {port} through the routing mesh, but this machine's kernel has no "
                      "IPVS: the mesh cannot work here.", (f"port {port}: publish mode ingress, IPVS: no",),
                      hint=f"Publish in host mode instead: `docker service update --publish-rm {port} "
                      f"--publish-add mode=host,target=80,published={port} {name}`.")
    return None


@check("configs_served")
def configs_served(ctx: Context) -> Result:
    """nginx runs with the page and the server config mounted where it reads them: every task serves the
    page config's content at / and still answers /whoami (the learner's server block kept it)."""
    name = str(ctx.params.get("service", "web"))
    wanted: dict[str, str] = {str(k): str(v) for k, v in ctx.params.get("configs", {}).items()}
    service, failure = ctx.required_service(name)
    if service is None:
        return failure  # type: ignore[return-value]
    configs = _configs(ctx)
    mounts = {c: t for c, t in _mounts(service["Spec"]["TaskTemplate"]).items() if c in configs}
    missing = [c for c in wanted if c not in configs and not _versions(c, mounts)]
    if missing:
        return Result(False, f"There is no config called {' or '.join(missing)}.",
                      (f"configs in the swarm: {', '.join(sorted(configs)) or 'none'}",),
                      hint="Create it first (the step before: `docker config create`).")
    for config, target in wanted.items():
        problem = _mount_problem(ctx, name, mounts, config, target)
        if problem:
            return problem
    port = _port_problem(ctx, service, int(ctx.params.get("port", 8080)))
    if port:
        return port
    running = ctx.running_tasks(service)
    waiting = _converging(ctx, service, running)
    if waiting:
        return waiting
    page_config = next((c for c, t in mounts.items() if _at(t) == INDEX and c in configs), "")
    page = _data(configs[page_config]).strip() if page_config else None
    seen = _probe(ctx, running)
    evidence = [f"{name} mounts {_listing(mounts)}"]
    evidence += [f"task {tid} on {node}: / {_first_line(p) if p is not None else 'no answer'!r}, "
                 f"/whoami {w if w is not None else 'no answer'!r}" for tid, node, p, w in seen]
    if any(p is None for _, _, p, _ in seen):
        return Result(False, f"nginx in some of {name}'s tasks does not answer / yet.", tuple(evidence),
                      pending=True, hint="Wait a moment; if it lasts, `docker service logs web` tells why.")
    if page is not None and any(p != page for _, _, p, _ in seen):
        return Result(False, f"Some of {name}'s tasks do not serve {page_config} yet.", tuple(evidence),
                      pending=True, hint="Wait a moment: tasks are being replaced.")
    if any(w is None for *_, w in seen):
        return Result(False, f"{name} serves your page, but not /whoami: the server block you wrote replaced the "
                      "image's, and left it out.", tuple(evidence),
                      hint="Put `location = /whoami` back in site.conf (the lab's checks ask it which task "
                      f"answered), then {_server_fix(ctx, service)}")
    return Result(True, f"All {len(seen)} tasks of {name} serve your page with your server config.", tuple(evidence))


# --- in-use ------------------------------------------------------------------------------------------


def _users(ctx: Context, config: str) -> list[str]:
    return sorted(s["Spec"]["Name"] for s in ctx.api.services()
                  if config in _mounts(s["Spec"]["TaskTemplate"]))


@check("config_in_use", answer=lambda ctx: "no" if str(ctx.params.get("config", "page-v1")) in _configs(ctx) else "yes")
def config_in_use(ctx: Context) -> Result:
    """A config a service uses cannot be removed; the learner predicted whether `docker config rm` does it."""
    name, config = str(ctx.params.get("service", "web")), str(ctx.params.get("config", "page-v1"))
    service, failure = ctx.required_service(name)
    if service is None:
        return failure  # type: ignore[return-value]
    if config not in _configs(ctx):
        return Result(False, f"{config} is gone: {name} no longer used it when it was removed.",
                      hint=f"Create it again (`echo '<h1>Hello from page v1</h1>' | docker config create {config} -`) "
                      f"and mount it in {name} again: `docker service update --config-add "
                      f"source={config},target={INDEX} {name}` (after --config-rm of what is there now).")
    users = _users(ctx, config)
    if name not in users:
        return Result(False, f"{name} does not use {config}: then nothing stops its removal.",
                      (f"{config} used by: {', '.join(users) or 'no service'}",), hint=ctx.step.hints[0])
    evidence = (f"{config} still exists", f"{config} used by: {', '.join(users)}")
    return judge_answer(ctx, ["no", "n"], evidence)


# --- new-page ----------------------------------------------------------------------------------------


@check("config_versioned")
def config_versioned(ctx: Context) -> Result:
    """A new version of a config is a new config, under a new name, with the new content."""
    if not ctx.swarm_active():
        return ctx.not_initialised()
    old, new = str(ctx.params.get("old", "page-v1")), str(ctx.params.get("new", "page-v2"))
    configs = _configs(ctx)
    if new not in configs:
        return Result(False, f"There is no config called {new} yet.",
                      (f"configs in the swarm: {', '.join(sorted(configs)) or 'none'}",), hint=ctx.step.hints[0])
    text = _data(configs[new]).strip()
    evidence = [f"{new}: {_first_line(text)!r} (created {configs[new].get('CreatedAt', '?')[:19]})"]
    if old in configs:
        before = _data(configs[old]).strip()
        evidence.insert(0, f"{old}: {_first_line(before)!r}, unchanged since {configs[old].get('UpdatedAt', '?')[:19]}")
        if before == text:
            return Result(False, f"{new} holds the same page as {old}: swapping it in would change nothing.",
                          tuple(evidence), hint=f"`docker config rm {new}`, then create it again with the new "
                          f"text: {ctx.step.hints[0].removeprefix('On manager1: ')}")
    return Result(True, f"{new} is a new config beside {old}, with the new page.", tuple(evidence))


# --- roll --------------------------------------------------------------------------------------------


def _rolled(ctx: Context) -> tuple[Result, list[str]]:
    """Whether the service runs only tasks that mount the new config at the target and serve it; with the
    old tasks (shut down) as evidence."""
    p = ctx.params
    name, old, new = str(p.get("service", "web")), str(p.get("old", "page-v1")), str(p.get("new", "page-v2"))
    target = str(p.get("target", INDEX))
    service, failure = ctx.required_service(name)
    if service is None:
        return failure, []  # type: ignore[return-value]
    configs = _configs(ctx)
    if new not in configs:
        return Result(False, f"There is no config called {new}.", hint="Create it first (the step before)."), []
    mounts = _mounts(service["Spec"]["TaskTemplate"])
    if new not in mounts:
        still = f" It still mounts {old}." if old in mounts else ""
        return Result(False, f"{name} does not use {new} yet.{still}", (f"{name} mounts: {_listing(mounts)}",),
                      hint=ctx.step.hints[0]), []
    if _at(mounts[new]) != target:
        return Result(False, f"{name} mounts {new} at {_at(mounts[new])}, a file nginx never reads: nginx serves "
                      f"its page from {target}" + (", which no config covers now: your tasks serve the image's "
                                                   "own page." if target not in map(_at, mounts.values()) else "."),
                      (f"{new} mounted at {_at(mounts[new])}" + (" (no target=: a config lands at /NAME)"
                                                                 if _at(mounts[new]) == f"/{new}" else ""),),
                      hint=f"`docker service update --config-rm {new} --config-add source={new},target={target} "
                      f"{name}`."), []
    running = ctx.running_tasks(service)
    waiting = _converging(ctx, service, running)
    if waiting:
        return waiting, []
    hosts = ctx.hostnames()
    page = _data(configs[new]).strip()
    seen = _probe(ctx, running)
    evidence = [f"task {tid} on {node}, mounting {new}: / {_first_line(p) if p is not None else 'no answer'!r}"
                for tid, node, p, _ in seen]
    if any(p != page for _, _, p, _ in seen):
        return Result(False, f"Some of {name}'s tasks do not serve {new} yet.", tuple(evidence), pending=True,
                      hint="Wait a moment: the tasks are replaced one by one."), []
    replaced, kept = _replaced(ctx, service, running, old)
    evidence += [f"old task {t['ID'][:12]} (mounting {old}) on {hosts.get(t.get('NodeID', ''), '?')}: "
                 f"{t['Status']['State']} at {t['Status'].get('Timestamp', '?')[11:19]}"
                 for t in sorted(replaced, key=lambda t: t.get("Slot", 0))]
    return Result(True, f"All {len(seen)} tasks of {name} serve {new}.", tuple(evidence)), \
        ["yes"] if kept else ["no", "n"]


def _replaced(ctx: Context, service: dict[str, Any], running: list[dict[str, Any]],
              old: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """SERVICE's tasks shut down that mounted config OLD, and those of them still RUNNING (a task's spec
    never changes: always none)."""
    replaced = [t for t in ctx.api.tasks(filters={"service": service["ID"]})
                if t["DesiredState"] == "shutdown" and old in _mounts(t.get("Spec", {}))]
    running_ids = {t["ID"] for t in running}
    return replaced, [t for t in replaced if t["ID"] in running_ids]


def _kept_answer(ctx: Context) -> str:
    """The question's truth: whether a task that mounted the old config runs on ('yes'), read from the tasks
    alone (the check itself asks every task's nginx)."""
    service = ctx.service(str(ctx.params.get("service", "web")))
    if service is None:
        return "no"
    return "yes" if _replaced(ctx, service, ctx.running_tasks(service), str(ctx.params.get("old", "page-v1")))[1] \
        else "no"


@check("config_rolled", answer=_kept_answer)
def config_rolled(ctx: Context) -> Result:
    """The service swapped the old config for the new one at the same target: new tasks (rolling update)
    serve the new page; the learner predicted whether the tasks stay the same."""
    result, accepted = _rolled(ctx)
    if not result.passed:
        return result
    return judge_answer(ctx, accepted, result.evidence)


# --- clean -------------------------------------------------------------------------------------------


@check("configs_removed")
def configs_removed(ctx: Context) -> Result:
    """The service and the lab's configs are gone."""
    if not ctx.swarm_active():
        return ctx.not_initialised()
    name = str(ctx.params.get("service", "web"))
    names = [str(n) for n in ctx.params.get("configs", ["site-v1", "page-v1", "page-v2"])]
    present = {n: "" for n in _configs(ctx)}
    left = sorted({v for n in names for v in _versions(n, present)})  # site-v2, ... made along the way, too
    if ctx.service(name) is not None:
        return Result(False, f"The service {name} still runs.",
                      (f"configs left: {', '.join(left) or 'none'}",), hint=ctx.step.hints[0])
    if left:
        return Result(False, f"The config(s) {', '.join(left)} are still there.", (f"{name}: removed",),
                      hint=f"`docker config rm {' '.join(left)}` (a config refused while {name} used it can go "
                      "now that the service is removed).")
    return Result(True, f"{name} and its configs are removed.",
                  (f"{name}: removed", f"configs removed: {', '.join(names)}"))
