"""Checks of swarm secrets: a secret stored whose value no API call shows, mounted in a tmpfs only into
the containers of the service granted it (never on the node's disk, encrypted in the managers' Raft
log), refused removal while in use, and rotated by swapping a new secret in at the same target."""

from __future__ import annotations

import json
import shlex
from typing import Any

from labkit.backends.base import Node
from labkit.checks.base import Context, Result, check, judge_answer, per_look
from labkit.swarm import task_containers

SECRETS_DIR = "/run/secrets"
SWARM_DIR = "/var/lib/docker/swarm"  # a manager's Raft log and keys
ENGINE_DIR = "/var/lib/docker"


def _secret(ctx: Context, name: str) -> dict[str, Any] | None:
    """The swarm secret called NAME (the engine's name filter matches parts of names: compare whole)."""
    return next((s for s in ctx.api.secrets(filters={"name": name}) if s["Spec"]["Name"] == name), None)


def _refs(service: dict[str, Any]) -> list[dict[str, Any]]:
    """The secrets a service's spec grants: SecretName, SecretID and File (Name: the target in /run/secrets)."""
    return list(service["Spec"]["TaskTemplate"]["ContainerSpec"].get("Secrets") or [])


def _ref(service: dict[str, Any], secret: str) -> dict[str, Any] | None:
    return next((r for r in _refs(service) if r.get("SecretName") == secret), None)


def _target(ref: dict[str, Any]) -> str:
    return str((ref.get("File") or {}).get("Name") or ref.get("SecretName"))


def _users(ctx: Context, secret: dict[str, Any]) -> list[str]:
    """The services whose spec grants SECRET."""
    return sorted(s["Spec"]["Name"] for s in ctx.api.services()
                  if any(r.get("SecretID") == secret["ID"] for r in _refs(s)))


def _read(container: Any, path: str) -> tuple[bool, str]:
    """`cat PATH` in CONTAINER: whether it worked, and what it printed (the file, or the error)."""
    code, out = container.exec_run(["cat", path])
    return code == 0, (out or b"").decode(errors="replace")


def _fstype(container: Any, path: str) -> str:
    """The file system type mounted at PATH in CONTAINER, from its /proc/mounts ('' when none is)."""
    _, out = container.exec_run(["cat", "/proc/mounts"])
    for line in (out or b"").decode(errors="replace").splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] == path:
            return fields[2]
    return ""


def _files_holding(node: Node, value: str, where: str, one_fs: bool = True) -> list[str] | None:
    """Files under WHERE on NODE's disk that hold VALUE (with ONE_FS, only on WHERE's own file system: mounts
    such as a tmpfs and the containers' overlay views are left out). None when the search itself failed."""
    quoted = shlex.quote(value)
    xdev = " -xdev" if one_fs else ""
    done = node.run(f"find {where}{xdev} -type f -size -4M -print0 | xargs -0 -r grep -lF -- {quoted}", timeout=60)
    if done.exit_code not in (0, 1, 123):  # grep: 1 = nothing found; xargs: 123 = some grep found nothing
        return None
    return [line for line in done.stdout.splitlines() if line.strip()]


def _pin(service: dict[str, Any], node: str) -> str:
    """The command that moves SERVICE to NODE, dropping the hostname constraints it has."""
    placed = (service["Spec"]["TaskTemplate"].get("Placement") or {}).get("Constraints") or []
    drop = "".join(f"--constraint-rm {shlex.quote(c)} " for c in placed
                   if c.replace(" ", "").startswith("node.hostname"))
    return f"`docker service update {drop}--constraint-add node.hostname=={node} {service['Spec']['Name']}`"


def _plural(items: list[str], one: str, many: str) -> str:
    return one if len(items) == 1 else many


def _short(value: str) -> str:
    return f"{len(value.encode())} bytes"


# --------------------------------------------------------------------------------------- create


