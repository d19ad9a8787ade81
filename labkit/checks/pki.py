"""What `docker swarm init` created, each fact read from manager1's own disk.

Facts on disk are read with pytest-testinfra (the same host object a test
would use), certificate details with the node's own openssl, so a learner can
run every command a check relies on. Each check reads what it needs in one
command on the node, to stay fast. A node's own certificate, which checks of
later labs read while engines start, is read as a file and parsed here
(`cert_on_disk`), to the same fields the learner's openssl prints.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from cryptography import x509

from labkit.backends.base import Node
from labkit.checks.base import Context, Result, check, judge_answer, sections

SWARM_DIR = "/var/lib/docker/swarm"
CA_CERT = f"{SWARM_DIR}/certificates/swarm-root-ca.crt"
NODE_CERT = f"{SWARM_DIR}/certificates/swarm-node.crt"
RAFT_DIR = f"{SWARM_DIR}/raft"
SERIAL = re.compile(r"^serial=([0-9A-Fa-f]+)$", re.MULTILINE)
TOKEN_RE = re.compile(r"SWMTKN-1-([0-9a-z]{50})-([0-9a-z]{25})")
_NAMES = "-nameopt RFC2253"


def _read(ctx: Context, script: str) -> dict[str, str]:
    """Run SCRIPT on the manager; its output is sections, each led by a '== name' line."""
    return sections(ctx.manager.host.run(script).stdout)


def _dn(text: str) -> dict[str, str]:
    """'subject=CN=swarm-ca' or 'issuer=O=..,OU=..,CN=..' -> {'CN': ..., ...}."""
    value = text.strip().split("=", 1)[1] if "=" in text else ""
    return dict(part.split("=", 1) for part in value.split(",") if "=" in part)


def _ca(ctx: Context) -> dict[str, str]:
    return _read(ctx, f"echo '== pem'; cat {CA_CERT} 2>/dev/null; "
                      f"echo '== subject'; openssl x509 -in {CA_CERT} -noout -subject {_NAMES} 2>/dev/null")


def _node_cert(ctx: Context) -> dict[str, str]:
    return _read(ctx, f"echo '== verify'; openssl verify -CAfile {CA_CERT} {NODE_CERT} 2>&1; "
                      f"echo '== subject'; openssl x509 -in {NODE_CERT} -noout -subject {_NAMES} 2>/dev/null; "
                      f"echo '== issuer'; openssl x509 -in {NODE_CERT} -noout -issuer {_NAMES} 2>/dev/null")


def ca_digest(pem: str) -> str:
    """The CA digest a join token carries: sha256 of the root CA's PEM, in base36, 50 digits."""
    number = int(hashlib.sha256(pem.encode()).hexdigest(), 16)
    digits = ""
    while number:
        number, rest = divmod(number, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[rest] + digits
    return digits.rjust(50, "0")


def cert_on_disk(node: Node) -> dict[str, Any] | None:
    """NODE's certificate on its disk: subject (OU, CN, O), serial and lifetime in days, as `openssl x509
    -in NODE_CERT -noout -subject -serial -startdate -enddate` shows them (None: unreadable). Read as a file
    and parsed here: an openssl run in the node costs an exec, up to 0.4 s while its engine is busy."""
    pem = node.read_text(NODE_CERT)
    try:
        cert = x509.load_pem_x509_certificate(pem.encode()) if pem else None
    except ValueError:
        return None
    if cert is None:
        return None
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    return {"subject": {a.rfc4514_attribute_name: str(a.value) for a in cert.subject},
            "serial": openssl_serial(cert.serial_number), "days": round(lifetime.total_seconds() / 86400)}


def openssl_serial(number: int) -> str:
    """A serial number as `openssl x509 -serial` prints it: upper-case hex, two digits per byte."""
    digits = format(number, "X")
    return digits.zfill(len(digits) + len(digits) % 2)


def cert_line(name: str, cert: dict[str, Any]) -> str:
    """One evidence line: the certificate on NAME's disk, as `cert_on_disk` read it."""
    subject = cert["subject"]
    return (f"{name}'s certificate on its disk: OU={subject.get('OU', '?')}, CN={subject.get('CN', '?')[:12]}…, "
            f"serial {cert['serial'][:8]}…, valid {cert['days']} days")


@check("root_ca", answer=lambda ctx: _dn(_ca(ctx).get("subject", "")).get("CN", ""))
def root_ca(ctx: Context) -> Result:
    if not ctx.swarm_active():
        return ctx.not_initialised()
    ca = _ca(ctx)
    on_disk = ca.get("pem", "").strip()
    if not on_disk:
        return Result(False, f"{CA_CERT} is missing on {ctx.manager.name}.", hint="Was the swarm created here?")
    if ctx.manager.run("docker swarm ca").stdout.strip() != on_disk:
        return Result(False, "`docker swarm ca` prints another certificate than the one on disk.",
                      hint="The root CA was rotated; run `docker swarm ca` again.")
    cn = _dn(ca.get("subject", "")).get("CN", "")
    return judge_answer(ctx, [cn], [f"{CA_CERT} exists and equals what `docker swarm ca` prints",
                                    f"subject CN={cn}"])


@check("node_certificate", answer=lambda ctx: _dn(_node_cert(ctx).get("subject", "")).get("OU", ""))
def node_certificate(ctx: Context) -> Result:
    if not ctx.swarm_active():
        return ctx.not_initialised()
    cert = _node_cert(ctx)
    verify = cert.get("verify", "").strip()
    if not verify.endswith(": OK"):
        return Result(False, f"{ctx.manager.name}'s node certificate is not signed by the swarm's root CA.",
                      (verify,), hint="Run the openssl verify command.")
    subject, issuer = _dn(cert.get("subject", "")), _dn(cert.get("issuer", ""))
    node_id = ctx.swarm_state(ctx.manager).get("NodeID", "")
    evidence = [f"issuer CN={issuer.get('CN')} (the root CA), verified: OK",
                f"subject OU={subject.get('OU')}, CN={subject.get('CN')} ({ctx.manager.name}'s node id: {node_id})"]
    if subject.get("CN") != node_id:
        return Result(False, "The node certificate names another node id.", tuple(evidence), hint="Re-run init.")
    return judge_answer(ctx, [subject.get("OU", "")], evidence)


def _token_parts(ctx: Context) -> dict[str, re.Match[str] | None]:
    tokens = ctx.manager.docker.swarm.attrs.get("JoinTokens", {})
    return {role: TOKEN_RE.fullmatch(tokens.get(role, "")) for role in ("Worker", "Manager")}


@check("join_tokens", answer=lambda ctx: "the digest")
def join_tokens(ctx: Context) -> Result:
    """Which part the two tokens share (the root CA's digest), and that it is the CA's digest for real."""
    if not ctx.swarm_active():
        return ctx.not_initialised()
    parts = _token_parts(ctx)
    digest = ca_digest(ctx.manager.host.file(CA_CERT).content_string)
    for role, m in parts.items():
        if not m:
            return Result(False, f"The {role.lower()} join token is missing or malformed.", hint="Re-run init.")
        if m.group(1) != digest:
            return Result(False, f"The {role.lower()} token does not carry the root CA's digest.",
                          hint="The CA was rotated; print the tokens again.")
    worker, manager = parts["Worker"], parts["Manager"]
    assert worker is not None and manager is not None
    if worker.group(2) == manager.group(2):
        return Result(False, "Worker and manager tokens are the same.", hint="Rotate them.")
    evidence = [f"both tokens: SWMTKN-1-{digest[:10]}…: the sha256 digest of the root CA, the same in both",
                f"worker secret …{worker.group(2)[-6:]}, manager secret …{manager.group(2)[-6:]}: different",
                "a joining node checks the digest against the CA it is shown (is this my swarm?); "
                "the swarm checks the secret (may this node join, and as what?)"]
    accepted = ["second", "the second", "the second part", "2", "2nd", "digest", "the digest", "ca digest",
                "the ca digest", "the root ca digest", "the digest of the root ca", "ca hash", "the ca hash",
                digest, digest[:8], f"SWMTKN-1-{digest}"]
    return judge_answer(ctx, accepted, evidence)


_DATES = re.compile(r"notBefore=(.+)\nnotAfter=(.+)")


def _validity_days(text: str) -> int | None:
    """Days between notBefore and notAfter in `openssl x509 -startdate -enddate` output."""
    m = _DATES.search(text)
    if not m:
        return None
    fmt = "%b %d %H:%M:%S %Y %Z"
    start, end = (datetime.strptime(" ".join(v.split()), fmt) for v in m.groups())
    return round((end - start).total_seconds() / 86400)


def _lifetimes(ctx: Context) -> tuple[int | None, int | None]:
    dates = "-noout -startdate -enddate 2>/dev/null"
    parts = _read(ctx, f"echo '== node'; openssl x509 -in {NODE_CERT} {dates}; "
                       f"echo '== ca'; openssl x509 -in {CA_CERT} {dates}")
    return _validity_days(parts.get("node", "")), _validity_days(parts.get("ca", ""))


@check("cert_days", answer=lambda ctx: str(_lifetimes(ctx)[0] or ""))
def cert_days(ctx: Context) -> Result:
    """How many days manager1's node certificate is valid (90 by default), next to the root CA's (20 years)."""
    if not ctx.swarm_active():
        return ctx.not_initialised()
    node, ca = _lifetimes(ctx)
    if node is None or ca is None:
        return Result(False, f"Could not read the certificates' dates on {ctx.manager.name}.",
                      hint="Run the openssl command: it prints notBefore and notAfter.")
    evidence = [f"node certificate: valid {node} days, renewed automatically before it expires",
                f"root CA: valid {ca} days (about {ca / 365:.0f} years)"]
    explain = {str(ca): f"{ca} days is the root CA's lifetime. Node certificates are short-lived and "
                        "renewed automatically, so a stolen one soon stops working; the CA that signs them "
                        "lives long, because replacing it touches every node.",
               f"{ca / 365:.0f} years": f"That is the root CA's lifetime; the node certificate's is {node} days."}
    return judge_answer(ctx, [str(node), f"{node} days", f"{node}d"], evidence, explain)


@check("raft_encrypted", answer=lambda ctx: "yes")
def raft_encrypted(ctx: Context) -> Result:
    if not ctx.swarm_active():
        return ctx.not_initialised()
    raft = _read(ctx, f"echo '== dirs'; ls {RAFT_DIR} 2>/dev/null; echo '== clear'; grep -rl SWMTKN {RAFT_DIR}")
    dirs = raft.get("dirs", "").split()
    if not {"wal-v3-encrypted", "snap-v3-encrypted"} <= set(dirs):
        return Result(False, f"No encrypted Raft data under {RAFT_DIR}.", (f"found: {' '.join(dirs)}",),
                      hint="Is this node a manager?")
    clear = raft.get("clear", "").strip()
    evidence = [f"{RAFT_DIR}: wal-v3-encrypted/ and snap-v3-encrypted/",
                f"found in clear text in {clear}" if clear else
                "the join tokens stored in Raft are not found in clear text"]
    if clear:
        return Result(False, "The Raft data holds join tokens in clear text.", tuple(evidence),
                      hint="This engine does not encrypt Raft data.")
    return judge_answer(ctx, ["yes", "y", "encrypted", "true"], evidence)
