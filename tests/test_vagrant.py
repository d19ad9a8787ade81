"""The Vagrant backend for VM providers, as far as this machine allows (no VMs can boot here): the
Vagrantfile with `vagrant validate`, and how the backend builds its commands and reads Vagrant's state.
The docker provider runs for real in test_vagrant_docker.py."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from labkit import images
from labkit.backends import get_backend
from labkit.backends.vagrant import (
    QUIET_VAGRANT,
    VANISHED_NETWORK,
    VagrantBackend,
    config_key,
    created_topology,
    docker_provider_states,
    explain,
    forward_argv,
    machine_ids,
    parse_ssh_config,
    parse_status,
    shared_connections,
    ssh_argv,
    vagrant_env,
)
from labkit.errors import BackendError
from labkit.topology import Topology

RECIPES = images.RECIPES
PROJECT = Path(__file__).resolve().parent.parent  # where the Vagrantfile is


@pytest.fixture(scope="session")
def dotfiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Vagrant's own state (.vagrant/) for the tests: a temporary folder, never the repository's."""
    return tmp_path_factory.mktemp("vagrant-dotfiles")


def vagrant(*args: str, dotfile_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    if not shutil.which("vagrant"):
        pytest.skip("vagrant is not installed (`make test` installs it; Debian: apt-get install vagrant)")
    return subprocess.run(["vagrant", *args], cwd=PROJECT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **QUIET_VAGRANT, "VAGRANT_DOTFILE_PATH": str(dotfile_path), **env})


# ------------------------------------------------------------------ the Vagrantfile


@pytest.mark.vagrant
@pytest.mark.parametrize("counts", [{}, {"LABKIT_MANAGERS": "3", "LABKIT_WORKERS": "5"},
                                    {"LABKIT_WORKERS": "0", "LABKIT_SWARM": "1"}])
def test_vagrantfile_validates(counts: dict[str, str], dotfiles: Path) -> None:
    done = vagrant("validate", dotfile_path=dotfiles, **counts)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validated successfully" in done.stdout


@pytest.mark.vagrant
def test_vagrantfile_names_nodes_as_every_backend(dotfiles: Path) -> None:
    default = parse_status(vagrant("status", "--machine-readable", dotfile_path=dotfiles).stdout)
    assert list(default) == ["manager1", "worker1", "worker2"]
    more = parse_status(vagrant("status", "--machine-readable", dotfile_path=dotfiles,
                                LABKIT_MANAGERS="3", LABKIT_WORKERS="4").stdout)
    assert list(more) == ["manager1", "manager2", "manager3", "worker1", "worker2", "worker3", "worker4"]
    assert set(more.values()) == {"not_created"}


@pytest.mark.vagrant
def test_vagrantfile_refuses_bad_counts_with_a_clear_message(dotfiles: Path) -> None:
    done = vagrant("validate", dotfile_path=dotfiles, LABKIT_WORKERS="200")
    assert done.returncode != 0
    assert "LABKIT_WORKERS must be 0 to 89, not 200" in done.stdout + done.stderr


def test_vagrantfile_uses_the_shared_scripts_and_no_tcp_api() -> None:
    text = (PROJECT / "Vagrantfile").read_text()
    assert "labkit/recipes/install-engine.sh" in text and "labkit/recipes/form-swarm.sh" in text
    assert "192.168.56" in text and "tcp://" not in text and "2375" not in text


# ------------------------------------------------------------------ how the backend talks to VMs


SSH_CONFIG = """Host manager1
  HostName 127.0.0.1
  User vagrant
  Port 2222
  IdentityFile "/home/me/.vagrant/machines/manager1/virtualbox/private_key"

Host worker1
  HostName 127.0.0.1
  Port 2200
"""


def test_ssh_config_is_read_per_host() -> None:
    hosts = parse_ssh_config(SSH_CONFIG)
    assert hosts["manager1"]["port"] == "2222"
    assert hosts["manager1"]["identityfile"].endswith("private_key")
    assert hosts["worker1"] == {"hostname": "127.0.0.1", "port": "2200"}


