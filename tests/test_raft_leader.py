"""The message that has a put-back swarm's saved leader campaign at once (labkit.raft_leader), without an
engine: its bytes, the Raft ID read from an engine's log, the node key as TLS reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from labkit import raft_leader

# Two lines of a manager's engine log (20.10) as its Raft node starts again after a put-back.
LOG = """time="2026-12-06T08:25:40.757131067Z" level=info msg="27f9b1cda3368ea9 became follower at term 5" module=raft
time="2026-12-06T08:25:40.757157396Z" level=info msg="newRaft 27f9b1cda3368ea9 [peers: [27f9b1cda3368ea9,\
68c10ae3e92e0a5f,6f7e41cbec8ca8c2], term: 5, commit: 75, applied: 75, lastindex: 76, lastterm: 5]" module=raft
"""


def test_the_request_is_a_timeout_now_message_to_the_given_raft_id() -> None:
    """protobuf's own example: 150 is the varint 96 01. Field 1 of the request holds the message (length
    5): its type (field 1) MsgTimeoutNow, 14, and whom it is for (field 2)."""
    assert raft_leader.timeout_now(150) == bytes([0x0A, 0x05, 0x08, 0x0E, 0x10, 0x96, 0x01])


def test_a_64_bit_raft_id_is_written_whole() -> None:
    request = raft_leader.timeout_now(0x27F9B1CDA3368EA9)
    varint = request[5:]
    assert request[1] == len(request) - 2 and len(varint) == 9 and all(b & 0x80 for b in varint[:-1])
    assert sum((b & 0x7F) << (7 * i) for i, b in enumerate(varint)) == 0x27F9B1CDA3368EA9


@pytest.mark.parametrize(("log", "found"), [(LOG, 0x27F9B1CDA3368EA9), ("", None),
                                            (LOG + LOG.replace("27f9b1cda3368ea9", "75750870298b96ed"),
                                             0x75750870298B96ED)])
def test_the_raft_id_is_that_of_the_last_start_in_the_log(log: str, found: int | None) -> None:
    assert raft_leader.raft_id(log) == found


def test_the_node_key_loses_swarmkits_headers_and_stays_the_same_key() -> None:
    """swarmkit keeps the Raft encryption key in its PEM headers; gRPC's TLS refuses a key with them
    ("Failed to create security handshaker", seen against a manager)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    begin, rest = pem.split("\n", 1)
    swarm = f"{begin}\nkek-version: 10\nraft-dek: EiD7CDWrvEmHoC0XIRLIvXHNn+KIj4hnZijuyJ4pbGk6PQ==\n\n{rest}"
    cleaned = raft_leader.key_pem(swarm)
    assert b"raft-dek" not in cleaned and b"kek-version" not in cleaned and cleaned.startswith(begin.encode())
    assert serialization.load_pem_private_key(cleaned, None).private_numbers() == key.private_numbers()


def test_a_manager_that_cannot_be_asked_is_a_connection_error(tmp_path: Path) -> None:
    """No certificate in the folder (an engine folder not put back): the caller lets Swarm elect."""
    with pytest.raises(ConnectionError):
        raft_leader.campaign("127.0.0.1", 2377, tmp_path, 1, timeout=0.5)
