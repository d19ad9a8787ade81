"""The default backend: each node is a container on the local engine running its own dockerd.

Nodes sit on one internal lab network with fixed addresses, beside a hub
container that answers lab names (dnsmasq, never forwarding) and serves the lab
images as a registry mirror. Each inner engine listens on a unix socket in a
host directory (never on TCP), which is how ``Node.docker`` reaches it.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import shutil
import stat
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from labkit import engine, hub, images
from labkit.backends.base import (
    STATE_WORDS,
    Backend,
    Node,
    RunResult,
    failure_line,
    ping_socket,
    sorted_nodes,
    wait_for,
)
from labkit.backends.dind_states import HOME, DindStates, attached
from labkit.errors import BackendError, InvalidInput, LabkitError, NodeDown, NotPermitted
from labkit.kernel import kernel_findings
from labkit.report import Finding, Report
from labkit.settings import settings
from labkit.topology import (
    CANDIDATE_SUBNETS,
    LABEL_KIND,
    LABEL_LAB,
    LABEL_NODE,
    LABEL_ROLE,
    REGISTRY_PORT,
    AddressPlan,
    Names,
    NodeSpec,
    Topology,
    parse_node_name,
    pick_subnet,
)

ENGINE_TIMEOUT = 60.0
# The containers of a lab network are removed one at a time. Engine 20.10.24 (Debian 12's) can deadlock
# when an endpoint leaves a network while another joins or leaves it (libnetwork's getSvcRecords against
# processEndpointDelete; fixed upstream in 20.10.27): every later call about those containers then hangs
# until dockerd restarts. It happened in CI on a parallel `down`. (Joins alone were fixed in 20.10.23.)
LABEL_OWNER = "labkit.owner"  # uid of the user whose runtime directory holds the lab's sockets


def run_dir_root() -> Path:
    """Where labkit keeps each lab's runtime files (node sockets, resolver file), private to the user:
    $LABKIT_RUN_DIR, else /run/labkit for root, else $XDG_RUNTIME_DIR/labkit, else a state directory."""
    return settings().run_dir


def private_dir(path: Path) -> Path:
    """Create PATH (and its parents) readable by its owner only."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_uid == os.geteuid():
        path.chmod(0o700)
    return path

# Where --privileged is refused (no CAP_SYS_RESOURCE in the bounding set, as in
# some sandboxes), a node still runs with everything else it needs.
FALLBACK_HOST_CONFIG: dict[str, Any] = {
    "cap_add": ["ALL"],
    "cap_drop": ["SYS_RESOURCE"],
    "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
    "device_cgroup_rules": ["a *:* rwm"],
}
# `--security-opt systempaths=unconfined` is the CLI's word for these two.
UNMASKED_PATHS = {"MaskedPaths": [], "ReadonlyPaths": []}


