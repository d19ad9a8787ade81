"""What `docker swarm init` created, each fact read from manager1's own disk.

Facts on disk are read with pytest-testinfra (the same host object a test
would use), certificate details with the node's own openssl, so a learner can
run every command the check relies on.
"""

from __future__ import annotations

import hashlib
import re

from labkit.checks.base import Context, Result, check, judge_answer

SWARM_DIR = "/var/lib/docker/swarm"
CA_CERT = f"{SWARM_DIR}/certificates/swarm-root-ca.crt"
NODE_CERT = f"{SWARM_DIR}/certificates/swarm-node.crt"
RAFT_DIR = f"{SWARM_DIR}/raft"
TOKEN_RE = re.compile(r"SWMTKN-1-([0-9a-z]{50})-([0-9a-z]{25})")


def _openssl_field(ctx: Context, cert: str, what: str) -> dict[str, str]:
    """Subject or issuer of CERT on the manager, as {'CN': ..., 'OU': ..., 'O': ...}."""
    out = ctx.manager.host.check_output(f"openssl x509 -in {cert} -noout -{what} -nameopt RFC2253")
    value = out.split("=", 1)[1] if "=" in out else ""
    return dict(part.split("=", 1) for part in value.split(",") if "=" in part)


def _ca_cn(ctx: Context) -> str:
    return _openssl_field(ctx, CA_CERT, "subject").get("CN", "")


def ca_digest(pem: str) -> str:
    """The CA digest a join token carries: sha256 of the root CA's PEM, in base36, 50 digits."""
    number = int(hashlib.sha256(pem.encode()).hexdigest(), 16)
    digits = ""
    while number:
        number, rest = divmod(number, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[rest] + digits
    return digits.rjust(50, "0")


@check("root_ca", answer=_ca_cn)
def root_ca(ctx: Context) -> Result:
    if not ctx.swarm_active():
        return ctx.not_initialised()
    host = ctx.manager.host
    ca = host.file(CA_CERT)
    if not ca.exists:
        return Result(False, f"{CA_CERT} is missing on {ctx.manager.name}.", hint="Was the swarm created here?")
    printed = ctx.manager.run("docker swarm ca").stdout.strip()
    on_disk = ca.content_string.strip()
    if printed != on_disk:
        return Result(False, "`docker swarm ca` prints another certificate than the one on disk.",
                      hint="The root CA was rotated; run `docker swarm ca` again.")
    return judge_answer(ctx, [_ca_cn(ctx)], [f"{CA_CERT} exists and equals what `docker swarm ca` prints",
                                              f"subject CN={_ca_cn(ctx)}"])


@check("node_certificate", answer=lambda ctx: _openssl_field(ctx, NODE_CERT, "subject").get("OU", ""))
def node_certificate(ctx: Context) -> Result:
    if not ctx.swarm_active():
        return ctx.not_initialised()
    host = ctx.manager.host
    verify = host.run(f"openssl verify -CAfile {CA_CERT} {NODE_CERT}")
    if verify.rc != 0:
        return Result(False, f"{ctx.manager.name}'s node certificate is not signed by the swarm's root CA.",
                      (verify.stdout.strip() or verify.stderr.strip(),), hint="Run the openssl verify command.")
    subject = _openssl_field(ctx, NODE_CERT, "subject")
    issuer = _openssl_field(ctx, NODE_CERT, "issuer")
    node_id = ctx.swarm_state(ctx.manager).get("NodeID", "")
    evidence = [f"issuer CN={issuer.get('CN')} (the root CA), verified: OK",
                f"subject OU={subject.get('OU')}, CN={subject.get('CN')} (manager1's node id: {node_id})"]
    if subject.get("CN") != node_id:
        return Result(False, "The node certificate names another node id.", tuple(evidence), hint="Re-run init.")
    return judge_answer(ctx, [subject.get("OU", "")], evidence)


@check("join_tokens", answer=lambda ctx: "SWMTKN-1")
def join_tokens(ctx: Context) -> Result:
    if not ctx.swarm_active():
        return ctx.not_initialised()
    tokens = ctx.manager.docker.swarm.attrs.get("JoinTokens", {})
    digest = ca_digest(ctx.manager.host.file(CA_CERT).content_string)
    evidence = []
    for role in ("Worker", "Manager"):
        m = TOKEN_RE.fullmatch(tokens.get(role, ""))
        if not m:
            return Result(False, f"The {role.lower()} join token is missing or malformed.", hint="Re-run init.")
        if m.group(1) != digest:
            return Result(False, f"The {role.lower()} token does not carry the root CA's digest.",
                          hint="The CA was rotated; print the tokens again.")
        evidence.append(f"{role.lower()} token: SWMTKN-1-{m.group(1)[:8]}…-<secret>, carries the CA digest")
    if tokens["Worker"] == tokens["Manager"]:
        return Result(False, "Worker and manager tokens are the same.", hint="Rotate them.")
    return judge_answer(ctx, ["SWMTKN-1", "SWMTKN-1-"], evidence)


@check("raft_encrypted", answer=lambda ctx: "yes")
def raft_encrypted(ctx: Context) -> Result:
    if not ctx.swarm_active():
        return ctx.not_initialised()
    host = ctx.manager.host
    wal, snap = host.file(f"{RAFT_DIR}/wal-v3-encrypted"), host.file(f"{RAFT_DIR}/snap-v3-encrypted")
    if not (wal.is_directory and snap.is_directory):
        return Result(False, f"No encrypted Raft data under {RAFT_DIR}.", hint="Is this node a manager?")
    clear = host.run(f"grep -rl SWMTKN {RAFT_DIR}")
    evidence = [f"{RAFT_DIR}: wal-v3-encrypted/ and snap-v3-encrypted/",
                "the join tokens stored in Raft are not found in clear text" if clear.rc == 1 else
                f"found in clear text in {clear.stdout.strip()}"]
    if clear.rc == 0:
        return Result(False, "The Raft data holds join tokens in clear text.", tuple(evidence),
                      hint="This engine does not encrypt Raft data.")
    return judge_answer(ctx, ["yes", "y", "encrypted", "true"], evidence)