def test_commands_run_through_ssh_with_vagrants_config_and_sudo() -> None:
    argv = ssh_argv(Path("/tmp/cfg"), "worker1", "docker info | grep Swarm")
    assert argv[:3] == ["ssh", "-F", "/tmp/cfg"] and "BatchMode=yes" in argv
    assert argv[-5:] == ["worker1", "--", "sudo", "sh", "-c", "'docker info | grep Swarm'"][-5:]
    assert "-T" in argv and "-t" not in argv
    assert "-t" in ssh_argv(Path("/tmp/cfg"), "worker1", tty=True)


def test_the_engine_is_reached_through_a_forwarded_unix_socket_not_tcp() -> None:
    argv = forward_argv(Path("/tmp/cfg"), "manager1", Path("/tmp/x/manager1.sock"))
    assert argv[-1] == "manager1"
    assert "/tmp/x/manager1.sock:/var/run/docker.sock" in argv
    assert not any("tcp" in a for a in argv)


def test_vagrant_status_is_parsed_per_machine() -> None:
    text = ("1700000000,,ui,info,Current machine states:\n"
            "1700000000,manager1,metadata,provider,libvirt\n"
            "1700000000,manager1,state,running\n1700000000,worker1,state,not_created\n")
    assert parse_status(text) == {"manager1": "running", "worker1": "not_created"}


def test_topology_reaches_vagrant_through_the_environment(tmp_path: Path) -> None:
    env = vagrant_env(Topology(3, 4), tmp_path)
    assert (env["LABKIT_MANAGERS"], env["LABKIT_WORKERS"]) == ("3", "4")
    # nothing may leave the machine: no version check, no box update check
    assert (env["VAGRANT_CHECKPOINT_DISABLE"], env["VAGRANT_BOX_UPDATE_CHECK_DISABLE"]) == ("1", "1")


def test_later_commands_see_the_vms_vagrant_created(tmp_path: Path) -> None:
    """`labkit up --workers 4` then `labkit status`: the counts come from Vagrant's own .vagrant/ state."""
    for name in ("manager1", "worker1", "worker2", "worker3", "worker4"):
        machine = tmp_path / ".vagrant" / "machines" / name / "libvirt"
        machine.mkdir(parents=True)
        (machine / "id").write_text("uuid")
    (tmp_path / ".vagrant" / "machines" / "worker9" / "libvirt").mkdir(parents=True)  # never created: no id
    env = vagrant_env(None, tmp_path)
    assert (env["LABKIT_MANAGERS"], env["LABKIT_WORKERS"]) == ("1", "4")
    assert created_topology(tmp_path / "elsewhere") is None


def created(project: Path, machines: dict[str, tuple[str, str]]) -> None:
    """What Vagrant leaves in PROJECT/.vagrant for machines it created: {name: (provider, id)}."""
    for name, (provider, machine_id) in machines.items():
        folder = project / ".vagrant" / "machines" / name / provider
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "id").write_text(machine_id)


def test_machine_ids_come_from_vagrants_own_files(tmp_path: Path) -> None:
    created(tmp_path, {"manager1": ("docker", "c1"), "worker1": ("docker", "c2")})
    (tmp_path / ".vagrant" / "machines" / "worker2" / "docker").mkdir(parents=True)  # defined, never created
    assert machine_ids(tmp_path) == {"manager1": ("docker", "c1"), "worker1": ("docker", "c2")}
    assert machine_ids(tmp_path / "elsewhere") == {}


def test_docker_provider_machines_are_read_from_their_containers_not_vagrant_status() -> None:
    statuses = {"c1": "running", "c2": "exited", "c3": "paused"}
    ids = {"manager1": ("docker", "c1"), "worker1": ("docker", "c2"), "worker2": ("docker", "c3"),
           "worker3": ("docker", "gone")}
    assert docker_provider_states(ids, statuses.get) == {
        "manager1": "running", "worker1": "stopped", "worker2": "paused", "worker3": "not_created"}