@check("secret_stored")
def secret_stored(ctx: Context) -> Result:
    """The secret exists, and neither the API's secret object nor `docker secret inspect` shows its value."""
    if not ctx.swarm_active():
        return ctx.not_initialised()
    name, value = str(ctx.params.get("secret", "db_password")), str(ctx.params.get("value", ""))
    secret = _secret(ctx, name)
    if secret is None:
        others = sorted(s["Spec"]["Name"] for s in ctx.api.secrets())
        if others:
            return Result(False, f"There is no secret called {name}, but there is {', '.join(others)}.",
                          (f"docker secret ls: {', '.join(others)}",),
                          hint=f"Names are exact: `docker secret rm {others[0]}`, then create {name} as shown.")
        return Result(False, f"There is no secret called {name} yet.", hint=ctx.step.hints[0])
    seen = ctx.api.inspect_secret(secret["ID"])
    cli = ctx.manager.run(f"docker secret inspect {shlex.quote(name)}")
    texts = (("the API's secret object", json.dumps(seen)), ("docker secret inspect", cli.stdout))
    shown = [where for where, text in texts if value and value in text]
    spec = sorted(seen.get("Spec", {}))
    evidence = (f"{name}: ID {secret['ID'][:12]}, created {str(secret.get('CreatedAt', '?'))[:19]}",
                f"its Spec holds: {', '.join(spec)} (no Data)" if "Data" not in seen.get("Spec", {})
                else f"its Spec holds: {', '.join(spec)}")
    if shown:
        return Result(False, f"The value of {name} shows in {' and '.join(shown)}.", evidence,
                      hint="A swarm never gives a secret's value back: was it stored as a config instead?")
    return Result(True, f"{name} is stored, and no inspect shows its value.",
                  (*evidence, "the value is in neither the API's secret object nor `docker secret inspect`"))


# --------------------------------------------------------------------------------------- grant


def _running_on(ctx: Context, service: dict[str, Any]) -> list[str]:
    hosts = ctx.hostnames()
    return sorted(hosts.get(t["NodeID"], "?") for t in ctx.running_tasks(service))


def _granted(ctx: Context, name: str, secret: str) -> tuple[dict[str, Any] | None, Result | None]:
    """Service NAME, granted SECRET at its own name: or the failure that says what differs."""
    service, failure = ctx.required_service(name)
    if failure:
        return None, failure
    assert service is not None
    ref = _ref(service, secret)
    if ref is None:
        granted = ", ".join(r.get("SecretName", "?") for r in _refs(service)) or "none"
        return None, Result(False, f"{name} was not granted the secret {secret}.",
                            (f"{name}'s secrets: {granted}",),
                            hint=f"`docker service update --secret-add {secret} {name}` on manager1 "
                            "(its task is replaced).")
    if _target(ref) != secret:
        return None, Result(False, f"{name} gets {secret} at {SECRETS_DIR}/{_target(ref)}, not at "
                            f"{SECRETS_DIR}/{secret}.",
                            hint=f"`docker service update --secret-rm {secret} --secret-add {secret} {name}`.")
    return service, None


