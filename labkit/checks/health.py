"""Checks of health checks: a service whose tasks report healthy, an update to a release whose health
check fails (rolled back by Swarm itself), and a task that turns unhealthy (replaced)."""

from __future__ import annotations

from typing import Any

from labkit.checks.base import Context, Result, check, image_of, judge_answer, replicas_of
from labkit.swarm import task_containers

WEB = "web"


def _web(ctx: Context) -> tuple[dict[str, Any] | None, Result | None]:
    return ctx.required_service(WEB)




def _tasks(ctx: Context, service: dict[str, Any], desired: str | None = None) -> list[dict[str, Any]]:
    filters: dict[str, Any] = {"service": service["ID"]}
    if desired:
        filters["desired-state"] = desired
    return list(ctx.api.tasks(filters=filters))


def _health(ctx: Context) -> dict[str, str]:
    """Each running web container's health, as its node's engine reports it ('node/abc123': healthy)."""
    found = {}
    for node in ctx.cluster.nodes:
        for c in task_containers(node.docker, WEB):
            found[f"{node.name}/{c.id[:12]}"] = (c.attrs.get("State", {}).get("Health") or {}).get("Status", "none")
    return found


@check("health_checked")
def health_checked(ctx: Context) -> Result:
    """web: 3 tasks of nginx:1.25 with a health check, each reported healthy by its engine."""
    service, failure = _web(ctx)
    if failure:
        return failure
    assert service is not None
    spec = service["Spec"]["TaskTemplate"]["ContainerSpec"]
    test = (spec.get("Healthcheck") or {}).get("Test") or []
    if not test or test[0] == "NONE":
        return Result(False, "web has no health check.", hint="Create it with `--health-cmd` as shown.")
    replicas = replicas_of(service)
    if replicas != 3:
        return Result(False, f"web asks for {replicas} replica(s); this lab uses 3.",
                      hint="`docker service update --replicas 3 web`.")
    running = [t for t in _tasks(ctx, service, "running") if t["Status"]["State"] == "running"]
    health = _health(ctx)
    evidence = (f"health check: {' '.join(test[1:])}", f"{len(running)}/3 tasks running",
                "health: " + ", ".join(f"{k} {v}" for k, v in sorted(health.items())))
    if len(running) < 3 or sorted(health.values()) != ["healthy"] * 3:
        return Result(False, "web's tasks are starting: a task counts as running once its health check passes.",
                      evidence, pending=True, hint="Watch `docker service ps web`: starting, then running.")
    return Result(True, "web runs 3 healthy tasks.", evidence)


def _current_version(ctx: Context) -> str:
    service, _ = _web(ctx)
    return image_of(service["Spec"]["TaskTemplate"]["ContainerSpec"]).partition(":")[2] if service else ""


@check("auto_rollback", answer=_current_version)
def auto_rollback(ctx: Context) -> Result:
    """The update to nginx:1.26-broken failed its health check and Swarm rolled it back by itself."""
    service, failure = _web(ctx)
    if failure:
        return failure
    assert service is not None
    status = service.get("UpdateStatus") or {}
    state = status.get("State", "")
    config = service["Spec"].get("UpdateConfig") or {}
    previous = image_of((service.get("PreviousSpec") or {}).get("TaskTemplate", {}).get("ContainerSpec", {}))
    broken = [t for t in _tasks(ctx, service) if image_of(t["Spec"]["ContainerSpec"]) == "nginx:1.26-broken"]
    evidence = [f"update state: {state or 'none'}",
                f"web: {image_of(service['Spec']['TaskTemplate']['ContainerSpec'])} (previous spec: {previous or '-'})",
                f"tasks of nginx:1.26-broken: {len(broken)}"
                + "".join(f"; {t['Status']['State']}: {t['Status'].get('Err', '')}" for t in broken[:2])]
    if not broken:
        return Result(False, "web has not tried nginx:1.26-broken yet.", tuple(evidence), hint=ctx.step.hints[0])
    if state.startswith("rollback") and state != "rollback_completed":
        return Result(False, "The update is rolling, or rolling back.", tuple(evidence), pending=True,
                      hint="Watch `docker service ps web`.")
    if state == "rollback_completed" and previous == "nginx:1.26-broken":
        return Result(False, "web was rolled back by hand (`docker service rollback`), not by Swarm itself.",
                      tuple(evidence), hint="Update again with `--update-failure-action rollback` and let Swarm "
                      "do it: " + ctx.step.hints[0])
    if config.get("FailureAction") != "rollback" and state != "rollback_completed":
        pause = " Swarm paused the update instead (its default failure action)." if state == "paused" else ""
        return Result(False, f"The update does not roll back by itself.{pause}", tuple(evidence),
                      hint="Update with `--update-failure-action rollback`; `docker service rollback web` "
                      "first if the update is paused.")
    if state != "rollback_completed":
        return Result(False, "The update is rolling, or rolling back.", tuple(evidence), pending=True,
                      hint="Watch `docker service ps web`: the new task never turns healthy.")
    image = image_of(service["Spec"]["TaskTemplate"]["ContainerSpec"])
    evidence.append("Swarm rolled back by itself: " + (status.get("Message") or "rollback completed"))
    back = [t for t in _tasks(ctx, service, "running")
            if t["Status"]["State"] == "running" and image_of(t["Spec"]["ContainerSpec"]) == image]
    if len(back) < replicas_of(service):  # the next step breaks manager1's task: it has to be there
        return Result(False, f"Swarm rolled web back to {image}; its tasks are starting again ({len(back)} of "
                      f"{replicas_of(service)} running).", tuple(evidence), pending=True,
                      hint="Give it a few seconds: a task counts as running once its health check passes.")
    return judge_answer(ctx, [image.partition(":")[2], image, f"nginx/{image.partition(':')[2]}"], evidence)


@check("unhealthy_replaced")
def unhealthy_replaced(ctx: Context) -> Result:
    """A task whose health check started failing was shut down and replaced by a new one."""
    service, failure = _web(ctx)
    if failure:
        return failure
    assert service is not None
    image = image_of(service["Spec"]["TaskTemplate"]["ContainerSpec"])
    # A task of the current image that ended (its container stopped by Swarm once unhealthy), not one of the
    # tasks an update or rollback replaced on purpose (those are `shutdown`, or of another image).
    unhealthy = [t for t in _tasks(ctx, service)
                 if image_of(t["Spec"]["ContainerSpec"]) == image
                 and (t["Status"]["State"] in ("complete", "failed") or "unhealthy" in (t["Status"].get("Err") or ""))]
    running = [t for t in _tasks(ctx, service, "running") if t["Status"]["State"] == "running"]
    evidence = [f"{len(running)}/3 tasks running",
                *(f"task {t['ID'][:12]} ({image}): {t['Status']['State']} "
                  f"{t['Status'].get('Err') or t['Status'].get('Message', '')}".rstrip() for t in unhealthy[:2])]
    if not unhealthy:
        sick = [k for k, v in _health(ctx).items() if v == "unhealthy"]
        if sick:
            return Result(False, f"{sick[0]} is unhealthy; Swarm is about to replace it.", tuple(evidence),
                          pending=True, hint="Wait a few seconds.")
        return Result(False, "No task of web has turned unhealthy yet.", tuple(evidence), hint=ctx.step.hints[0])
    if len(running) < 3:
        return Result(False, "The unhealthy task was shut down; its replacement is starting.", tuple(evidence),
                      pending=True, hint="Watch `docker service ps web`.")
    return Result(True, "The unhealthy task was shut down and a new, healthy task replaced it.", tuple(evidence))