def read_beneath(root: Path, path: str) -> bytes | None:
    """The bytes of regular file PATH under ROOT, each part of PATH opened without following a symbolic
    link; FileNotFoundError when there is no regular file there; None when it cannot be read this way (a
    link is the node's to resolve, ROOT may be out of reach)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    try:
        fds = [os.open(root, os.O_RDONLY | os.O_DIRECTORY)]
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            fds.append(os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fds[-1]))
        fds.append(os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fds[-1]))
        if not stat.S_ISREG(os.fstat(fds[-1]).st_mode):  # a fifo would hold `cat` until its timeout
            raise FileNotFoundError(errno.ENOENT, "not a regular file", path)
        with os.fdopen(fds.pop(), "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise
    except OSError:
        return None
    finally:
        for fd in fds:
            os.close(fd)


class DindNode(Node):
    def __init__(
        self, spec: NodeSpec, address: str, container: str, socket: Path, host: docker.DockerClient, lab: str
    ) -> None:
        super().__init__(spec.name, spec.role, address, lab)
        self.container_name = container
        self.socket = socket
        self._host = host

    def _connect(self, timeout: int = 60) -> docker.DockerClient:
        """A client of the node's engine; NodeDown (never a connection traceback) when it cannot answer."""
        state = self.container_state()
        if state != "running":
            raise NodeDown(self.name, STATE_WORDS.get(state, state), self.lab)
        if not ping_socket(self.socket):
            raise NodeDown(self.name, "not answering", self.lab)
        return engine.connect(f"unix://{self.socket}", timeout=timeout)

    def engine_answers(self) -> bool:
        return ping_socket(self.socket)

    def run(self, cmd: str | list[str], timeout: float = 60) -> RunResult:
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        try:
            container = self._host.containers.get(self.container_name)
            code, (out, err) = container.exec_run(["timeout", str(int(timeout)), *argv], demux=True)
        except docker.errors.NotFound:
            raise NodeDown(self.name, "missing", self.lab) from None
        except docker.errors.APIError:
            raise self.fault() or NodeDown(self.name, "not answering", self.lab) from None
        return RunResult(
            code if code is not None else -1,
            (out or b"").decode(errors="replace"),
            (err or b"").decode(errors="replace"),
        )

    def read_text(self, path: str) -> str | None:
        """Read straight from the node's filesystem, seen through its init process (as root: 1 ms, where a
        `cat` in the node costs an exec, 40 ms idle and up to 0.4 s while the engines start); else `cat`."""
        try:
            pid = int((self._host.containers.get(self.container_name).attrs.get("State") or {}).get("Pid") or 0)
        except docker.errors.NotFound:
            raise NodeDown(self.name, "missing", self.lab) from None
        try:
            data = read_beneath(Path(f"/proc/{pid}/root"), path) if pid else None
        except FileNotFoundError:
            return None
        return data.decode(errors="replace") if data is not None else super().read_text(path)

    def testinfra_spec(self) -> str:
        return f"docker://{self.container_name}"

    def container_state(self) -> str:
        try:
            return str(self._host.containers.get(self.container_name).status)
        except docker.errors.NotFound:
            return "missing"

    def stopped_at(self) -> str | None:
        try:
            state = self._host.containers.get(self.container_name).attrs["State"]
        except docker.errors.NotFound:
            return None
        return None if state.get("Running") else str(state.get("FinishedAt") or "") or None

    def network_state(self) -> str:
        try:
            container = self._host.containers.get(self.container_name)
        except docker.errors.NotFound:
            return "-"
        return "connected" if attached(container, Names(self.lab).network) else "disconnected"