@check("secret_mounted")
def secret_mounted(ctx: Context) -> Result:
    """The service's container reads the secret at /run/secrets/NAME, a tmpfs: the value is on no file of the
    node's disk, and the managers' Raft log holds it only encrypted."""
    name, secret = str(ctx.params.get("service", "api")), str(ctx.params.get("secret", "db_password"))
    wanted = str(ctx.params.get("node", "worker1"))
    service, failure = _granted(ctx, name, secret)
    if failure:
        return failure
    assert service is not None
    running = _running_on(ctx, service)
    if not running:
        return Result(False, f"{name} is starting.", (f"{name}: no running task yet",), pending=True,
                      hint="Wait a moment.")
    if wanted not in running:
        return Result(False, f"{name} runs on {', '.join(running)}, not on {wanted}.",
                      (f"{name} tasks on: {', '.join(running)}",),
                      hint=f"Pin it: {_pin(service, wanted)}.")
    found = ctx.task_container(name)
    if found is None:
        return Result(False, f"{name}'s container is starting.", pending=True, hint="Wait a moment.")
    node, container = found
    path = f"{SECRETS_DIR}/{secret}"
    ok, value = _read(container, path)
    if not ok or not value:
        return Result(False, f"{name}'s container on {node.name} cannot read {path} yet.",
                      (f"cat {path}: {value.strip() or 'empty'}",), pending=True, hint="Wait a moment.")
    fstype = _fstype(container, path)
    evidence = [f"{name}'s container {container.id[:12]} on {node.name}: {path} holds the value ({_short(value)})",
                f"{path} is mounted as {fstype or 'nothing of its own (a file of the image?)'}"]
    if fstype != "tmpfs":
        return Result(False, f"{path} in {name}'s container is not a tmpfs mount.", tuple(evidence),
                      hint="Grant the secret with `--secret`: the engine mounts it. Do not copy it into the image.")
    on_disk = _files_holding(node, value, ENGINE_DIR)
    if on_disk is None:
        evidence.append(f"{node.name}: could not search {ENGINE_DIR}")
    elif on_disk:
        evidence.append(f"{node.name}: the value is also in {', '.join(on_disk[:3])}")
        return Result(False, f"The value is also on {node.name}'s disk: something wrote it out.", tuple(evidence),
                      hint=f"Did the container print or copy it? `docker service rm {name}` and create it again.")
    else:
        evidence.append(f"{node.name}: the value is in no file under {ENGINE_DIR} (the tmpfs is in memory)")
    raft = _files_holding(ctx.manager, value, SWARM_DIR, one_fs=False)
    if raft is not None:
        evidence.append(f"{ctx.manager.name}: Raft log under {SWARM_DIR}: "
                        + (f"the value is in {', '.join(raft[:3])}" if raft else "the value is not there in "
                           "clear: it is stored encrypted"))
    return Result(True, f"{name}'s container on {node.name} reads {secret} from {path}, a tmpfs: in memory only.",
                  tuple(evidence))


# --------------------------------------------------------------------------------------- other


@per_look
def _isolated(ctx: Context) -> tuple[Result, bool]:
    """Whether the other service's container can read the secret that only the first service was granted."""
    name, other, secret = (str(ctx.params.get(k, d)) for k, d in
                           (("service", "api"), ("other", "other"), ("secret", "db_password")))
    if not ctx.swarm_active():
        return ctx.not_initialised(), False
    first, second = ctx.service(name), ctx.service(other)
    if second is None:
        return Result(False, f"There is no service called {other} yet.", hint=ctx.step.hints[0]), False
    if first is None or _ref(first, secret) is None:
        return Result(False, f"{name} is gone or no longer granted {secret}: the question compares it with {other}.",
                      hint=f"`docker service update --secret-add {secret} {name}`, or redo step grant."), False
    if _ref(second, secret) is not None:
        return Result(False, f"{other} was granted {secret} too: then of course it reads it. The question is "
                      "about a service that was not granted it.", (f"{other}'s secrets: {secret}",),
                      hint=f"`docker service update --secret-rm {secret} {other}` on manager1."), False
    first_on, second_on = _running_on(ctx, first), _running_on(ctx, second)
    evidence = [f"{name} tasks on: {', '.join(first_on) or 'none'}",
                f"{other} tasks on: {', '.join(second_on) or 'none'}"]
    if not first_on or not second_on:
        return Result(False, "The services are starting.", tuple(evidence), pending=True, hint="Wait a moment."), False
    if not set(first_on) & set(second_on):
        return Result(False, f"{other} runs on {', '.join(second_on)}, {name} on {', '.join(first_on)}: this step "
                      "wants them on the same node.", tuple(evidence),
                      hint=f"{_pin(second, first_on[0])}."), False
    found = ctx.task_container(other)
    if found is None:
        return Result(False, f"{other}'s container is starting.", tuple(evidence), pending=True,
                      hint="Wait a moment."), False
    node, container = found
    path = f"{SECRETS_DIR}/{secret}"
    readable, out = _read(container, path)
    evidence.append(f"{other}'s container {container.id[:12]} on {node.name}: cat {path}: "
                    + (f"read {_short(out)}" if readable else (out.strip().splitlines() or ["failed"])[-1]))
    return Result(True, f"{other} runs beside {name} on {node.name}, without the secret.", tuple(evidence)), readable


