"""Checks of autolock: the Raft log's key taken off the manager's disk. Autolock on (the key file on the
disk sealed with an unlock key), a restarted manager locked while the workers' tasks run on, unlocked with
the key, the key rotated, autolock off again.

The unlock key must not sit on the manager it unlocks: labkit keeps it on this computer (labkit/progress.py,
outside every node), each key seen, newest last, and the `{unlock_key}` field fills it into commands. Every
check here that finds the manager unlocked records what it sees, so the kept keys follow the swarm.
"""

from __future__ import annotations

from typing import Any

from labkit.backends.base import Node
from labkit.checks.base import Context, Result, check, judge_answer
from labkit.fields import UNLOCK_KEYS
from labkit.progress import Progress
from labkit.swarm import task_containers

PINGER = "pinger"
KEY_FILE = "/var/lib/docker/swarm/certificates/swarm-node.key"  # the node's TLS key; its header holds raft-dek
STATE_FILE = "/var/lib/docker/swarm/docker-state.json"  # rewritten at boot and at each unlock attempt
PID_FILE = "/var/run/docker.pid"  # written as dockerd starts
BOOT_WRITE = 1.5  # s after PID_FILE within which dockerd writes STATE_FILE itself (0.4 s seen here)
WORDS = {0: "zero", 1: "one", 2: "two", 3: "three"}


def short(key: str) -> str:
    """An unlock key cut for evidence: 'SWMKEY-1-BH67y/VH…' (the whole key is in `labkit show`)."""
    return key[:17] + "…" if len(key) > 18 else key


def _state(ctx: Context) -> dict[str, Any]:
    return ctx.swarm_state(ctx.manager)


def autolock_on(ctx: Context) -> bool:
    """Whether the swarm's spec says managers lock (asked of an unlocked manager)."""
    spec = ctx.api.inspect_swarm().get("Spec") or {}
    return bool((spec.get("EncryptionConfig") or {}).get("AutoLockManagers"))


def kept_keys(ctx: Context) -> list[str]:
    keys = Progress(ctx.cluster.lab).kept(UNLOCK_KEYS)
    return [str(k) for k in keys] if isinstance(keys, list) else []


def observe(ctx: Context) -> tuple[bool, str]:
    """Autolock and the current unlock key ('' when off), as an unlocked manager tells them; labkit keeps
    the key (a new one is added after the others; autolock off forgets them all: there is no key)."""
    on = autolock_on(ctx)
    key = str(ctx.api.get_unlock_key().get("UnlockKey") or "") if on else ""
    keys = kept_keys(ctx)
    if not on and keys:
        Progress(ctx.cluster.lab).keep(UNLOCK_KEYS, [])
    elif key and key not in keys:
        Progress(ctx.cluster.lab).keep(UNLOCK_KEYS, [*keys, key])
    return on, key


def key_file(node: Node) -> str:
    """How the node's disk keeps its TLS key and the Raft key in its header: encrypted, plain or missing."""
    done = node.run(f"head -n 1 {KEY_FILE}")
    first = done.stdout.strip() if done.ok else ""
    if "ENCRYPTED PRIVATE KEY" in first:
        return "encrypted"
    return "plain" if "PRIVATE KEY" in first else "missing"


def key_file_line(node: Node, how: str) -> str:
    return {"encrypted": f"{node.name}'s {KEY_FILE}: ENCRYPTED PRIVATE KEY: its raft-dek header (the Raft "
                         "log's key) is sealed with the unlock key",
            "plain": f"{node.name}'s {KEY_FILE}: PRIVATE KEY in the clear, raft-dek (the Raft log's key) "
                     "readable beside the log",
            }.get(how, f"{node.name}: no {KEY_FILE}")


def refused_unlock(node: Node) -> float | None:
    """How many seconds ago a locked manager's engine refused an unlock key, or None if none was tried
    since it started: each attempt with a well-formed key rewrites its swarm state file, as the boot does
    (an attempt within BOOT_WRITE of the start is taken for the boot's own write)."""
    done = node.run(f"stat -c %.3Y {PID_FILE} {STATE_FILE}; date +%s.%3N")
    try:
        started, written, now = (float(w) for w in done.stdout.split()[:3])
    except ValueError:
        return None
    return now - written if done.ok and written - started > BOOT_WRITE else None


def workers_running(ctx: Context) -> dict[str, int]:
    """Running pinger containers on each worker, as its own engine tells (no manager needed)."""
    return {n.name: len(task_containers(n.docker, PINGER)) for n in ctx.cluster.workers}


def _running_line(running: dict[str, int]) -> str:
    return "pinger containers running: " + ", ".join(f"{n} {c}" for n, c in sorted(running.items()))


