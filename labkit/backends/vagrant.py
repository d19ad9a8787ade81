"""The Vagrant backend: each node is a VM from the project's Vagrantfile.

labkit reaches each VM over SSH, with what `vagrant ssh-config` prints: commands
with `ssh`, the engine's API through an SSH-forwarded unix socket (the engine
never listens on TCP), facts on disk with pytest-testinfra's SSH backend.
Nothing about the VMs is stored: Vagrant's own state is the only record.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import docker.errors

from labkit import box, engine, hub, images
from labkit.backends.base import Backend, Node, RunResult, ping_socket, sorted_nodes, wait_for
from labkit.errors import BackendError, InvalidInput
from labkit.report import Report
from labkit.settings import settings
from labkit.topology import (
    LABEL_LAB,
    VAGRANT_SSH_SUBNET,
    VAGRANT_SUBNET,
    AddressPlan,
    Names,
    Topology,
    parse_node_name,
)

SUBNET = VAGRANT_SUBNET  # the Vagrantfile's private network
UP_TIMEOUT = 1800
QUIET_VAGRANT = {"VAGRANT_CHECKPOINT_DISABLE": "1", "VAGRANT_BOX_UPDATE_CHECK_DISABLE": "1"}
STATES_TTL = 2.0  # s a machine-state reading is reused within one process
# The docker provider's resources on the local engine, all labelled labkit.lab=vagrant: the internal lab
# network (labkit-vagrant), its hub (labkit-vagrant-hub), the SSH network (the Vagrantfile names both).
DOCKER_LAB = Names("vagrant")
SSH_NETWORK = f"{DOCKER_LAB.network}-ssh"

# What vagrant says when it fails, and what the user should do about it.
# What Docker says of a network that went away, in a vagrant up's output (docker provider): see up()
VANISHED_NETWORK = re.compile(r"network \S+ not found|no such network", re.IGNORECASE)
FAILURES = [
    (
        "No usable default provider",
        "Vagrant has no provider here. Install VirtualBox, or libvirt with the "
        "vagrant-libvirt plugin (Debian: apt-get install vagrant-libvirt libvirt-daemon-system), then retry.",
    ),
    (
        "could not be found",
        "The Vagrant box is missing and could not be downloaded. Add it first: "
        "`vagrant box add debian/bookworm64 --provider virtualbox` (or libvirt), or set LABKIT_BOX.",
    ),
    (
        "VT-x is not available",
        "This machine has no hardware virtualization (VT-x/AMD-V): VMs cannot run. "
        "Use the default backend (docker-in-docker) instead.",
    ),
    ("kvm", "KVM is not available: libvirt cannot start VMs here. Enable virtualization or use the default backend."),
    (
        "Timed out while waiting for the machine to boot",
        "A VM did not finish booting. Look at the VM's console "
        "in your provider; `labkit down --backend vagrant` removes what was created.",
    ),
]


def explain(output: str) -> str:
    """The advice for a failed vagrant command, from its output."""
    for needle, advice in FAILURES:
        if needle.lower() in output.lower():
            return advice
    tail = " | ".join(line.strip() for line in output.strip().splitlines()[-3:])
    return f"vagrant failed: {tail}"


def machine_ids(project: Path) -> dict[str, tuple[str, str]]:
    """Vagrant's own record of the machines it created: {name: (provider, id)}, read from
    .vagrant/machines/NAME/PROVIDER/id (a file Vagrant writes at create and removes at destroy)."""
    found = {}
    for path in sorted((project / ".vagrant" / "machines").glob("*/*/id")):
        machine_id = path.read_text().strip()
        if machine_id:
            found[path.parts[-3]] = (path.parts[-2], machine_id)
    return found


DOCKER_STATES = {"running": "running", "paused": "paused", "restarting": "running", "created": "stopped",
                 "exited": "stopped", "dead": "stopped", "removing": "stopped"}


def docker_provider_states(ids: dict[str, tuple[str, str]], inspect: Callable[[str], str | None]) -> dict[str, str]:
    """Each docker-provider machine's state in `vagrant status` words, from its container's status
    (INSPECT: container id -> status, None when the container is gone)."""
    states = {}
    for name, (_, container_id) in ids.items():
        status = inspect(container_id)
        states[name] = "not_created" if status is None else DOCKER_STATES.get(status, status)
    return states


def created_topology(project: Path) -> Topology | None:
    """The node counts of the VMs Vagrant has created, from its own state in .vagrant/ (ours is kept nowhere)."""
    names = set(machine_ids(project))
    specs = []
    for name in names:
        try:
            specs.append(parse_node_name(name))
        except InvalidInput:
            continue
    if not specs:
        return None
    managers = max((s.index for s in specs if s.role == "manager"), default=1)
    workers = max((s.index for s in specs if s.role == "worker"), default=0)
    return Topology(managers, workers)


def vagrant_env(topology: Topology | None, project: Path | None = None) -> dict[str, str]:
    """The environment for vagrant: the wanted counts, else those of the VMs that exist; and no call home
    (Vagrant would otherwise ask the internet for its latest version and for box updates)."""
    env = {**os.environ, **QUIET_VAGRANT}
    project = project or settings().vagrant_dir
    topology = topology or created_topology(project)
    if topology is not None:
        env["LABKIT_MANAGERS"] = str(topology.managers)
        env["LABKIT_WORKERS"] = str(topology.workers)
    return env


def parse_status(machine_readable: str) -> dict[str, str]:
    """`vagrant status --machine-readable` -> {machine: state}."""
    states: dict[str, str] = {}
    for line in machine_readable.splitlines():
        parts = line.split(",")
        if len(parts) >= 4 and parts[2] == "state" and parts[1]:
            states[parts[1]] = parts[3]
    return states


def parse_ssh_config(text: str) -> dict[str, dict[str, str]]:
    """`vagrant ssh-config` -> {host: {option: value}} (options lower-cased)."""
    hosts: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        words = line.strip().split(None, 1)
        if len(words) != 2:
            continue
        key, value = words[0].lower(), words[1].strip().strip('"')
        if key == "host":
            current = hosts.setdefault(value, {})
        elif current is not None:
            current[key] = value
    return hosts


def shared_connections(control_dir: Path, persist: int = 600) -> str:
    """What labkit adds to Vagrant's ssh-config: every ssh (commands, testinfra, engine sockets) shares
    one connection per machine, kept PERSIST seconds after its last use (no new handshake per command)."""
    return (f"\nHost *\n  ControlMaster auto\n  ControlPath {control_dir}/cm-%C\n"
            f"  ControlPersist {persist}\n  StreamLocalBindUnlink yes\n")


def config_key(project: Path, ids: dict[str, tuple[str, str]]) -> str:
    """What Vagrant's ssh-config depends on: the project and the machines it created (new ids: new config)."""
    text = "\n".join([str(project.resolve()), *(f"{n} {p} {i}" for n, (p, i) in sorted(ids.items()))])
    return hashlib.sha256(text.encode()).hexdigest()