@check("secret_isolated", answer=lambda ctx: "yes" if _isolated(ctx)[1] else "no")
def secret_isolated(ctx: Context) -> Result:
    """A service not granted the secret cannot read it, even on the node that holds it for another service."""
    result, readable = _isolated(ctx)
    if not result.passed:
        return result
    accepted = ["yes", "y"] if readable else ["no", "n", "no it cannot", "it cannot", "cannot"]
    return judge_answer(ctx, accepted, result.evidence)


# --------------------------------------------------------------------------------------- rm in use


@per_look
def _in_use(ctx: Context) -> tuple[Result, list[str]]:
    name, secret_name = str(ctx.params.get("service", "api")), str(ctx.params.get("secret", "db_password"))
    if not ctx.swarm_active():
        return ctx.not_initialised(), []
    secret = _secret(ctx, secret_name)
    if secret is None:
        return Result(False, f"{secret_name} is gone: the managers remove a secret only once no service uses it. "
                      f"Was {name} removed, or its secret taken away, first?",
                      hint=f"Redo the steps create and grant (`labkit reset secrets:rm-in-use` does), so that {name} "
                      f"uses {secret_name} again."), []
    users = _users(ctx, secret)
    if not users:
        return Result(False, f"No service uses {secret_name} now: this step wants it in use by {name}.",
                      (f"{secret_name}: used by no service",),
                      hint=f"`docker service update --secret-add {secret_name} {name}` on manager1."), []
    return Result(True, f"{secret_name} is still there: {', '.join(users)} uses it.",
                  (f"{secret_name}: ID {secret['ID'][:12]}, still listed", f"used by: {', '.join(users)}",
                   "the managers refuse to remove a secret that a service's spec grants")), users


@check("secret_in_use", answer=lambda ctx: "no" if _in_use(ctx)[1] else "yes")
def secret_in_use(ctx: Context) -> Result:
    """`docker secret rm` is refused while a service uses the secret: judged on the secret still being there,
    granted by a service."""
    result, _ = _in_use(ctx)
    if not result.passed:
        return result
    return judge_answer(ctx, ["no", "n", "it is refused", "refused", "it fails", "no it fails"], result.evidence)


# --------------------------------------------------------------------------------------- rotate


