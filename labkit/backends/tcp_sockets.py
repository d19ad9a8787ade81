"""The TCP sockets of another process's network namespace (a lab node's), asked of the kernel over
netlink (sock_diag), as `ss` asks.

A put-back polls its nodes' sockets every 10 ms (a manager listening, a worker connected to its leader).
Reading /proc/PID/net/tcp walks every bucket of the host's table of connections, which the nodes share
(262144 buckets here): about 4 ms of CPU a read, and the polls took most of a core while the engines
needed both. Asked by netlink, a node's listening sockets cost 0.07 ms, its established IPv4 connections
0.05 ms (measured here; see the README's Rewinds).
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
CLONE_NEWNET = 0x40000000
ESTABLISHED, LISTEN = 1, 10  # the kernel's TCP states
HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
REQUEST = struct.Struct("=BBBxI48x")  # inet_diag_req_v2: family, protocol, extensions, states; a zero sockid
MESSAGE = struct.Struct("=BBBB2s2s16s16s")  # inet_diag_msg: family, state, timer, retransmits, ports, addresses


@dataclass(frozen=True)
class Socket:
    """A TCP socket: its state, and its local and remote (address, port)."""

    state: int
    local: tuple[str, int]
    remote: tuple[str, int]


def sockets(pid: int, state: int, family: int = socket.AF_INET6) -> list[Socket]:
    """The TCP sockets of FAMILY in STATE in the network namespace of process PID; none if PID is gone.
    (A listener on "[::]" is an AF_INET6 socket; Go dials an IPv4 address from an AF_INET one.)"""
    try:
        with _namespace(pid):
            diag = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    except FileNotFoundError:  # /proc/PID: the process is gone
        return []
    with diag:
        diag.send(request(family, state))
        found: list[Socket] = []
        while True:
            part, done = parse(diag.recv(65536))
            found += part
            if done:
                return found


def request(family: int, state: int) -> bytes:
    """A netlink message asking for every TCP socket of FAMILY in STATE."""
    body = REQUEST.pack(family, socket.IPPROTO_TCP, 0, 1 << state)
    return HEADER.pack(HEADER.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body


def parse(data: bytes) -> tuple[list[Socket], bool]:
    """The sockets in one netlink answer DATA, and whether it ends the dump (OSError: the kernel refused)."""
    found, at = [], 0
    while at + HEADER.size <= len(data):
        length, kind = HEADER.unpack_from(data, at)[:2]
        if kind == NLMSG_DONE:
            return found, True
        if kind == NLMSG_ERROR:
            code = struct.unpack_from("=i", data, at + HEADER.size)[0]
            raise OSError(-code, f"sock_diag: {os.strerror(-code)}")
        family, state, _, _, sport, dport, src, dst = MESSAGE.unpack_from(data, at + HEADER.size)
        found.append(Socket(state, (_address(family, src), int.from_bytes(sport, "big")),
                            (_address(family, dst), int.from_bytes(dport, "big"))))
        at += (length + 3) & ~3
    return found, False


def _address(family: int, raw: bytes) -> str:
    if family == socket.AF_INET:
        return str(ipaddress.IPv4Address(raw[:4]))
    address = ipaddress.IPv6Address(raw)
    return str(address.ipv4_mapped or address)


@contextlib.contextmanager
def _namespace(pid: int) -> Iterator[None]:
    """Run this thread in the network namespace of process PID meanwhile (a socket made then stays in
    it). Root only."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into the network namespace of process {pid}")
        finally:
            os.close(target)
        try:
            yield
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:  # never seen; a thread left elsewhere would be worse
                raise OSError(ctypes.get_errno(), "setns back into labkit's own network namespace")
    finally:
        os.close(own)