def ssh_argv(config: Path, host: str, command: str | None = None, tty: bool = False) -> list[str]:
    """ssh with Vagrant's generated config; COMMAND runs through sudo sh -c on the VM."""
    argv = ["ssh", "-F", str(config), "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]
    argv += ["-t"] if tty else ["-T"]
    argv.append(host)
    if command is not None:
        argv += ["--", "sudo", "sh", "-c", shlex.quote(command)]
    return argv


def forward_argv(config: Path, host: str, local_socket: Path) -> list[str]:
    """Ask HOST's shared SSH connection to forward a local unix socket to the machine's Docker socket (never
    TCP). The forwarding lives as long as that connection, so later labkit commands reuse it; `down` ends it."""
    return ["ssh", "-F", str(config), "-O", "forward", "-L", f"{local_socket}:/var/run/docker.sock", host]


class VagrantNode(Node):
    def __init__(self, name: str, role: str, address: str, backend: VagrantBackend) -> None:
        super().__init__(name, role, address)
        self.backend = backend

    def _connect(self, timeout: int = 60) -> docker.DockerClient:
        return engine.connect(f"unix://{self.backend.forward(self.name)}", timeout=timeout)

    def testinfra_spec(self) -> str:
        return f"ssh://{self.name}?ssh_config={self.backend.ssh_config()}&sudo=true"

    def run(self, cmd: str | list[str], timeout: float = 60) -> RunResult:
        text = cmd if isinstance(cmd, str) else shlex.join(cmd)
        argv = ssh_argv(self.backend.ssh_config(), self.name, f"timeout {int(timeout)} sh -c {shlex.quote(text)}")
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 30)
        return RunResult(done.returncode, done.stdout, done.stderr)

    def container_state(self) -> str:
        state = self.backend.states().get(self.name, "missing")
        return {"not_created": "missing"}.get(state, state)


