"""Nodes of a dind lab kept from reaching some others for a moment, their first packets held rather than
refused: a node that does not answer ARP cannot be reached by one that does not know its MAC address yet;
the kernel of the one that dials holds its packets (its socket waits, SYN_SENT) and asks again. Asked often,
the moment the other answers, they go. A refused dial (a reset, a port not listening yet) costs a Swarm
engine about a second: gRPC waits that long before it tries again.

Each node is reached in its own network namespace (nsenter, as root): its neighbours forgotten and asked
every PROBE_MS, and the held ones deaf to ARP on the lab network (arp_ignore 8; their containers' bridges
answer on) until heard. What it changes is given back by ``end``; a node started afresh has none of it.
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
    """Some nodes deaf to ARP, the others asking every PROBE_MS; ``end`` gives each back what it had."""

    def __init__(self) -> None:
        self.asking: dict[int, str] = {}  # node (host pid) -> the script that gives back its neighbour settings
        self.deaf: dict[int, tuple[str, str]] = {}  # node (host pid) -> its arp_ignore's file and value before

    def ask_often(self, pid: int, address: str) -> None:
        """Have the node at ADDRESS ask for its neighbours' MAC addresses every PROBE_MS (it knows none:
        its entry point forgot them as its engine ended; see node-entrypoint.sh)."""
        neigh = f"{SYSCTL}/neigh/{device(pid, address)}"
        before = _run(pid, f"cat {neigh}/retrans_time_ms {neigh}/mcast_solicit; "
                           f"echo {PROBE_MS} > {neigh}/retrans_time_ms; echo {PROBES} > {neigh}/mcast_solicit").split()
        self.asking[pid] = f"echo {before[0]} > {neigh}/retrans_time_ms; echo {before[1]} > {neigh}/mcast_solicit"

    def deafen(self, nodes: dict[int, str]) -> None:
        """Have NODES (host pid: address) answer no ARP on the interface of that address (the lab network's;
        their containers' bridges answer on)."""
        for pid, address in nodes.items():
            conf = f"{SYSCTL}/conf/{device(pid, address)}/arp_ignore"
            before = _run(pid, f"cat {conf}; echo 8 > {conf}").strip()
            self.deaf.setdefault(pid, (conf, before))

    def hear(self, pids: list[int]) -> None:
        for pid in pids:
            if pid in self.deaf:
                conf, before = self.deaf[pid]
                _run(pid, f"echo {before} > {conf}")
                del self.deaf[pid]

    def end(self) -> None:
        """Every node heard again and asking as it did (a node gone meanwhile: nothing to give back)."""
        for pid in list(self.deaf):
            with contextlib.suppress(BackendError):
                self.hear([pid])
            self.deaf.pop(pid, None)
        while self.asking:
            pid, script = self.asking.popitem()
            with contextlib.suppress(BackendError):
                _run(pid, script)