def _unavailable(ctx: Context, state: dict[str, Any]) -> Result:
    """manager1 is neither locked nor managing: no swarm, or it left it."""
    name = ctx.manager.name
    if state.get("LocalNodeState") == "inactive":
        return Result(False, f"{name} is in no swarm. If it left (`docker swarm leave --force`), it threw away "
                      "its Raft data: this swarm's only manager and only copy of its state.",
                      (f"{name}: Swarm: inactive",),
                      hint=f"`labkit reset {ctx.step.lab}` builds the lab again (in a notebook, the lab's first "
                      "cell); a locked manager needs `docker swarm unlock`, never leave.")
    return ctx.not_initialised()


def unlock_command(ctx: Context) -> str:
    """The unlock command with the key labkit keeps (or a placeholder when it has seen none)."""
    keys = kept_keys(ctx)
    return f"echo {keys[-1] if keys else '<the unlock key>'} | docker swarm unlock"


def _locked(ctx: Context) -> Result:
    """The failure for a step that needs manager1 unlocked and finds it locked."""
    name = ctx.manager.name
    return Result(False, f"{name} is locked: it restarted and waits for its unlock key.",
                  (f"{name}: Swarm: locked",), hint=f"On {name}: `{unlock_command(ctx)}` (step unlock-manager).")


def _managing(ctx: Context) -> tuple[dict[str, Any], Result | None]:
    """manager1's swarm state, or why it cannot answer the control API (locked, no swarm, still starting)."""
    state = _state(ctx)
    if state.get("LocalNodeState") == "locked":
        return state, _locked(ctx)
    if state.get("LocalNodeState") != "active":
        return state, _unavailable(ctx, state)
    if not state.get("ControlAvailable"):
        return state, ctx.not_initialised()
    return state, None


@check("autolock_enabled")
def autolock_enabled(ctx: Context) -> Result:
    """Autolock on: the swarm has an unlock key (kept by labkit, off the nodes), and manager1's key file on
    its disk is encrypted with it."""
    _, failure = _managing(ctx)
    if failure:
        return failure
    on, key = observe(ctx)
    disk = key_file(ctx.manager)
    evidence = [key_file_line(ctx.manager, disk)]
    if not on:
        return Result(False, "Autolock is off: the Raft log's key still lies readable on manager1's disk.",
                      tuple(evidence), hint=ctx.step.hints[0])
    evidence += ["swarm spec: EncryptionConfig.AutoLockManagers true",
                 f"unlock key {short(key)} kept by labkit on this computer, off every node "
                 "(`{unlock_key}` in commands)"]
    if disk != "encrypted":
        return Result(False, "Autolock is on; manager1 is still sealing its key file.", tuple(evidence),
                      pending=True, hint="Wait a moment.")
    return Result(True, "Autolock is on: manager1's disk holds the Raft key only sealed with the unlock key.",
                  tuple(evidence))


def _locked_answer(ctx: Context) -> str:
    return str(sum(workers_running(ctx).values()))


@check("manager_locked", answer=_locked_answer)
def manager_locked(ctx: Context) -> Result:
    """manager1 restarted with autolock on: its engine answers but its swarm is locked (no control API);
    the workers' tasks run on. The learner predicted how many."""
    state = _state(ctx)
    name = ctx.manager.name
    local = state.get("LocalNodeState")
    if local == "active" and state.get("ControlAvailable"):
        on, _ = observe(ctx)
        if not on:
            return Result(False, f"{name} is not locked: autolock is off, so a restart does not lock it.",
                          (f"{name}: Swarm: active", "swarm spec: EncryptionConfig.AutoLockManagers false"),
                          hint="Turn autolock on first (`docker swarm update --autolock=true`, step autolock), "
                          f"then restart {name}.")
        return Result(False, f"{name} is not locked: it has not restarted since autolock went on (or it was "
                      "unlocked already).", (f"{name}: Swarm: active", "swarm spec: AutoLockManagers true"),
                      hint=ctx.step.hints[0])
    if local != "locked":
        return _unavailable(ctx, state)
    running = workers_running(ctx)
    keys = kept_keys(ctx)
    evidence = [f"{name}: Swarm: locked (the engine answers; `docker node ls` is refused)",
                _running_line(running),
                f"labkit keeps the unlock key {short(keys[-1])}" if keys else
                "labkit has not seen the unlock key: copy it from what `docker swarm update --autolock=true` printed"]
    total = sum(running.values())
    word = WORDS.get(total, str(total))
    return judge_answer(ctx, [str(total), word, f"{total} tasks", f"{word} tasks"], evidence)