class DindBackend(Backend):
    name = "dind"

    def __init__(self, lab: str, host: docker.DockerClient | None = None, shared: Path | None = None) -> None:
        """SHARED: a host folder seen as /vagrant on every node (as Vagrant's synced folder)."""
        super().__init__(lab)
        self.names = Names(lab)
        self._client = host
        self.shared = shared

    @property
    def host(self) -> docker.DockerClient:
        if self._client is None:
            self._client = engine.host_client()
        return self._client

    @property
    def run_dir(self) -> Path:
        return run_dir_root() / self.lab

    # ----------------------------------------------------------------- reading

    def _containers(self, kind: str | None = None) -> list[Container]:
        filters = [f"{LABEL_LAB}={self.lab}"] + ([f"{LABEL_KIND}={kind}"] if kind else [])
        return self.host.containers.list(all=True, filters={"label": filters}, ignore_removed=True)

    def _network(self) -> docker.models.networks.Network | None:
        found = self.host.networks.list(filters={"label": [f"{LABEL_LAB}={self.lab}"]})
        return found[0] if found else None

    def _plan(self) -> AddressPlan | None:
        network = self._network()
        if network is None:
            return None
        subnet = network.attrs["IPAM"]["Config"][0]["Subnet"]
        return AddressPlan(ipaddress.ip_network(subnet))

    def nodes(self) -> list[Node]:
        plan = self._plan()
        found: list[Node] = []
        for c in self._containers("node"):
            spec = parse_node_name(c.labels[LABEL_NODE])
            address = plan.node(spec) if plan else "-"
            socket = _mounted_socket(c) or self._socket(spec.name)
            found.append(DindNode(spec, address, c.name, socket, self.host, self.lab))
        if found:
            self._check_owner(found)
        return sorted_nodes(found)

    def _socket(self, node: str) -> Path:
        return self.run_dir / node / "docker.sock"

    def _check_owner(self, nodes: list[DindNode]) -> None:
        """A lab another user started keeps its sockets in their private directory: say so plainly."""
        if os.geteuid() == 0 or os.access(nodes[0].socket.parent, os.X_OK):
            return
        owner = self._containers("node")[0].labels.get(LABEL_OWNER)
        if owner is not None and owner != str(os.geteuid()):
            raise NotPermitted(
                f"Lab '{self.lab}' was started by another user (uid {owner}); its nodes' sockets are private "
                "to them. Start a lab of your own under another name: `labkit up --lab NAME` (or LABKIT_LAB)."
            )

    def privileged_mode(self) -> str | None:
        """'privileged' or 'fallback' for the running nodes, None without nodes."""
        for c in self._containers("node"):
            return "privileged" if c.attrs["HostConfig"].get("Privileged") else "fallback"
        return None

    def shell_command(self, node: str) -> list[str]:
        self.node(node)  # an unknown name is a clear error
        tty = ["-t"] if sys.stdin.isatty() else []
        return ["docker", "exec", "-i", *tty, self.names.container(node), "/bin/bash"]

    def findings(self) -> list[Finding]:
        """The local engine, the images, the node mode (privileged or fallback), the shared kernel."""
        return [*self._engine_findings(), *kernel_findings()]

    def _engine_findings(self) -> list[Finding]:
        try:
            host = engine.host_client()
            version = host.version()
        except LabkitError as exc:
            return [Finding("engine", "fail", str(exc))]
        found = [
            Finding(
                "engine",
                "ok",
                f"Docker {version.get('Version')} (API {version.get('ApiVersion')}), "
                f"{host.info().get('Driver')} storage",
            )
        ]
        current = images.images_are_current(host)
        found.append(
            Finding(
                "images",
                "ok" if current else "warn",
                "node, alpine and nginx (latest, 1.24, 1.25, 1.26-broken) images are current"
                if current
                else "not built yet (or their recipe changed): `labkit up` builds them (about a minute)",
            )
        )
        mode = self.privileged_mode()
        if mode is None and current:
            mode = f"{self.probe_privileged()} (would be used by `labkit up`)"
        if mode is None:
            found.append(Finding("node mode", "warn", "unknown until the node image is built"))
        elif mode.startswith("privileged"):
            found.append(Finding("node mode", "ok", mode))
        else:
            found.append(
                Finding(
                    "node mode",
                    "ok",
                    f"{mode}: --privileged is refused here, so nodes run with all "
                    "capabilities but SYS_RESOURCE and writable cgroups",
                )
            )
        return found

    # ----------------------------------------------------------------- failing nodes on purpose

    def _node_container(self, name: str) -> tuple[DindNode, Container]:
        node = self.node(name)  # an unknown name is a clear error
        assert isinstance(node, DindNode)
        try:
            return node, self.host.containers.get(node.container_name)
        except docker.errors.NotFound:
            raise NodeDown(name, "missing", self.lab) from None

    def power(self, node: str, on: bool, report: Report) -> str:
        """Off: the node's container is killed (SIGKILL, no stop timeout), like pulling a machine's plug:
        its dockerd gets no chance to shut down cleanly, so the swarm learns of it only when heartbeats
        stop. On: the container is started (or unpaused) and this returns once its engine answers."""
        target, container = self._node_container(node)
        if on:
            changed = container.status != "running"
            if container.status == "paused":
                container.unpause()
            elif container.status != "running":
                if not attached(container, self.names.network):
                    flag = "" if self.lab == "lab" else f" --lab {self.lab}"
                    raise BackendError(
                        f"{node} is also cut off from the lab network, and a swarm node's engine cannot start "
                        f"without one. Reconnect it first: `labkit node connect {node}{flag}` (or `labkit up{flag}`)."
                    )
                container.start()
            self._wait_engine(target, container)
            return failure_line(node, "start", changed, self.lab)
        changed = container.status in ("running", "paused", "restarting")
        if changed:
            if container.status == "paused":
                container.unpause()  # a frozen process cannot die until it is thawed
            try:
                container.kill()
            except docker.errors.APIError:
                container.reload()
                if container.status == "running":
                    raise
            wait_for(lambda: _reloaded(container).status != "running", 10, 0.05)
        return failure_line(node, "stop", changed, self.lab)

    def restart(self, node: str, report: Report) -> str:
        """The node's container is stopped (SIGTERM: dockerd shuts down cleanly) and started again, like a
        reboot; this returns once its engine answers (a locked manager's engine answers too)."""
        target, container = self._node_container(node)
        if container.status != "running":
            self.power(node, True, report)
            return failure_line(node, "restart", False, self.lab)
        container.restart(timeout=20)
        self._wait_engine(target, container)
        return failure_line(node, "restart", True, self.lab)

    def _wait_engine(self, node: DindNode, container: Container) -> None:
        """Until NODE's engine answers; an engine that exits instead is said at once, with its last words."""
        wait_for(lambda: node.engine_answers() or _reloaded(container).status != "running", ENGINE_TIMEOUT, 0.05)
        if not node.engine_answers():
            logs = container.logs(tail=3).decode(errors="replace")
            raise BackendError(
                f"The engine of {node.name} did not come up ({STATE_WORDS.get(container.status, container.status)}). "
                f"Last lines of its log:\n{logs}Run `labkit doctor`, then `labkit up`."
            )

    def partition(self, node: str, connected: bool, report: Report) -> str:
        """Disconnect: the node's container leaves the lab network (its engine keeps running, reachable by
        labkit through its socket, but no other node reaches it). Connect: it rejoins with the address and
        name it had (the lab's address plan), as `labkit up` does for every disconnected node."""
        _, container = self._node_container(node)
        network, plan = self._network(), self._plan()
        if network is None or plan is None:
            raise BackendError(f"Lab '{self.lab}' has no lab network. `labkit up` recreates it.")
        address = plan.node(parse_node_name(node))
        was_on = attached(container, network.name)
        if connected and not was_on:
            self._reconnect(network, container, plan)
        elif not connected and was_on:
            network.disconnect(container)
        return failure_line(node, "connect" if connected else "disconnect", was_on != connected, self.lab, address)

    def _reconnect(self, network: docker.models.networks.Network, container: Container, plan: AddressPlan) -> None:
        spec = parse_node_name(container.labels[LABEL_NODE])
        network.connect(container, ipv4_address=plan.node(spec), aliases=[spec.name])

    # ----------------------------------------------------------------- up

    def up(self, topology: Topology | None, report: Report) -> list[Node]:
        plan = self.make(topology, report)
        self.reconnect_cut(plan, report)
        stopped = [c for c in self._containers("node") if c.status not in ("running", "paused")]
        paused = [c for c in self._containers("node") if c.status == "paused"]
        if stopped or paused:
            report(f"Bringing back {', '.join(sorted(c.labels[LABEL_NODE] for c in stopped + paused))}")
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda c: c.start(), stopped))  # joins side by side are safe (see the note at the top)
        for c in paused:
            c.unpause()
        nodes = self.nodes()
        report("Waiting for the engines to answer")
        self._wait_engines(nodes)
        hub.seed_registry(self.host, nodes[0].docker, plan.hub, report)
        return nodes

    def reconnect_cut(self, plan: AddressPlan, report: Report) -> None:
        """Every node cut off the lab network back on it, with its own address."""
        network = self._network()
        cut = [c for c in self._containers("node") if network is not None and not attached(c, network.name)]
        if cut and network is not None:
            report(f"Reconnecting {', '.join(sorted(c.labels[LABEL_NODE] for c in cut))} to the lab network")
            for c in cut:
                self._reconnect(network, c, plan)

    # ----------------------------------------------------------------- saved states (dind_states)

    def saved_state(self, key: str) -> dict[str, Any] | None:
        return DindStates(self).saved(key)

    def save_state(self, key: str, meta: dict[str, Any], report: Report,
                   still: Callable[[], bool] = lambda: True) -> bool:
        return DindStates(self).save(key, meta, report, still)

    def elect_now(self, report: Report, name: str | None = None) -> bool:
        return DindStates(self).elect_now(report, name)

    def restore_state(self, key: str, topology: Topology, report: Report) -> dict[str, Any] | None:
        return DindStates(self).restore(key, topology, report)

    def drop_state(self, key: str, meta: dict[str, Any]) -> None:
        DindStates(self).drop(key, meta)

    def note_state(self, key: str, note: dict[str, Any]) -> None:
        DindStates(self).note(key, note)

    def make(self, topology: Topology | None, report: Report,
             subnet: ipaddress.IPv4Network | None = None) -> AddressPlan:
        """The lab network (on SUBNET, if given and the lab has none yet), its hub, and a container for
        every node of TOPOLOGY that has none (created, not started); the lab's address plan."""
        images.ensure_images(self.host, report)
        existing = {c.labels.get(LABEL_NODE): c for c in self._containers("node")}
        if existing:
            self.nodes()  # a lab of another user's is refused here, before anything changes
        if topology is None:
            topology = _topology_of(existing) if existing else Topology()
        wanted = {spec.name for spec in topology.nodes}
        extra = sorted(set(existing) - wanted)
        if extra:
            raise InvalidInput(
                f"Lab '{self.lab}' also has {', '.join(extra)}, which this topology lacks. "
                "Run `labkit down` first to change to a smaller lab."
            )
        self._refuse_clashes(topology)
        plan = self._ensure_network(report, subnet)
        hosts = plan.hosts(topology)
        private_dir(self.run_dir)
        resolv = self.run_dir / "resolv.conf"
        resolv.unlink(missing_ok=True)
        resolv.write_text(f"nameserver {plan.hub}\n")
        resolv.chmod(0o644)  # read by the node containers' root
        hub.ensure_hub(self.host, self.names, plan, hosts, report)
        mode = self.privileged_mode() or self.probe_privileged()
        missing = [spec for spec in topology.nodes if spec.name not in existing]
        if missing:
            report(f"Creating {', '.join(s.name for s in missing)} ({mode} mode)")
        with ThreadPoolExecutor(max_workers=4) as pool:  # creating joins no network: safe side by side
            list(pool.map(lambda s: self._create_node(s, plan, hosts, mode), missing))
        return plan

    def _refuse_clashes(self, topology: Topology) -> None:
        names = [self.names.container(s.name) for s in topology.nodes] + [self.names.hub]
        for name in names:
            try:
                c = self.host.containers.get(name)
            except docker.errors.NotFound:
                continue
            if c.labels.get(LABEL_LAB) != self.lab:
                raise BackendError(
                    f"A container named '{name}' already exists and labkit did not create it for lab "
                    f"'{self.lab}'. labkit leaves it alone: rename or remove it yourself, or use another "
                    "lab name (--lab NAME), whose containers get that prefix."
                )

    def _ensure_network(self, report: Report, wanted: ipaddress.IPv4Network | None = None) -> AddressPlan:
        plan = self._plan()
        if plan is not None:
            return plan
        try:
            clash = self.host.networks.get(self.names.network)
            raise BackendError(
                f"A network named '{clash.name}' exists that labkit did not create. "
                "Remove it or use another lab name (--lab NAME)."
            )
        except docker.errors.NotFound:
            pass
        taken = self._subnets_in_use()
        last = self._last_subnet()
        for _ in range(5):  # another lab may take the subnet picked here first: pick again
            if wanted is not None:
                subnet = wanted
            elif last is not None and not any(last.overlaps(t) for t in taken):
                subnet = last  # the lab's addresses stay as they were, and so do the states saved on them
            else:
                subnet = pick_subnet(taken)
            plan = AddressPlan(subnet)
            report(f"Creating the internal lab network {self.names.network} ({subnet})")
            pool = docker.types.IPAMPool(subnet=str(subnet), gateway=plan.gateway)
            try:
                self.host.networks.create(self.names.network, driver="bridge", internal=True,
                                          ipam=docker.types.IPAMConfig(pool_configs=[pool]),
                                          labels=self.names.labels("network"))
                self._remember_subnet(subnet)
                return plan
            except docker.errors.APIError as exc:
                if "overlap" not in str(exc) or wanted:
                    raise
                taken.append(subnet)
        raise BackendError("Other labs kept taking the free subnets while this one was made: run `labkit up` again.")

    @property
    def _subnet_file(self) -> Path:
        return settings().state_dir / f"subnet-{self.lab}"

    def _last_subnet(self) -> ipaddress.IPv4Network | None:
        """The subnet this lab's network had last (kept across `down`), if it is one labkit picks."""
        try:
            subnet = ipaddress.ip_network(self._subnet_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return subnet if subnet in CANDIDATE_SUBNETS else None

    def _remember_subnet(self, subnet: ipaddress.IPv4Network) -> None:
        try:
            self._subnet_file.parent.mkdir(parents=True, exist_ok=True)
            self._subnet_file.write_text(f"{subnet}\n")
        except OSError:
            pass  # the next lab made afresh takes the first free subnet instead

    def _subnets_in_use(self) -> list[ipaddress.IPv4Network]:
        taken = []
        for net in self.host.networks.list():
            for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
                if "Subnet" in cfg and ":" not in cfg["Subnet"]:
                    taken.append(ipaddress.ip_network(cfg["Subnet"], strict=False))
        return taken

    def probe_privileged(self) -> str:
        """Try --privileged once with the node image; fall back where the engine refuses it."""
        probe = None
        try:
            probe = self.host.containers.create(
                images.NODE_IMAGE,
                entrypoint=["true"],
                privileged=True,
                network_mode="none",
                labels=self.names.labels("probe"),
            )
            probe.start()
            return "privileged"
        except docker.errors.APIError:
            return "fallback"
        finally:
            if probe is not None:
                probe.remove(force=True, v=True)  # the image declares a volume: remove it too

    def _create_node(self, spec: NodeSpec, plan: AddressPlan, hosts: dict[str, str], mode: str) -> None:
        api = self.host.api
        socket_dir = self._socket(spec.name).parent
        shutil.rmtree(socket_dir, ignore_errors=True)
        socket_dir.mkdir(parents=True)
        volume = self.names.volume(spec.name)
        home = self.names.home(spec.name)
        for name in (volume, home):
            self.host.volumes.create(name, labels=self.names.labels("volume", **{LABEL_NODE: spec.name}))
        resolv = self.run_dir / "resolv.conf"
        binds = [f"{volume}:/var/lib/docker", f"{home}:{HOME}", f"{socket_dir}:/labkit",
                 f"{resolv}:/etc/resolv.conf:ro"]
        if self.shared:
            binds.append(f"{self.shared}:/vagrant")
        host_config = engine_host_config(
            api, mode, binds=binds, extra_hosts={name: ip for name, ip in hosts.items() if name != spec.name}
        )
        networking = api.create_networking_config(
            {
                self.names.network: api.create_endpoint_config(ipv4_address=plan.node(spec), aliases=[spec.name]),
            }
        )
        api.create_container(
            images.NODE_IMAGE,
            command=["node", *dockerd_flags(plan.hub, _socket_gid())],
            name=self.names.container(spec.name),
            hostname=spec.name,
            labels=self.names.labels(
                "node", **{LABEL_NODE: spec.name, LABEL_ROLE: spec.role, LABEL_OWNER: str(os.geteuid())}
            ),
            host_config=host_config,
            networking_config=networking,
        )

    def _wait_engines(self, nodes: list[Node]) -> None:
        with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
            ok = list(pool.map(lambda n: wait_for(n.engine_answers, ENGINE_TIMEOUT, 0.05), nodes))
        late = [n for n, good in zip(nodes, ok, strict=False) if not good]
        if late:
            first = late[0].name
            logs = self.host.containers.get(self.names.container(first)).logs(tail=5).decode(errors="replace")
            raise BackendError(
                f"The engine of {', '.join(n.name for n in late)} did not answer within "
                f"{ENGINE_TIMEOUT:.0f} s. Last lines of {first}'s log:\n{logs}"
                "Run `labkit doctor`, then `labkit down` and `labkit up`."
            )

    # ----------------------------------------------------------------- down

    def down(self, report: Report) -> int:
        containers = self._containers()
        if containers:
            report(f"Removing {len(containers)} containers")
        for c in containers:  # one at a time: see the note at the top
            _remove_container(c)
        removed = len(containers)
        for volume in self.host.volumes.list(filters={"label": f"{LABEL_LAB}={self.lab}"}):
            try:
                volume.remove(force=True)
                removed += 1
            except docker.errors.NotFound:
                pass
        for network in self.host.networks.list(filters={"label": f"{LABEL_LAB}={self.lab}"}):
            try:
                network.remove()
                removed += 1
            except docker.errors.NotFound:
                pass
        shutil.rmtree(self.run_dir, ignore_errors=True)
        return removed


def engine_host_config(api: docker.APIClient, mode: str, **options: Any) -> dict[str, Any]:
    """Host config for a container that runs its own dockerd: privileged, or the fallback set."""
    security: dict[str, Any] = {"privileged": True} if mode == "privileged" else FALLBACK_HOST_CONFIG
    config: dict[str, Any] = api.create_host_config(init=True, **security, **options)
    if mode != "privileged":
        config.update(UNMASKED_PATHS)
    return config


def _mounted_socket(c: Container) -> Path | None:
    """The host path of the socket a node container's inner engine serves for labkit."""
    for mount in c.attrs.get("Mounts") or []:
        if mount.get("Destination") == "/labkit" and mount.get("Source"):
            return Path(mount["Source"]) / "docker.sock"
    return None


def _reloaded(c: Container) -> Container:
    c.reload()
    return c


def _remove_container(c: Container) -> None:
    try:
        c.remove(force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if "already in progress" not in str(exc):
            raise


def _topology_of(existing: dict[str | None, Container]) -> Topology:
    roles = [c.labels.get(LABEL_ROLE) for c in existing.values()]
    return Topology(managers=max(1, roles.count("manager")), workers=roles.count("worker"))


def _socket_gid() -> int:
    """The group of the host's Docker socket, so the same users may reach inner engines."""
    try:
        return os.stat("/var/run/docker.sock").st_gid
    except OSError:
        return 0


def dockerd_flags(hub_address: str, socket_gid: int) -> list[str]:
    """How every inner engine runs: two unix sockets (its own, and one the host
    reaches), the lab hub as registry mirror and as the only DNS server its
    containers get (so they never fall back to public resolvers)."""
    registry = f"{hub_address}:{REGISTRY_PORT}"
    return [
        "--host=unix:///var/run/docker.sock",
        "--host=unix:///labkit/docker.sock",
        f"--group={socket_gid}",
        f"--registry-mirror=http://{registry}",
        f"--insecure-registry={registry}",
        f"--dns={hub_address}",
    ]
