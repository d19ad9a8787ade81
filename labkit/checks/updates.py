"""Checks of updates without downtime: the web service, the probe that requests it all the time,
stop-first and start-first updates measured by the probe, and rollback."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import docker.errors

from labkit.checks.base import Context, Result, check, image_of, judge_answer, replicas_of, timestamp

WEB, PROBE, NETWORK = "web", "probe", "front"
VERSION = re.compile(r"nginx/(\d+\.\d+)")






def _image(service: dict[str, Any]) -> str:
    return image_of(service["Spec"]["TaskTemplate"]["ContainerSpec"])




def _task_images(tasks: list[dict[str, Any]]) -> list[str]:
    return sorted(str(t["Spec"]["ContainerSpec"]["Image"]).split("@")[0] for t in tasks)


def _web(ctx: Context) -> tuple[dict[str, Any] | None, Result | None]:
    return ctx.required_service(WEB)


@check("web_service")
def web_service(ctx: Context) -> Result:
    """web: nginx:1.24, 3 replicas, on the overlay network front, found by DNS round robin."""
    service, failure = _web(ctx)
    if failure:
        return failure
    assert service is not None
    networks = {n["Target"] for n in service["Spec"]["TaskTemplate"].get("Networks") or []}
    front = next((n for n in ctx.api.networks(names=[NETWORK]) if n["Name"] == NETWORK), None)
    if front is None or front["Driver"] != "overlay":
        return Result(False, "There is no overlay network called front.",
                      hint="`docker network create --driver overlay front` on manager1.")
    if front["Id"] not in networks:
        return Result(False, "web is not attached to the network front.",
                      hint="Remove web and create it again with `--network front`.")
    mode = service["Spec"].get("EndpointSpec", {}).get("Mode", "vip")
    replicas = replicas_of(service)
    if replicas != 3:
        return Result(False, f"web asks for {replicas} replica(s); this lab uses 3.",
                      hint="`docker service update --replicas 3 web`.")
    running = ctx.running_tasks(service)
    evidence = (f"web: {_image(service)}, endpoint mode {mode}, network front",
                f"{len(running)}/3 tasks running")
    if _image(service) != "nginx:1.24":
        return Result(False, f"web runs {_image(service)}; this lab starts from nginx:1.24.", evidence,
                      hint="`docker service update --image nginx:1.24 web`.")
    if mode != "dnsrr":
        return Result(False, "web uses a virtual IP; this lab uses DNS round robin (`--endpoint-mode dnsrr`).",
                      evidence, hint="Remove web and create it again with `--endpoint-mode dnsrr`.")
    if len(running) < 3:
        return Result(False, "web's tasks are starting.", evidence, pending=True, hint="Wait a moment.")
    return Result(True, "web runs 3 tasks of nginx:1.24 on the overlay network front.", evidence)


@dataclass(frozen=True)
class Probe:
    """What the probe saw: one entry per request, (time, version or None for a failure)."""

    answers: tuple[tuple[datetime, str | None], ...]

    def between(self, start: datetime, end: datetime) -> Probe:
        return Probe(tuple(a for a in self.answers if start <= a[0] <= end))

    @property
    def failed(self) -> int:
        return sum(1 for _, version in self.answers if version is None)

    def by_version(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, version in self.answers:
            if version:
                counts[version] = counts.get(version, 0) + 1
        return counts

    def describe(self) -> str:
        versions = ", ".join(f"{n} by nginx/{v}" for v, n in sorted(self.by_version().items())) or "none answered"
        return f"{len(self.answers)} requests: {self.failed} failed; answered {versions}"


def parse_probe(lines: list[str]) -> Probe:
    """Probe log lines ('2026-11-25T13:45:01.123Z probe.1.xyz@worker1 | a1b2c3 nginx/1.25' or '... | FAIL')."""
    answers = []
    for line in lines:
        stamp, _, rest = line.partition(" ")
        try:
            when = timestamp(stamp)
        except ValueError:
            continue
        text = rest.rpartition("|")[2].strip() if "|" in rest else rest.strip()
        if text == "FAIL":
            answers.append((when, None))
        elif m := VERSION.search(text):
            answers.append((when, m.group(1)))
    return Probe(tuple(answers))


def read_probe(ctx: Context, since: datetime | None = None) -> Probe | None:
    """The probe's requests, from its service logs (None when there is no probe)."""
    service = ctx.service(PROBE)
    if service is None:
        return None
    kwargs: dict[str, Any] = {"stdout": True, "stderr": True, "timestamps": True}
    if since is not None:
        kwargs["since"] = int(since.timestamp()) - 1
    try:
        raw = b"".join(ctx.api.service_logs(service["ID"], **kwargs))
    except docker.errors.APIError:
        return Probe(())
    return parse_probe(raw.decode(errors="replace").splitlines())