@check("manager_unlocked")
def manager_unlocked(ctx: Context) -> Result:
    """manager1 unlocked with the key: it manages the swarm again. Still locked after a refused key: said so."""
    state = _state(ctx)
    name = ctx.manager.name
    local = state.get("LocalNodeState")
    if local == "locked":
        keys = kept_keys(ctx)
        evidence = [f"{name}: Swarm: locked"]
        refused = refused_unlock(ctx.manager)
        if refused is not None:
            evidence.append(f"{name}'s engine refused an unlock key {refused:.0f} s ago (it rewrote its swarm "
                            "state, and stayed locked)")
            where = (f"labkit keeps the latest one: `{unlock_command(ctx)}` on {name}."
                     if keys else "Use the one `docker swarm update --autolock=true` printed (or the newest "
                     "`docker swarm unlock-key --rotate` printed).")
            return Result(False, f"{name} is still locked: the key given was refused (\"invalid key "
                          "provided\"). It is not the key that sealed this manager's Raft key.", tuple(evidence),
                          hint=f"Not a join token (SWMTKN-…), not an older key: the unlock key (SWMKEY-1-…). {where}")
        if not keys:
            return Result(False, f"{name} is still locked, and labkit has not seen its unlock key.",
                          tuple(evidence), hint="Give `docker swarm unlock` the key `docker swarm update "
                          f"--autolock=true` printed. Lost? `labkit reset {ctx.step.lab}` starts the lab over.")
        return Result(False, f"{name} is still locked.", tuple(evidence),
                      hint=f"On {name}: `{unlock_command(ctx)}` (the key labkit keeps). 'invalid key string' "
                      "means what was given is no unlock key at all (a join token starts SWMTKN-1-).")
    if local != "active":
        return _unavailable(ctx, state)
    if not state.get("ControlAvailable"):
        return Result(False, f"{name} is unlocked and taking up its manager role.", (f"{name}: Swarm: active",),
                      pending=True, hint="Wait a moment.")
    on, key = observe(ctx)
    nodes = ctx.nodes_by_hostname()
    evidence = (f"{name}: Swarm: active, manager",
                "nodes: " + ", ".join(f"{h} {n['Status']['State']}" for h, n in sorted(nodes.items())),
                f"autolock still {'on' if on else 'off'}" + (f", unlock key {short(key)}" if on else ""))
    if any(n["Status"]["State"] == "unknown" for n in nodes.values()):
        return Result(False, f"{name} is unlocked; the workers are reporting back to it.", evidence, pending=True,
                      hint="Wait a moment: `docker node ls` shows them Unknown until they check in.")
    return Result(True, f"{name} is unlocked: it decrypted its Raft key and manages the swarm again.", evidence)


@check("key_rotated")
def key_rotated(ctx: Context) -> Result:
    """`docker swarm unlock-key --rotate`: a new unlock key (labkit keeps it); the old one no longer unlocks."""
    _, failure = _managing(ctx)
    if failure:
        return failure
    before = kept_keys(ctx)
    on, key = observe(ctx)
    if not on:
        return Result(False, "Autolock is off: there is no unlock key to rotate.",
                      ("swarm spec: EncryptionConfig.AutoLockManagers false",),
                      hint="Turn it on again (`docker swarm update --autolock=true`), then rotate.")
    keys = kept_keys(ctx)
    if not before:
        return Result(False, "labkit had not seen this swarm's unlock key before, so it cannot tell whether it "
                      "changed.", (f"unlock key now {short(key)}",),
                      hint=f"Rotate once more: `docker swarm unlock-key --rotate` on {ctx.manager.name}.")
    if keys.index(key) == 0:
        return Result(False, "The unlock key is still the one autolock printed.", (f"unlock key {short(key)}",),
                      hint=ctx.step.hints[0])
    evidence = (f"unlock key was {short(keys[0])}, now {short(key)} (kept by labkit)",
                key_file_line(ctx.manager, key_file(ctx.manager)))
    return Result(True, "The unlock key is new: manager1's Raft key is sealed with it, and the old key opens "
                  "nothing.", evidence)


@check("autolock_disabled")
def autolock_disabled(ctx: Context) -> Result:
    """Autolock off again (the key file back in the clear) and pinger removed."""
    _, failure = _managing(ctx)
    if failure:
        return failure
    on, _ = observe(ctx)
    disk = key_file(ctx.manager)
    evidence = (key_file_line(ctx.manager, disk),)
    if on:
        return Result(False, "Autolock is still on.", evidence, hint=ctx.step.hints[0])
    if disk == "encrypted":
        return Result(False, "Autolock is off; manager1 is rewriting its key file in the clear.", evidence,
                      pending=True, hint="Wait a moment.")
    if ctx.service(PINGER) is not None:
        return Result(False, "Autolock is off, but pinger still runs.", evidence,
                      hint="`docker service rm pinger` on manager1.")
    return Result(True, "Autolock is off: a restarted manager starts unlocked again, its Raft key back "
                  "on its disk; pinger is gone.", evidence)