@per_look
def _rotated(ctx: Context) -> tuple[Result, bool]:
    """The service reads the new secret at the old target, the old secret is gone; and whether its task was
    replaced (the running task is not one that was granted the old secret)."""
    p = {k: str(ctx.params.get(k, d)) for k, d in (("service", "api"), ("old", "db_password"),
                                                   ("new", "db_password_v2"), ("target", "db_password"),
                                                   ("old_value", ""), ("value", ""))}
    name, old, new, target = p["service"], p["old"], p["new"], p["target"]
    service, failure = ctx.required_service(name)
    if failure:
        return failure, False
    assert service is not None
    ref = _ref(service, new)
    if ref is None:
        if _secret(ctx, new) is None:
            return Result(False, f"There is no secret called {new} yet.", hint=ctx.step.hints[0]), False
        return Result(False, f"{name} does not use {new} yet.",
                      (f"{name}'s secrets: {', '.join(r.get('SecretName', '?') for r in _refs(service)) or 'none'}",),
                      hint=f"`docker service update --secret-rm {old} --secret-add source={new},target={target} "
                      f"{name}`."), False
    if _target(ref) != target:
        return Result(False, f"{name} gets {new} at {SECRETS_DIR}/{_target(ref)}, but the app reads "
                      f"{SECRETS_DIR}/{target}.", (f"{new} mounted at {SECRETS_DIR}/{_target(ref)}",),
                      hint=f"Give it the old name as target: `docker service update --secret-rm {new} "
                      f"--secret-add source={new},target={target} {name}`."), False
    evidence = [f"{name}: {new} mounted at {SECRETS_DIR}/{target}"]
    if (service.get("UpdateStatus") or {}).get("State") == "updating":
        return Result(False, f"{name} is being updated.", tuple(evidence), pending=True, hint="Wait a moment."), False
    found = ctx.task_container(name)
    if found is None:
        return Result(False, f"{name}'s new task is starting.", tuple(evidence), pending=True,
                      hint="Wait a moment."), False
    node, container = found
    ok, value = _read(container, f"{SECRETS_DIR}/{target}")
    if not ok or value == p["old_value"]:
        return Result(False, f"{name}'s container still reads the old value.", tuple(evidence), pending=True,
                      hint="The task is being replaced: wait a moment."), False
    if p["value"] and value != p["value"]:
        return Result(False, f"{name} reads {SECRETS_DIR}/{target}, but not the value this step stores in {new}.",
                      (*evidence, f"{SECRETS_DIR}/{target}: {_short(value)}"),
                      hint=f"Was {new} created with another value? Remove it from {name} and create it again as "
                      "shown."), False
    evidence.append(f"{name}'s container on {node.name} reads the new value at {SECRETS_DIR}/{target}")
    tasks = ctx.api.tasks(filters={"service": service["ID"]})
    with_old = [t for t in tasks if any(r.get("SecretName") == old for r in
                                        t.get("Spec", {}).get("ContainerSpec", {}).get("Secrets") or [])]
    running = ctx.running_tasks(service)
    replaced = bool(running) and not any(t["ID"] == r["ID"] for t in with_old for r in running)
    if running and with_old:
        evidence.append(f"task {running[0]['ID'][:12]} runs it; task {with_old[-1]['ID'][:12]} (with {old}) is "
                        f"{with_old[-1]['Status']['State']}")
    if _secret(ctx, old) is not None:
        return Result(False, f"{name} reads the new value, but {old} is still stored.", tuple(evidence),
                      hint=f"Nothing uses it now: `docker secret rm {old}` on manager1."), replaced
    evidence.append(f"{old}: removed")
    return Result(True, f"{name} reads {new} at {SECRETS_DIR}/{target}, and {old} is gone.", tuple(evidence)), replaced


@check("secret_rotated", answer=lambda ctx: "no" if _rotated(ctx)[1] else "yes")
def secret_rotated(ctx: Context) -> Result:
    """The secret rotated: the new one at the old target, the old one removed; the learner predicted whether
    the service kept its task (it did not: a new task mounts the new secret)."""
    result, replaced = _rotated(ctx)
    if not result.passed:
        return result
    accepted = ["no", "n", "a new task", "new task", "new one", "no a new one"] if replaced else ["yes", "y"]
    return judge_answer(ctx, accepted, result.evidence)


# --------------------------------------------------------------------------------------- clean


@check("secrets_removed")
def secrets_removed(ctx: Context) -> Result:
    """No service and no secret is left, and no task container remains on any node."""
    if not ctx.swarm_active():
        return ctx.not_initialised()
    services = sorted(s["Spec"]["Name"] for s in ctx.api.services())
    if services:
        return Result(False, f"{_plural(services, 'Service', 'Services')} {', '.join(services)} "
                      f"{_plural(services, 'is', 'are')} still there.",
                      (f"docker service ls: {', '.join(services)}",),
                      hint=f"On manager1: `docker service rm {' '.join(services)}`.")
    secrets = sorted(s["Spec"]["Name"] for s in ctx.api.secrets())
    if secrets:
        return Result(False, f"{_plural(secrets, 'Secret', 'Secrets')} {', '.join(secrets)} "
                      f"{_plural(secrets, 'is', 'are')} still there.",
                      (f"docker secret ls: {', '.join(secrets)}",),
                      hint=f"On manager1: `docker secret rm {' '.join(secrets)}`.")
    leftovers = [f"{n.name}: {c.name}" for n in ctx.cluster.nodes for c in task_containers(n.docker, stopped=True)]
    if leftovers:
        return Result(False, "The services are gone; their containers are still stopping.", tuple(leftovers),
                      hint="Give the nodes a few seconds.", pending=True)
    return Result(True, "No service and no secret is left, and no task container remains on any node.",
                  ("docker service ls: empty", "docker secret ls: empty", f"checked {len(ctx.cluster.nodes)} nodes"))