@check("probe_running")
def probe_running(ctx: Context) -> Result:
    """The probe requests web all the time, and web answers it."""
    _, failure = _web(ctx)
    if failure:
        return failure
    probe = read_probe(ctx)
    if probe is None:
        return Result(False, "There is no service called probe yet.", hint=ctx.step.hints[0])
    recent = probe.answers[-10:]
    evidence = (Probe(tuple(recent)).describe(),)
    if not recent:
        return Result(False, "The probe has not logged a request yet.", pending=True,
                      hint="`docker service logs probe` shows what it sees.")
    if all(version is None for _, version in recent):
        return Result(False, "The probe's requests fail.", evidence, pending=True,
                      hint="Is the probe on the network front? It asks `http://web/whoami`.")
    return Result(True, "The probe is requesting web, and web answers.", evidence)


def _update_window(service: dict[str, Any]) -> tuple[datetime, datetime] | None:
    status = service.get("UpdateStatus") or {}
    if "StartedAt" not in status:
        return None
    end = timestamp(status["CompletedAt"]) if status.get("CompletedAt") else datetime.now().astimezone()
    return timestamp(status["StartedAt"]), end + timedelta(seconds=2)


def _measured_update(ctx: Context, image: str, order: str) -> tuple[Result, Probe | None]:
    """web updated to IMAGE with ORDER (stop-first or start-first), and what the probe saw meanwhile."""
    service, failure = _web(ctx)
    if failure:
        return failure, None
    assert service is not None
    config = service["Spec"].get("UpdateConfig") or {}
    actual_order = config.get("Order", "stop-first")
    running = ctx.running_tasks(service)
    state = (service.get("UpdateStatus") or {}).get("State", "")
    evidence = [f"web: {_image(service)}, update order {actual_order}, parallelism {config.get('Parallelism', 1)}",
                f"update: {state or 'none yet'}; running: {', '.join(_task_images(running)) or 'none'}"]
    if _image(service) != image:
        return Result(False, f"web runs {_image(service)}, not {image} yet.", tuple(evidence),
                      hint=ctx.step.hints[0]), None
    if actual_order != order:
        return Result(False, f"web was updated with order {actual_order}; this step uses {order}.",
                      tuple(evidence), hint=ctx.step.hints[0]), None
    if state == "paused":
        message = (service.get("UpdateStatus") or {}).get("Message", "")
        return Result(False, "The update is paused: a new task failed, and Swarm's default failure action is "
                      "to pause.", (*evidence, f"Swarm says: {message}"), hint="`docker service ps web` shows "
                      "the failed task's error; `docker service rollback web` returns to the last spec."), None
    if state in ("updating", "") or _task_images(running) != [image] * 3:
        return Result(False, "The update is rolling.", tuple(evidence), pending=True, hint="Watch the map."), None
    window = _update_window(service)
    probe = read_probe(ctx, window[0] if window else None)
    if probe is None or window is None:
        return Result(False, "There is no probe to measure the update.", tuple(evidence),
                      hint="Create the probe first (previous step)."), None
    seen = probe.between(*window)
    evidence.append(f"while it rolled: {seen.describe()}")
    return Result(True, f"web updated to {image} ({order}).", tuple(evidence)), seen


def _failures_answer(image: str, order: str) -> Any:
    def answer(ctx: Context) -> str:
        _, seen = _measured_update(ctx, image, order)
        return "" if seen is None else str(seen.failed)

    return answer


@check("stop_first_update", answer=_failures_answer("nginx:1.25", "stop-first"))
def stop_first_update(ctx: Context) -> Result:
    """All tasks replaced at once, old ones stopped first: the probe counts the failed requests."""
    result, seen = _measured_update(ctx, "nginx:1.25", "stop-first")
    if seen is None:
        return result
    explain = {"0": f"The probe saw {seen.failed} failed requests: with the old tasks stopped before the new "
                    "ones answered, for a moment no task served web."} if seen.failed else {}
    accepted = [str(seen.failed), f"{seen.failed} requests"] + (["some", "yes", "a few"] if seen.failed else ["none"])
    return judge_answer(ctx, accepted, result.evidence, explain)


