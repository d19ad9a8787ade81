"""The sockets a put-back waits on (a manager listening, a node connected to another), asked of the real
kernel about this test's own network namespace, as labkit asks about a node's (root only: setns)."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys

import pytest

from labkit.backends import dind_states, tcp_sockets

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="asking another network namespace needs root")
ME = os.getpid()


def listener(family: int = socket.AF_INET6, address: str = "::") -> socket.socket:
    """A socket bound to a free port, not listening yet (an engine listens on "[::]", as here)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((address, 0))
    return sock


@as_root
def test_a_manager_listens_once_its_swarm_port_is_in_listen_state() -> None:
    """A worker's engine starts once its manager listens on 2377: a worker that finds none waits a second
    or more before it tries again."""
    with listener() as sock:
        port = sock.getsockname()[1]
        assert not dind_states.listening(ME, port)  # bound, not listening
        sock.listen()
        assert dind_states.listening(ME, port) and port in dind_states.listening_ports(ME)
    assert not dind_states.listening(ME, port)


@as_root
def test_a_manager_is_ready_for_its_workers_once_it_also_listens_for_gossip(monkeypatch) -> None:
    """A worker joins the nodes' gossip (7946) once, as its engine starts, and retries only a minute later:
    a worker started when its manager listened on 2377 alone went a minute without service discovery
    (a CI run's networks lab)."""
    with listener() as swarm, listener(socket.AF_INET, "0.0.0.0") as gossip:
        monkeypatch.setattr(dind_states, "SWARM_PORT", swarm.getsockname()[1])
        monkeypatch.setattr(dind_states, "GOSSIP_PORT", gossip.getsockname()[1])
        swarm.listen()
        assert not dind_states.manager_ready(ME)
        gossip.listen()
        assert dind_states.manager_ready(ME)


@as_root
def test_a_node_is_connected_once_its_connection_to_the_other_is_established() -> None:
    """Before the saved leader campaigns, each manager must be connected to the others (a vote asked before
    is lost); the workers start together, connected to their frozen leader."""
    with listener(socket.AF_INET, "127.0.0.1") as server, socket.socket() as client:
        port = server.getsockname()[1]
        server.listen()
        assert not dind_states.connected(ME, "127.0.0.1", port)
        client.connect(("127.0.0.1", port))
        assert dind_states.connected(ME, "127.0.0.1", port)
        assert not dind_states.connected(ME, "127.0.0.2", port)  # another node
        assert not dind_states.connected(ME, "127.0.0.1", port + 1 if port < 65535 else port - 1)


@as_root
def test_a_process_that_is_gone_has_no_sockets() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert tcp_sockets.sockets(gone.pid, tcp_sockets.LISTEN) == []
    assert not dind_states.manager_ready(gone.pid)


def test_the_kernels_refusal_is_an_error_and_the_dump_ends_on_done() -> None:
    """The answer's framing, as the kernel writes it: messages aligned to 4 bytes, then NLMSG_DONE."""
    one = struct.pack("=BBBB", socket.AF_INET, tcp_sockets.ESTABLISHED, 0, 0) + (40000).to_bytes(2, "big") \
        + (2377).to_bytes(2, "big") + bytes([172, 30, 10, 21]) + bytes(12) + bytes([172, 30, 10, 11]) + bytes(12)
    one += bytes(8 + 4 * 5)  # the sockid's interface and cookie, then expires, queues, uid, inode
    message = tcp_sockets.HEADER.pack(tcp_sockets.HEADER.size + len(one), 20, 2, 1, 0) + one
    done = tcp_sockets.HEADER.pack(20, tcp_sockets.NLMSG_DONE, 2, 1, 0) + bytes(4)
    found, ended = tcp_sockets.parse(message + message)
    assert not ended and found == [tcp_sockets.Socket(1, ("172.30.10.21", 40000), ("172.30.10.11", 2377))] * 2
    assert tcp_sockets.parse(message + done) == (found[:1], True)
    refused = tcp_sockets.HEADER.pack(36, tcp_sockets.NLMSG_ERROR, 0, 1, 0) + struct.pack("=i", -1) + bytes(16)
    with pytest.raises(OSError, match="sock_diag"):
        tcp_sockets.parse(refused)