def fake_vagrant(folder: Path, log: Path) -> None:
    """A stand-in `vagrant` on PATH that logs its calls and prints an ssh-config for two machines."""
    script = folder / "vagrant"
    script.write_text(f'#!/bin/sh\necho "$@" >> {log}\n'
                      'case "$1" in ssh-config) printf "Host manager1\\n  HostName 192.168.56.11\\n'
                      'Host worker1\\n  HostName 192.168.56.21\\n";; esac\n')
    script.chmod(0o755)


def test_ssh_config_is_asked_once_and_kept_until_the_machines_change(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """`vagrant ssh-config` costs about 3 s: a second labkit command reuses what the first was told."""
    log, bin_dir, project = tmp_path / "calls", tmp_path / "bin", tmp_path / "project"
    bin_dir.mkdir()
    fake_vagrant(bin_dir, log)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("LABKIT_RUN_DIR", str(tmp_path / "run"))
    created(project, {"manager1": ("docker", "c1"), "worker1": ("docker", "c2")})
    first = VagrantBackend("lab", project=project).ssh_config()
    again = VagrantBackend("lab", project=project).ssh_config()  # as another labkit command would
    assert first == again and log.read_text().splitlines() == ["ssh-config"]
    hosts = parse_ssh_config(first.read_text())
    assert hosts["manager1"]["hostname"] == "192.168.56.11"
    assert hosts["*"]["controlmaster"] == "auto" and hosts["*"]["controlpersist"] == "600"
    assert hosts["*"]["controlpath"].startswith(str(tmp_path / "run" / "vagrant"))
    created(project, {"worker1": ("docker", "c9")})  # worker1 destroyed and created again
    VagrantBackend("lab", project=project).ssh_config()
    assert log.read_text().splitlines() == ["ssh-config", "ssh-config"]


@pytest.mark.engine
def test_docker_provider_states_come_from_the_local_engine_without_vagrant(
        host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A status of machines made by Vagrant's docker provider asks the engine, never `vagrant status`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "vagrant").write_text("#!/bin/sh\necho called >&2; exit 1\n")
    (bin_dir / "vagrant").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    machine = host.containers.create(images.NODE_IMAGE, name="labkit-vagrant-state-test", labels={"labkit.test": "1"})
    try:
        created(tmp_path, {"manager1": ("docker", machine.id), "worker1": ("docker", "0" * 64)})
        backend = VagrantBackend("lab", project=tmp_path)
        assert backend.states() == {"manager1": "stopped", "worker1": "not_created"}
        assert [n.name for n in backend.nodes()] == ["manager1"]
    finally:
        machine.remove(v=True, force=True)


VANISHED = ("A Docker command executed by Vagrant didn't complete successfully!\n"
            "Command: [\"docker\", \"network\", \"inspect\", \"cirewind_default\"]\n\n"
            "Stderr: Error response from daemon: network cirewind_default not found\n\nStdout: []\n")


def test_a_network_that_went_away_while_vagrant_read_them_is_told_apart() -> None:
    """Vagrant's docker provider inspects every network of the engine by name; another lab going down
    meanwhile fails its up (a CI run's), and only that failure is worth a second try."""
    assert VANISHED_NETWORK.search(VANISHED)
    assert VANISHED_NETWORK.search("Stderr: Error: No such network: labkit-old\n\nStdout: []")
    assert not VANISHED_NETWORK.search("Stderr: Error response from daemon: Pool overlaps with other one on this space")
    assert not VANISHED_NETWORK.search("The box 'labkit/box' could not be found")


def test_vagrant_up_tries_once_more_when_a_network_went_away(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first `vagrant up` fails on a network another program removed meanwhile: what it made is
    destroyed and it runs again; a second failure of any kind is the learner's error, with nothing left."""
    bin_dir, calls, failure = tmp_path / "bin", tmp_path / "calls", tmp_path / "failure"
    bin_dir.mkdir()
    failure.write_text(VANISHED)  # what the first up says; the second says it too, once `again` exists
    (bin_dir / "vagrant").write_text(
        f'#!/bin/sh\necho "$1" >> {calls}\n'
        f'if [ "$1" = up ] && {{ [ "$(grep -c up {calls})" = 1 ] || [ -e {tmp_path / "again"} ]; }}; then\n'
        f'  cat {failure}; exit 1\nfi\n')
    (bin_dir / "vagrant").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("LABKIT_VAGRANT_PROVIDER", "docker")
    backend = VagrantBackend("lab", project=tmp_path)
    removed = []
    monkeypatch.setattr(backend, "_prepare_docker", lambda topology, report: "dind")  # no hub, no networks here
    monkeypatch.setattr(backend, "_remove_docker_lab", lambda: removed.append(1) or 0)
    monkeypatch.setattr(backend, "nodes", lambda: [])
    said: list[str] = []
    assert backend.up(Topology(), said.append) == []
    assert calls.read_text().split() == ["up", "destroy", "up"]
    assert any("trying once more" in line for line in said) and not removed

    calls.unlink()
    (tmp_path / "again").touch()
    with pytest.raises(BackendError, match="Nothing was left half-created"):
        backend.up(Topology(), said.append)
    assert calls.read_text().split() == ["up", "destroy", "up", "destroy"] and removed == [1]


def test_the_config_key_follows_the_project_and_the_machines(tmp_path: Path) -> None:
    one = {"manager1": ("docker", "c1")}
    assert config_key(tmp_path, one) == config_key(tmp_path, dict(one))
    assert config_key(tmp_path, one) != config_key(tmp_path, {"manager1": ("docker", "c2")})
    assert config_key(tmp_path, one) != config_key(tmp_path / "other", one)


def test_engine_sockets_ride_on_the_shared_connection() -> None:
    """No new SSH handshake per labkit command: the machine's shared connection takes the forwarding, and
    the kept config lets it replace a stale socket of a connection that ended."""
    argv = forward_argv(Path("/tmp/cfg"), "manager1", Path("/tmp/x/manager1.sock"))
    assert argv[:5] == ["ssh", "-F", "/tmp/cfg", "-O", "forward"]
    assert "StreamLocalBindUnlink yes" in shared_connections(Path("/run/x"))


@pytest.mark.parametrize(("output", "advice"), [
    ("No usable default provider could be found for your system.", "Install VirtualBox, or libvirt"),
    ("The box 'debian/bookworm64' could not be found or could not be accessed", "vagrant box add"),
    ("VT-x is not available (VERR_VMX_NO_VMX)", "no hardware virtualization"),
    ("Timed out while waiting for the machine to boot.", "did not finish booting"),
    ("something\nelse\nwent wrong", "vagrant failed: something | else | went wrong"),
])
def test_vagrant_failures_get_advice(output: str, advice: str) -> None:
    assert advice in explain(output)


def test_no_vagrant_installed_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    backend = get_backend("vagrant", "lab")
    assert isinstance(backend, VagrantBackend)
    with pytest.raises(BackendError, match=r"Vagrant is not installed.*apt-get install vagrant"):
        backend.nodes()
    with pytest.raises(BackendError, match="Vagrant is not installed"):
        backend.up(None, lambda _: None)


def test_a_failed_vagrant_up_destroys_what_it_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a stand-in `vagrant` that fails like a machine without a provider."""
    log = tmp_path / "calls"
    fake = tmp_path / "vagrant"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n'
                    'case "$1" in up) echo "No usable default provider could be found"; exit 1;; esac\nexit 0\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with pytest.raises(BackendError, match=r"Install VirtualBox.*Nothing was left half-created"):
        VagrantBackend("lab", project=tmp_path).up(Topology(1, 2), lambda _: None)
    assert log.read_text().splitlines() == ["up --no-parallel", "destroy -f"]


# ------------------------------------------------------------------ the scripts, for real

# install-engine.sh and form-swarm.sh run for real in tests/test_vagrant_docker.py: Vagrant itself provisions
# fresh Debian machines with them (the docker provider), and LABKIT_SWARM=1 forms the swarm as they boot.