@check("start_first_update", answer=_failures_answer("nginx:1.24", "start-first"))
def start_first_update(ctx: Context) -> Result:
    """Each new task started before its old one stopped: the probe counts the failed requests (none)."""
    result, seen = _measured_update(ctx, "nginx:1.24", "start-first")
    if seen is None:
        return result
    accepted = [str(seen.failed), f"{seen.failed} requests"] + (["none", "no"] if not seen.failed else ["some"])
    return judge_answer(ctx, accepted, result.evidence)


def _current_version(ctx: Context) -> str:
    service = ctx.service(WEB)
    return _image(service).partition(":")[2] if service else ""


@check("rolled_back", answer=_current_version)
def rolled_back(ctx: Context) -> Result:
    """`docker service rollback`: web returns to its previous spec (nginx:1.25, the one before the last update)."""
    service, failure = _web(ctx)
    if failure:
        return failure
    assert service is not None
    state = (service.get("UpdateStatus") or {}).get("State", "")
    running = ctx.running_tasks(service)
    evidence = (f"web: {_image(service)}, update state {state or 'none'}",
                f"running: {', '.join(_task_images(running)) or 'none'}")
    if not state.startswith("rollback"):
        return Result(False, "web has not been rolled back.", evidence, hint=ctx.step.hints[0])
    if state != "rollback_completed" or len(running) < 3 or _task_images(running) != [_image(service)] * 3:
        return Result(False, "The rollback is rolling.", evidence, pending=True, hint="Watch the map.")
    version = _image(service).partition(":")[2]
    return judge_answer(ctx, [version, f"nginx:{version}", f"nginx/{version}"], evidence)


@check("blue_green")
def blue_green(ctx: Context) -> Result:
    """green (the other version, kept ready under the same name) takes all of web's traffic in one command."""
    service, failure = _web(ctx)
    if failure:
        return failure
    assert service is not None
    green = ctx.service("green")
    if green is None:
        return Result(False, "There is no service called green yet.", hint=ctx.step.hints[0])
    front = next((n for n in ctx.api.networks(names=[NETWORK]) if n["Name"] == NETWORK), None)
    aliases = [a for n in green["Spec"]["TaskTemplate"].get("Networks") or []
               if front is not None and n["Target"] == front["Id"] for a in n.get("Aliases") or []]
    if WEB not in aliases:
        return Result(False, "green does not answer to the name web on the network front.",
                      hint="Create green with `--network name=front,alias=web`.")
    replicas = {WEB: replicas_of(service), "green": replicas_of(green)}
    running = {WEB: ctx.running_tasks(service), "green": ctx.running_tasks(green)}
    evidence = [f"web (blue, {_image(service)}): {replicas[WEB]} replicas, {len(running[WEB])} running",
                f"green ({_image(green)}): {replicas['green']} replicas, {len(running['green'])} running"]
    if replicas["green"] != 3 or replicas[WEB] != 0:
        return Result(False, "The traffic has not been switched to green.", tuple(evidence),
                      hint="One command: `docker service scale green=3 web=0`.")
    if running[WEB] or len(running["green"]) < 3:
        return Result(False, "The switch is happening.", tuple(evidence), pending=True, hint="Watch the map.")
    probe = read_probe(ctx, datetime.now().astimezone() - timedelta(seconds=4))
    recent = probe.between(datetime.now().astimezone() - timedelta(seconds=3), datetime.now().astimezone()) \
        if probe else None
    if recent is None or not recent.answers:
        return Result(False, "The probe has not answered since the switch.", tuple(evidence), pending=True,
                      hint="`docker service logs --tail 5 probe`.")
    evidence.append(f"the probe, last 3 s: {recent.describe()}")
    green_version = _image(green).partition(":")[2]
    if set(recent.by_version()) != {green_version} or recent.failed:
        return Result(False, "The probe still gets other answers.", tuple(evidence), pending=True,
                      hint="Wait a few seconds: the name web now answers with green's tasks only.")
    return Result(True, "All of web's traffic goes to green, switched in one command.", tuple(evidence))
