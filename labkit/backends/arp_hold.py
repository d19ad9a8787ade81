"""Nodes of a dind lab kept from reaching some others for a moment, their first packets held rather than
refused: a node that does not answer ARP cannot be reached by one that does not know its MAC address yet;
the kernel of the one that dials holds its packets (its socket waits, SYN_SENT) and asks again. Asked often,
the moment the other answers, they go. A refused dial (a reset, a port not listening yet) costs a Swarm
engine about a second: gRPC waits that long before it tries again.

Each node is reached in its own network namespace (nsenter, as root): its neighbours forgotten and asked
every PROBE_MS, and the held ones deaf to ARP on the lab network (arp_ignore 8; their containers' bridges
answer on) until heard. ``end`` gives the kernel's own settings back; a node started afresh has them.

A hold can leak: a deaf node still asks for others' addresses, and Linux learns a requester's MAC from its
request, so a node it asked can reach it at once (its dial then refused as without the hold).
"""

from __future__ import annotations

import contextlib
import ipaddress
import subprocess
from pathlib import Path

from labkit.errors import BackendError

PROBE_MS = 10  # ms between a held node's ARP requests (the kernel's default: 1000)
PROBES = 1000  # ... and how many before it gives up on an address (10 s; the default: 3)
SYSCTL = "/proc/sys/net/ipv4"
KERNEL_ARP_IGNORE, KERNEL_RETRANS_MS, KERNEL_PROBES = 0, 1000, 3  # the kernel's own (the nodes never change them)


def _run(pid: int, script: str) -> str:
    """What SCRIPT (sh) prints in the network namespace of host process PID."""
    try:
        done = subprocess.run(["nsenter", "--target", str(pid), "--net", "sh", "-euc", script],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BackendError(f"could not reach a node's network namespace: {exc}") from exc
    if done.returncode:
        raise BackendError(f"a node's network settings could not be changed: {done.stderr.strip()}")
    return done.stdout


def device(pid: int, address: str, proc: Path = Path("/proc")) -> str:
    """The interface through which the network namespace of host process PID reaches its own ADDRESS's
    network (its routes, in /proc: addresses and masks as little-endian hex)."""
    wanted = int.from_bytes(ipaddress.IPv4Address(address).packed, "little")
    try:
        lines = (proc / str(pid) / "net" / "route").read_text().splitlines()[1:]
    except OSError as exc:
        raise BackendError(f"could not read a node's routes: {exc}") from exc
    for line in lines:
        fields = line.split()
        on_link = len(fields) > 7 and fields[2] == "00000000" and int(fields[7], 16)  # not the default route
        if on_link and wanted & int(fields[7], 16) == int(fields[1], 16):
            return fields[0]
    raise BackendError(f"no interface of the node reaches {address}")


class ArpHold:
    """Some nodes deaf to ARP, the others asking every PROBE_MS; ``end`` gives each back the kernel's own
    settings (not the ones it found: a put-back that labkit could not finish may have left its own)."""

    def __init__(self) -> None:
        self.asking: dict[int, str] = {}  # node (host pid) -> its lab network's neighbour settings folder
        self.deaf: dict[int, str] = {}  # node (host pid) -> its lab network's arp_ignore file

    def ask_often(self, pid: int, address: str) -> None:
        """Have the node at ADDRESS ask for its neighbours' MAC addresses every PROBE_MS (it knows none:
        its entry point forgot them as its engine ended; see node-entrypoint.sh)."""
        neigh = f"{SYSCTL}/neigh/{device(pid, address)}"
        _run(pid, f"echo {PROBE_MS} > {neigh}/retrans_time_ms; echo {PROBES} > {neigh}/mcast_solicit")
        self.asking[pid] = neigh

    def deafen(self, nodes: dict[int, str]) -> None:
        """Have NODES (host pid: address) answer no ARP on the interface of that address (the lab network's;
        their containers' bridges answer on)."""
        for pid, address in nodes.items():
            conf = f"{SYSCTL}/conf/{device(pid, address)}/arp_ignore"
            _run(pid, f"echo 8 > {conf}")
            self.deaf[pid] = conf

    def hear(self, pids: list[int]) -> None:
        for pid in pids:
            if pid in self.deaf:
                _run(pid, f"echo {KERNEL_ARP_IGNORE} > {self.deaf[pid]}")
                del self.deaf[pid]

    def end(self) -> None:
        """Every node heard again and asking as the kernel does (a node gone meanwhile: nothing to give back)."""
        for pid in list(self.deaf):
            with contextlib.suppress(BackendError):
                self.hear([pid])
            self.deaf.pop(pid, None)
        while self.asking:
            pid, neigh = self.asking.popitem()
            with contextlib.suppress(BackendError):
                _run(pid, f"echo {KERNEL_RETRANS_MS} > {neigh}/retrans_time_ms; "
                          f"echo {KERNEL_PROBES} > {neigh}/mcast_solicit")
