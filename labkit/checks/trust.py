"""Checks of lab trust: who may join and stay in a swarm. A rotated worker token (the members stay,
the old token is refused), a node taken out (leave, then `node rm`) and back with the current token,
a promotion and a demotion (the role is in the node's certificate), a shorter certificate lifetime,
and a rotated root CA (every certificate re-issued; a token of the old CA refused by the joining node).

Facts come from the engines (the swarm's JoinTokens, CAConfig and TLSInfo, each node's TLSInfo and
role) and from the nodes' disks: each node's certificate read with its own openssl, as pki.py does,
and the tokens and certificate details the learner saved in files on the nodes.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from labkit.backends.base import Node
from labkit.checks.base import Context, Result, check, judge_answer, timestamp
from labkit.checks.pki import CA_CERT, NODE_CERT, SERIAL, TOKEN_RE, ca_digest, cert_line, cert_on_disk

NS_PER_HOUR = 3_600_000_000_000


# --- facts ----------------------------------------------------------------------------------------


def _node(ctx: Context, key: str = "node", default: str = "worker2") -> Node:
    return ctx.cluster[str(ctx.params.get(key, default))]


def _swarm(ctx: Context) -> dict[str, Any]:
    """The swarm as the first manager inspects it: JoinTokens, Spec.CAConfig, TLSInfo, RootRotationInProgress."""
    return dict(ctx.manager.docker.swarm.attrs)


def _worker_token(ctx: Context) -> re.Match[str] | None:
    return TOKEN_RE.fullmatch(str(_swarm(ctx).get("JoinTokens", {}).get("Worker", "")))


def _saved_token(node: Node, path: str) -> re.Match[str] | None:
    """The join token the learner saved in PATH on NODE (None: no file, or no token in it)."""
    done = node.run(f"cat {path}")
    return TOKEN_RE.search(done.stdout) if done.ok else None


def _saved_at(node: Node, path: str) -> datetime | None:
    """When PATH on NODE was last written (the node's clock is the host's, as the engines' are)."""
    done = node.run(f"stat -c %Y {path}")
    return datetime.fromtimestamp(int(done.stdout.strip()), UTC) if done.ok and done.stdout.strip().isdigit() else None


def _short(token: re.Match[str]) -> str:
    return f"SWMTKN-1-{token.group(1)[:10]}…-…{token.group(2)[-6:]}"


def _entries(ctx: Context, hostname: str) -> list[dict[str, Any]]:
    """Every node entry the managers hold for HOSTNAME (a node that left and joined again has two)."""
    return [n for n in ctx.api.nodes() if n["Description"]["Hostname"] == hostname]


def _members_ready(ctx: Context) -> dict[str, str]:
    """Each worker of the lab -> its state as the managers see it ('not a member' when they have no entry)."""
    nodes = ctx.nodes_by_hostname()
    return {w.name: nodes[w.name]["Status"]["State"] if w.name in nodes else "not a member"
            for w in ctx.cluster.workers}


# --- rotate-token -----------------------------------------------------------------------------------


def _rotated_answer(ctx: Context) -> str:
    return "no" if all(s == "ready" for s in _members_ready(ctx).values()) else "yes"


@check("token_rotated", answer=_rotated_answer)
def token_rotated(ctx: Context) -> Result:
    """The worker token differs from the copy saved on worker2 before; the workers stay members."""
    if not ctx.swarm_active():
        return ctx.not_initialised()
    node, path = _node(ctx), str(ctx.params.get("saved", "/root/old-token"))
    saved, current = _saved_token(node, path), _worker_token(ctx)
    if saved is None:
        return Result(False, f"{node.name} has no saved worker token in {path}.", hint=ctx.step.hints[0])
    if current is None:
        return Result(False, "The swarm's worker token is missing or malformed.", hint=ctx.step.hints[0])
    evidence = [f"saved in {path} on {node.name}: {_short(saved)}", f"the swarm's worker token now: {_short(current)}"]
    if saved.group(0) == current.group(0):
        return Result(False, f"The worker token is still the one saved in {path}: it was not rotated since.",
                      tuple(evidence), hint=f"On {ctx.manager.name} run `docker swarm join-token --rotate worker` "
                      "(`worker`: rotating the manager token leaves the worker token as it was).")
    same_ca = saved.group(1) == current.group(1)
    evidence[1] += ": same CA digest, new secret" if same_ca else ": a new CA digest (the root CA was rotated too)"
    evidence.append("members: " + ", ".join(f"{n} {s}" for n, s in sorted(_members_ready(ctx).items())))
    return judge_answer(ctx, ["no", "n", "they stay", "no they stay"] if _rotated_answer(ctx) == "no" else
                        ["yes", "y"], evidence)


# --- remove -----------------------------------------------------------------------------------------


@check("node_removed")
def node_removed(ctx: Context) -> Result:
    """worker2 left the swarm (its engine is out of swarm mode, its certificate gone) and the managers
    forgot it (`docker node rm`, possible only once it is Down)."""
    if not ctx.swarm_active():
        return ctx.not_initialised()
    node = _node(ctx)
    name, manager = node.name, ctx.manager.name
    entries = _entries(ctx, name)
    states = sorted({e["Status"]["State"] for e in entries})
    local = str(ctx.swarm_state(node).get("LocalNodeState", "inactive"))
    evidence = (f"{name}: Swarm: {local}",
                f"{manager} lists {name}: {', '.join(states)}" if entries else f"{manager} lists no {name}")
    if local == "active" and not entries:
        return Result(False, f"{name} was removed by force while it was up: its engine still believes it is a "
                      "member, but the managers no longer know it and refuse its certificate.", evidence,
                      hint=ctx.step.hints[1])
    if local == "active":
        return Result(False, f"{name} is still a member of the swarm.", evidence, hint=ctx.step.hints[0])
    if "ready" in states:
        return Result(False, f"{name} left; the managers have not marked it Down yet.", evidence, pending=True,
                      hint=f"The managers mark a node that left Down within about 10 s; then run "
                      f"`docker node rm {name}` on {manager}.")
    if entries:
        return Result(False, f"{name} left, but the managers still list it (Down).", evidence,
                      hint=f"On {manager} run `docker node rm {name}`: a node that is Down can be removed.")
    cert = node.host.file(NODE_CERT).exists
    return Result(True, f"{name} left and the managers forgot it.", (
        *evidence, f"{NODE_CERT} on {name}: {'still there' if cert else 'gone'}: it has no certificate to show "
        "the managers; only a valid join token brings it back"))


# --- rejoin, ca-token -------------------------------------------------------------------------------


def _rejoined(ctx: Context, new_ca: bool) -> Result:
    """The node of the step left and joined again after the token in PATH was saved, with the current
    worker token, as a worker, with a certificate of the swarm's root CA on its disk."""
    if not ctx.swarm_active():
        return ctx.not_initialised()
    node, path = _node(ctx), str(ctx.params.get("saved", "/root/old-token"))
    name, manager = node.name, ctx.manager.name
    saved, current, saved_at = _saved_token(node, path), _worker_token(ctx), _saved_at(node, path)
    if new_ca and saved is None:
        return Result(False, f"{name} has no token saved in {path}: step ca-rotate saves it before the rotation.",
                      hint=f"On {name}: `docker swarm join-token -q worker` on {manager} prints the current token; "
                      "this step needs one of the old CA, saved before `docker swarm ca --rotate`.")
    evidence: list[str] = []
    if saved is not None and current is not None:
        evidence.append(f"token in {path}: {_short(saved)}; the swarm's worker token: {_short(current)}")
        if saved.group(0) == current.group(0):
            return Result(False, f"The token in {path} is still the swarm's worker token: nothing was rotated.",
                          tuple(evidence), hint="Rotate first (`docker swarm ca --rotate` on "
                          f"{manager})." if new_ca else f"Rotate first: `docker swarm join-token --rotate worker` "
                          f"on {manager}.")
        if new_ca and saved.group(1) == current.group(1):
            return Result(False, f"The token in {path} names the current root CA: it was saved after the rotation.",
                          tuple(evidence), hint=f"On {name} save the token again, then on {manager} run "
                          "`docker swarm ca --rotate` once more.")
        evidence.append("that token names the old root CA: a node given it refuses the swarm ('remote CA does not "
                        "match fingerprint')" if new_ca else
                        "that token's secret was rotated away: the managers refuse it ('A valid join token is "
                        "necessary to join this cluster')")
    local = ctx.swarm_state(node)
    state = str(local.get("LocalNodeState", "inactive"))
    if state == "pending":
        return Result(False, f"{name} is joining.", tuple(evidence), pending=True, hint="Wait a moment.")
    if state != "active":
        return Result(False, f"{name} is not in the swarm.", (*evidence, f"{name}: Swarm: {state}"),
                      hint=ctx.step.hints[0])
    entry = next((e for e in _entries(ctx, name) if e["ID"] == local.get("NodeID")), None)
    if entry is None:
        return Result(False, f"{name} is joining: the managers do not list it yet.", tuple(evidence), pending=True,
                      hint="Wait a moment.")
    joined = timestamp(entry["CreatedAt"])
    if saved_at is not None and joined < saved_at:
        return Result(False, f"{name} is still the member it was before: it has not left and joined again since "
                      f"the token in {path} was saved.",
                      (*evidence, f"{name} joined at {joined:%H:%M:%S}, the token was saved at {saved_at:%H:%M:%S}"),
                      hint=f"On {name} run `docker swarm leave`; once it is Down, `docker node rm {name}` on "
                      f"{manager}; then join with the current token.")
    if entry["Spec"]["Role"] != "worker":
        return Result(False, f"{name} joined as a manager, not as a worker.", tuple(evidence),
                      hint=f"That was the manager token: on {manager} run `docker node demote {name}`.")
    if entry["Status"]["State"] != "ready":
        return Result(False, f"{name} joined but is not Ready yet.", tuple(evidence), pending=True,
                      hint="Wait a moment.")
    cert, verify = cert_on_disk(node), node.run(f"openssl verify -CAfile {CA_CERT} {NODE_CERT}")
    if cert is None or not verify.ok or cert["subject"].get("CN") != entry["ID"]:
        return Result(False, f"{name} has no certificate of its own yet.", tuple(evidence), pending=True,
                      hint="Wait a moment: the CA issues it as the node joins.")
    issuer = (_swarm(ctx).get("TLSInfo") or {}).get("CertIssuerPublicKey")
    if issuer and (entry["Description"].get("TLSInfo") or {}).get("CertIssuerPublicKey") != issuer:
        return Result(False, f"{name}'s certificate is not yet signed by the swarm's current root CA.",
                      tuple(evidence), pending=True, hint="Wait a moment.")
    evidence += [f"{name}: worker, ready, node id {entry['ID'][:12]}…, joined at {joined:%H:%M:%S}",
                 cert_line(name, cert) + ", verified against the root CA: OK"]
    if new_ca:
        ca = (_swarm(ctx).get("TLSInfo") or {}).get("TrustRoot", "")
        if ca:
            evidence.append(f"the root CA's digest: {ca_digest(ca)[:10]}…, as in the current token")
        return Result(True, f"{name} joined with a token of the new root CA and holds a certificate it signed.",
                      tuple(evidence))
    return Result(True, f"{name} is back in the swarm with the current token; the old one admits no one.",
                  tuple(evidence))


@check("rejoined")
def rejoined(ctx: Context) -> Result:
    return _rejoined(ctx, new_ca=False)


@check("rejoined_new_ca")
def rejoined_new_ca(ctx: Context) -> Result:
    return _rejoined(ctx, new_ca=True)


# --- promote, demote --------------------------------------------------------------------------------


def _ou(ctx: Context) -> str:
    """The OU worker1's certificate names once the CA has caught up with its role (the role, as the
    managers hold it: the certificate on its disk follows within seconds)."""
    entry = ctx.nodes_by_hostname().get(_node(ctx, default="worker1").name)
    return f"swarm-{entry['Spec']['Role']}" if entry else ""


@check("promoted", answer=_ou)
def promoted(ctx: Context) -> Result:
    """worker1 is a manager, reachable, and its certificate on disk says OU=swarm-manager."""
    if not ctx.swarm_active():
        return ctx.not_initialised()
    node = _node(ctx, default="worker1")
    entry = ctx.nodes_by_hostname().get(node.name)
    if entry is None:
        return Result(False, f"{node.name} is not in the swarm.", hint=f"Join {node.name} as a worker first.")
    if entry["Spec"]["Role"] != "manager":
        return Result(False, f"{node.name} is still a worker.", hint=ctx.step.hints[0])
    reach = (entry.get("ManagerStatus") or {}).get("Reachability", "unknown")
    cert = cert_on_disk(node)
    evidence = [f"{node.name}: manager, {reach}"] + ([cert_line(node.name, cert)] if cert else [])
    if reach != "reachable":
        return Result(False, f"{node.name} is becoming a manager ({reach}).", tuple(evidence), pending=True,
                      hint="Wait a moment.")
    if cert is None or cert["subject"].get("OU") != "swarm-manager":
        ou = cert["subject"].get("OU") if cert else "unreadable"
        return Result(False, f"{node.name} is a manager for the swarm, but the certificate on its disk says "
                      f"OU={ou}: the new one is on its way.", tuple(evidence), pending=True, hint="Wait a moment.")
    return judge_answer(ctx, ["swarm-manager", "ou=swarm-manager", "manager"], evidence)


@check("demoted")
def demoted(ctx: Context) -> Result:
    """worker1 is a worker again: no control API, and a worker's certificate on its disk."""
    if not ctx.swarm_active():
        return ctx.not_initialised()
    node = _node(ctx, default="worker1")
    entry = ctx.nodes_by_hostname().get(node.name)
    if entry is None:
        return Result(False, f"{node.name} is not in the swarm.", hint=f"Join {node.name} as a worker first.")
    if entry["Spec"]["Role"] == "manager":
        return Result(False, f"{node.name} is still a manager.", hint=ctx.step.hints[0])
    control = bool(ctx.swarm_state(node).get("ControlAvailable"))
    cert = cert_on_disk(node)
    ou = cert["subject"].get("OU") if cert else "unreadable"
    evidence = (f"{node.name}: worker, {entry['Status']['State']}; control API: "
                f"{'still served' if control else 'refused (only managers serve it)'}",
                *([cert_line(node.name, cert)] if cert else []))
    if control or ou != "swarm-worker":
        return Result(False, f"{node.name} is a worker for the managers, but its certificate still says OU={ou}: "
                      "the CA issues a worker's certificate within seconds.", evidence, pending=True,
                      hint="Wait a moment.")
    return Result(True, f"{node.name} is a worker again, with a worker's certificate.", evidence)


# --- cert-expiry ------------------------------------------------------------------------------------


def _expiry_hours(ctx: Context) -> float:
    ns = ((_swarm(ctx).get("Spec") or {}).get("CAConfig") or {}).get("NodeCertExpiry") or 90 * 24 * NS_PER_HOUR
    return float(ns) / NS_PER_HOUR


def _cert_days(ctx: Context) -> str:
    cert = cert_on_disk(_node(ctx, default="worker1"))
    return str(cert["days"]) if cert and cert["days"] is not None else ""


@check("cert_expiry", answer=_cert_days)
def cert_expiry(ctx: Context) -> Result:
    """The swarm issues node certificates for 720 h from now on; worker1 keeps the one it has (90 days)."""
    if not ctx.swarm_active():
        return ctx.not_initialised()
    want, hours = float(ctx.params.get("hours", 720)), _expiry_hours(ctx)
    if hours != want:
        return Result(False, f"The swarm still issues node certificates for {hours / 24:g} days ({hours:g}h), "
                      f"not {want:g}h.", (f"CAConfig: NodeCertExpiry {hours:g}h",), hint=ctx.step.hints[0])
    node = _node(ctx, default="worker1")
    cert = cert_on_disk(node)
    if cert is None or cert["days"] is None:
        return Result(False, f"Could not read {node.name}'s certificate.", hint="Run the openssl command on "
                      f"{node.name}: it prints the serial, notBefore and notAfter.")
    evidence = [f"CAConfig: NodeCertExpiry {hours:g}h ({hours / 24:g} days), for certificates issued from now on",
                cert_line(node.name, cert)]
    days = cert["days"]
    return judge_answer(ctx, [str(days), f"{days} days", f"{days}d"], evidence)


# --- ca-rotate --------------------------------------------------------------------------------------


def _token_changed(ctx: Context) -> str:
    saved = _saved_token(_node(ctx, "token_node"), str(ctx.params.get("token", "/root/token-before-ca")))
    current = _worker_token(ctx)
    return "yes" if saved is not None and current is not None and saved.group(0) == current.group(0) else "no"


@check("ca_rotated", answer=_token_changed)
def ca_rotated(ctx: Context) -> Result:
    """The root CA was rotated (CAConfig.ForceRotate), every node holds a certificate of the new CA
    (its TLSInfo), and worker1's certificate on disk has a new serial and the new lifetime."""
    if not ctx.swarm_active():
        return ctx.not_initialised()
    swarm = _swarm(ctx)
    rotations = int(((swarm.get("Spec") or {}).get("CAConfig") or {}).get("ForceRotate") or 0)
    if not rotations:
        return Result(False, "The root CA has not been rotated yet.", ("CAConfig: ForceRotate 0",),
                      hint=ctx.step.hints[0])
    issuer = (swarm.get("TLSInfo") or {}).get("CertIssuerPublicKey")
    behind = sorted(n["Description"]["Hostname"] for n in ctx.api.nodes() if n["Status"]["State"] == "ready"
                    and (n["Description"].get("TLSInfo") or {}).get("CertIssuerPublicKey") != issuer)
    if swarm.get("RootRotationInProgress") or behind:
        return Result(False, "The root CA rotation is in progress: "
                      f"{', '.join(behind) or 'some nodes'} still hold certificates of the old CA.",
                      (f"nodes on the old CA: {', '.join(behind) or 'none'}",), pending=True,
                      hint="`docker swarm ca --rotate` waits until every node has a new certificate: wait a moment.")
    tnode, tpath = _node(ctx, "token_node"), str(ctx.params.get("token", "/root/token-before-ca"))
    saved, current = _saved_token(tnode, tpath), _worker_token(ctx)
    if saved is not None and current is not None and saved.group(1) == current.group(1):
        return Result(False, f"The token saved in {tpath} already names the new root CA: it was saved after "
                      "the rotation.", (f"{tpath}: {_short(saved)}",),
                      hint=f"Save the token again on {tnode.name}, then run `docker swarm ca --rotate` on "
                      f"{ctx.manager.name} once more: the next step needs a token of the old CA.")
    node, path = _node(ctx, default="worker1"), str(ctx.params.get("saved", "/root/cert-before"))
    cert = cert_on_disk(node)
    if cert is None:
        return Result(False, f"Could not read {node.name}'s certificate.", pending=True, hint="Wait a moment.")
    before = node.run(f"cat {path}")
    old = SERIAL.search(before.stdout) if before.ok else None
    old_serial = old.group(1).upper() if old else ""
    if old_serial == cert["serial"]:
        return Result(False, f"{node.name}'s certificate is still the one saved in {path}.",
                      (cert_line(node.name, cert),), pending=True, hint="Wait a moment: it is re-issued.")
    hours = _expiry_hours(ctx)
    evidence = [f"root CA rotated ({rotations} time{'s' if rotations > 1 else ''}); every node holds a certificate "
                "of the new CA",
                f"{node.name}'s serial: {old_serial[:8] + '…' if old_serial else f'(no copy in {path})'} -> "
                f"{cert['serial'][:8]}…, valid {cert['days']} days (certificates now live {hours / 24:g} days)"]
    if current is not None:
        evidence.append(f"worker token now: {_short(current)}" + (f" (before: {_short(saved)})" if saved else ""))
    return judge_answer(ctx, ["no", "n", "it changes", "no it changes"] if _token_changed(ctx) == "no" else
                        ["yes", "y"], evidence)