class VagrantBackend(Backend):
    """VMs from the project's Vagrantfile. Failing a node on purpose (`power`, `partition`: `labkit node
    stop/start/disconnect/connect`) is not done here yet: the base's BackendError says so."""

    name = "vagrant"

    def __init__(self, lab: str, project: Path | None = None) -> None:
        super().__init__(lab)
        self.project = project or settings().vagrant_dir
        self._config: Path | None = None
        self._states: tuple[float, dict[str, str]] | None = None

    # --------------------------------------------------------------- vagrant

    def _vagrant(
        self, *args: str, topology: Topology | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        if not shutil.which("vagrant"):
            raise BackendError(
                "Vagrant is not installed. Install it (Debian: apt-get install vagrant) and a "
                "provider (VirtualBox, or libvirt with vagrant-libvirt), or use the default backend."
            )
        done = subprocess.run(
            ["vagrant", *args],
            cwd=self.project,
            env=vagrant_env(topology, self.project),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise BackendError(explain(done.stdout + done.stderr))
        return done

    def states(self) -> dict[str, str]:
        """Each created machine's state. Docker-provider machines are read from the local engine (a few
        ms); other providers cost a `vagrant status` (about 3 s), asked once per STATES_TTL."""
        if self._states is not None and time.monotonic() - self._states[0] < STATES_TTL:
            return self._states[1]
        ids = machine_ids(self.project)
        if ids and all(provider == "docker" for provider, _ in ids.values()):
            states = docker_provider_states(ids, _container_status)
        else:
            states = parse_status(self._vagrant("status", "--machine-readable").stdout)
        self._states = (time.monotonic(), states)
        return states

    @property
    def cache_dir(self) -> Path:
        """Files kept between labkit commands for this Vagrant project: its ssh-config and SSH sockets."""
        digest = hashlib.sha256(str(self.project.resolve()).encode()).hexdigest()[:12]
        return settings().run_dir / "vagrant" / digest

    def ssh_config(self) -> Path:
        """Vagrant's SSH settings for the created machines, plus shared connections. `vagrant ssh-config`
        costs about 3 s: its output is kept on disk and asked again only when the machines change."""
        if self._config is None:
            ids = machine_ids(self.project)
            key = config_key(self.project, ids)
            path, stamp = self.cache_dir / "ssh-config", self.cache_dir / "ssh-config.key"
            if not (ids and path.exists() and stamp.exists() and stamp.read_text() == key):
                text = self._vagrant("ssh-config").stdout
                self.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                path.write_text(text + shared_connections(self.cache_dir))
                stamp.write_text(key)
            self._config = path
        return self._config

    def forward(self, node: str) -> Path:
        """A local unix socket reaching NODE's engine, forwarded by the machine's shared SSH connection and
        kept in the private cache folder: a later command (or process) reuses it while it answers."""
        socket = self.cache_dir / f"{node}.docker.sock"
        if ping_socket(socket):
            return socket
        config = self.ssh_config()
        socket.unlink(missing_ok=True)
        # Any command opens the shared connection (ControlPersist keeps it); then it takes the forwarding.
        opened = subprocess.run(ssh_argv(config, node, "true"), capture_output=True, text=True, timeout=60)
        error = opened.stderr
        if opened.returncode == 0:
            added = subprocess.run(forward_argv(config, node, socket), capture_output=True, text=True, timeout=30)
            error = added.stderr
        if not wait_for(lambda: ping_socket(socket), 15, 0.05):
            raise BackendError(
                f"Could not reach {node}'s engine over SSH. {error.strip()} "
                "Is the machine up? `labkit status --backend vagrant`."
            )
        return socket

    def close(self) -> None:
        """Forget what this process was told (the shared connections and their sockets stay for the next)."""
        self._config = None
        self._states = None

    # --------------------------------------------------------------- Backend

    def nodes(self) -> list[Node]:
        plan = AddressPlan(SUBNET)
        found: list[Node] = []
        for name, state in self.states().items():
            if state == "not_created":
                continue
            spec = parse_node_name(name)
            found.append(VagrantNode(name, spec.role, plan.node(spec), self))
        return sorted_nodes(found)

    @property
    def provider(self) -> str | None:
        """The provider asked for ($LABKIT_VAGRANT_PROVIDER), else the one the created machines have."""
        asked = settings().vagrant_provider
        if asked:
            return asked
        made = {provider for provider, _ in machine_ids(self.project).values()}
        return made.pop() if len(made) == 1 else None

    def _up(self, argv: list[str], env: dict[str, str], report: Report) -> tuple[int, str]:
        """Run `vagrant up` (ARGV), passing its progress on: its status and output."""
        with subprocess.Popen(argv, cwd=self.project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) as proc:
            assert proc.stdout is not None
            output = "".join(_relay(proc.stdout, report, time.monotonic() + UP_TIMEOUT))
        return proc.returncode, output

    def up(self, topology: Topology | None, report: Report) -> list[Node]:
        if not shutil.which("vagrant"):
            self._vagrant("version")  # raises the install advice
        provider = self.provider
        env = vagrant_env(topology, self.project)
        if provider == "docker":
            env["LABKIT_NODE_MODE"] = self._prepare_docker(topology or created_topology(self.project) or Topology(),
                                                           report)
            argv = ["vagrant", "up", "--provider", "docker", "--parallel"]  # containers boot side by side
            report("vagrant up --provider docker (machines are containers of labkit/box; about 40 s)")
        else:
            argv = ["vagrant", "up", "--no-parallel", *(["--provider", provider] if provider else [])]
            report("vagrant up --no-parallel (first boot of a box takes minutes)")
        for attempt in range(2):
            returncode, output = self._up(argv, env, report)
            self._states = None
            if returncode == 0:
                break
            if attempt == 0 and provider == "docker" and VANISHED_NETWORK.search(output):
                # Vagrant inspects every network of the engine by name: one removed meanwhile (another lab
                # going down) fails the up, and trying again is all it takes.
                report("vagrant up failed: a Docker network went away while Vagrant read them all "
                       "(something else removed it): removing what it created and trying once more")
                self._vagrant("destroy", "-f", topology=topology, check=False, timeout=600)
                continue
            report("vagrant up failed: removing what it created (vagrant destroy -f)")
            self._vagrant("destroy", "-f", topology=topology, check=False, timeout=600)
            self._remove_docker_lab()
            raise BackendError(explain(output) + " Nothing was left half-created.")
        self._config = None
        nodes = self.nodes()
        if provider == "docker" and nodes:
            hub.seed_registry(engine.host_client(), nodes[0].docker, AddressPlan(SUBNET).hub, report)
        return nodes

    def _prepare_docker(self, topology: Topology, report: Report) -> str:
        """What docker-provider machines need before `vagrant up`: the lab images and the box, the internal
        lab network with its hub (DNS for lab names only, registry mirror), the SSH network. Returns the
        node mode (privileged, or the fallback set where the engine refuses it)."""
        host = engine.host_client()
        images.ensure_images(host, report)
        box.ensure_box(host, report)
        plan = AddressPlan(SUBNET)
        _ensure_network(host, DOCKER_LAB.network, SUBNET, internal=True, report=report)
        # Not internal (Docker publishes no port on an internal network), but no masquerading, link-local
        # addresses, and never a box's route: the box entrypoint removes it.
        _ensure_network(host, SSH_NETWORK, VAGRANT_SSH_SUBNET, internal=False, report=report,
                        options={"com.docker.network.bridge.enable_ip_masquerade": "false"})
        hub.ensure_hub(host, DOCKER_LAB, plan, plan.hosts(topology), report)
        from labkit.backends.dind import DindBackend  # the same probe as dind nodes

        return DindBackend(DOCKER_LAB.lab, host).probe_privileged()

    def _remove_docker_lab(self) -> int:
        """Remove what the docker provider left on the local engine (boxes, hub, networks); the count."""
        if not engine.engine_running():
            return 0
        host = engine.host_client()
        removed = 0
        for container in host.containers.list(all=True, filters={"label": f"{LABEL_LAB}={DOCKER_LAB.lab}"},
                                              ignore_removed=True):
            container.remove(force=True, v=True)
            removed += 1
        for network in host.networks.list(filters={"label": f"{LABEL_LAB}={DOCKER_LAB.lab}"}):
            network.remove()
            removed += 1
        return removed

    def down(self, report: Report) -> int:
        existing = [n for n, s in self.states().items() if s != "not_created"]
        self._end_shared_connections(existing)
        self.close()
        if existing:
            report(f"vagrant destroy -f ({', '.join(existing)})")
            self._vagrant("destroy", "-f", timeout=600)
        shutil.rmtree(self.cache_dir, ignore_errors=True)
        self._states = None
        return len(existing) + self._remove_docker_lab()

    def _end_shared_connections(self, hosts: list[str]) -> None:
        """`ssh -O exit` for each machine's shared connection (they would outlive the machines otherwise)."""
        config = self.cache_dir / "ssh-config"
        if not config.exists():
            return
        for host in hosts:
            subprocess.run(["ssh", "-F", str(config), "-O", "exit", host], capture_output=True, timeout=10)

    def shell_command(self, node: str) -> list[str]:
        self.node(node)
        return ["vagrant", "ssh", node]


def _relay(lines: Iterator[str], report: Report, deadline: float) -> Iterator[str]:
    """Pass vagrant's progress lines on while keeping them for the error message."""
    for line in lines:
        if line.startswith("==>") or "Machine booted" in line or "Running provisioner" in line:
            report(line.strip())
        yield line
        if time.monotonic() > deadline:
            raise BackendError(f"vagrant up took longer than {UP_TIMEOUT // 60} minutes; see your provider.")


def _ensure_network(host: docker.DockerClient, name: str, subnet: ipaddress.IPv4Network, internal: bool,
                    report: Report, options: dict[str, str] | None = None) -> None:
    """The bridge network NAME with SUBNET (gateway .1), labelled for the docker-provider lab."""
    try:
        network = host.networks.get(name)
    except docker.errors.NotFound:
        pass
    else:
        if network.attrs.get("Labels", {}).get(LABEL_LAB) != DOCKER_LAB.lab:
            raise BackendError(f"A network named '{name}' exists that labkit did not create. Remove it, then retry.")
        return
    report(f"Creating the network {name} ({subnet}{', internal' if internal else ''})")
    gateway = str(subnet.network_address + 1)
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=str(subnet), gateway=gateway)])
    try:
        host.networks.create(name, driver="bridge", internal=internal, ipam=ipam, options=options or {},
                             labels=DOCKER_LAB.labels("network"))
    except docker.errors.APIError as exc:
        raise BackendError(f"Could not create the network {name} ({subnet}): {exc.explanation}. Another network "
                           "may use that range; `docker network ls` shows them.") from None


def _container_status(container_id: str) -> str | None:
    """A container's status on the local engine (where Vagrant's docker provider makes its machines)."""
    try:
        return str(engine.connect(timeout=10).api.inspect_container(container_id)["State"]["Status"])
    except docker.errors.NotFound:
        return None
