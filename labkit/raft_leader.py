"""Giving a swarm put back with several managers its saved leader again, at once.

Put back, each manager's engine starts as a Raft follower, and Swarm elects a leader only when a
follower's election timer fires: 10 to 20 s (ElectionTick 10, a tick a second, randomized), and the
winner may be another manager than the one a replay leaves leading. Raft has a message for handing
leadership over, MsgTimeoutNow: the follower that gets it campaigns at once, and the others vote for it
(its log is as long as theirs). labkit sends it to the saved leader, over Swarm's own Raft API
(``docker.swarmkit.v1.Raft/ProcessRaftMessage`` on the swarm port, mutual TLS with that manager's own
node certificate), as a leader handing over would. Swarm's settings are left as they are; the Raft term
is one higher, as after any election.

The request is two small protobuf messages, written here by hand (field numbers from swarmkit's
``raft.proto`` and etcd's ``raftpb``); gRPC carries it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# gRPC's core writes its own errors to the terminal (a key it cannot use, a manager not listening): a
# learner resetting a lab would see them, while labkit only falls back to Swarm's own election.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import grpc  # after its verbosity is set

CERTIFICATES = Path("swarm") / "certificates"  # in an engine's folder: the node's TLS identity
METHOD = "/docker.swarmkit.v1.Raft/ProcessRaftMessage"
SERVER_NAME = "swarm-manager"  # every manager's certificate names its role
MSG_TIMEOUT_NOW = 14  # raftpb.MessageType
NEW_RAFT = re.compile(r"newRaft ([0-9a-f]+) \[peers")  # etcd's log line as a manager's Raft node starts


def raft_id(log: str) -> int | None:
    """The Raft ID of the manager whose engine wrote LOG, from the last start of its Raft node in it."""
    found = NEW_RAFT.findall(log)
    return int(found[-1], 16) if found else None


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def timeout_now(to: int) -> bytes:
    """A ProcessRaftMessageRequest (field 1: the message) carrying raftpb.Message{type: MsgTimeoutNow
    (field 1), to: TO (field 2)}; swarmkit drops a message meant for another Raft ID."""
    message = b"\x08" + _varint(MSG_TIMEOUT_NOW) + b"\x10" + _varint(to)
    return b"\x0a" + _varint(len(message)) + message


def key_pem(text: str) -> bytes:
    """Swarm's node key as TLS libraries read it: swarmkit writes headers into its PEM block (kek-version,
    raft-dek), which they refuse."""
    lines = [line for line in text.splitlines() if line.strip() and (line.startswith("-----") or ":" not in line)]
    return ("\n".join(lines) + "\n").encode()


def campaign(address: str, port: int, certificates: Path, to: int, timeout: float = 2.0) -> None:
    """Have the manager at ADDRESS (its swarm PORT; Raft ID TO) campaign for leadership now, asking with the node
    certificate in CERTIFICATES (an engine folder's, of a manager of the same swarm). Raises
    ConnectionError when the manager cannot be asked (a key locked by autolock, a manager not listening)."""
    try:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=(certificates / "swarm-root-ca.crt").read_bytes(),
            private_key=key_pem((certificates / "swarm-node.key").read_text()),
            certificate_chain=(certificates / "swarm-node.crt").read_bytes())
        with grpc.secure_channel(f"{address}:{port}", credentials,
                                 options=[("grpc.ssl_target_name_override", SERVER_NAME)]) as channel:
            channel.unary_unary(METHOD)(timeout_now(to), timeout=timeout)
    except (grpc.RpcError, OSError) as exc:
        raise ConnectionError(f"could not ask {address} to campaign: {exc}") from exc
