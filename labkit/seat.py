"""Seats: one container with its own Docker Engine, a 3-node lab inside it, labkit and JupyterLab.

A seat is what an attendee gets: ``docker run`` it on any OS with Docker (or let JupyterHub spawn one),
open the URL, and the course is there with a lab already up. It needs no Docker socket of the host:
its engine and its lab live inside it (nested docker-in-docker, with the same flags as lab nodes).

``labkit/seat`` is built here with no network at all (``docker build`` with ``network_mode=none``):

1. the context: ``recipes/seat/Dockerfile``, the Debian packages the node image lacks (downloaded by the
   host's apt as a flat repository), every Python package as wheels, and the project itself;
2. ``labkit/seat:base``: that Dockerfile on top of the node image;
3. the preload: a base seat's engine loads the lab images (node, alpine, nginx) into a folder and makes
   the lab once (its registry, a cache, stays filled); the final image adds that folder as
   ``/var/lib/docker``, a volume: Docker copies it into each new seat's own volume when the seat is
   created, so a seat starts with its images and registry, and builds and publishes nothing.

Where labkit runs as root beside the engine (``labkit seat run``, ``make hub``), a seat's engine volume is
filled faster than Docker's copy: from one template volume of the image's engine folder, with its image
layers hard-linked (never written in place: a seat's changes go to layers of its own) and the rest copied.

The image carries the hash of everything in it (the lab images' recipe, ``recipes/seat/``, the project's
code, labs and notebooks, the pins); a build runs only when it differs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from labkit import engine_state, images
from labkit.backends.dind import DindBackend, engine_host_config
from labkit.errors import BackendError, ImageBuildError, InvalidInput
from labkit.report import Report
from labkit.settings import PROJECT, SEAT_MEMORY, SEAT_PIDS, settings
from labkit.topology import LABEL_CACHE, LABEL_KIND, LABEL_RECIPE

SEAT_IMAGE = "labkit/seat:latest"
BASE_IMAGE = "labkit/seat:base"
SEAT_RECIPES = images.RECIPES / "seat"
LABEL_SEAT = "labkit.seat"  # the seat's name, on its container and network
PORT = 8888  # JupyterLab inside a seat
ENGINE_DIR = "/var/lib/docker"  # the seat's engine folder, a volume
ENGINE_TEMPLATE = "labkit-seat-engine"  # the template volume (a cache, of one recipe)
TEMPLATE_DONE = ".labkit-template"  # in the template, once Docker has copied the image's engine folder into it
READY = "/run/labkit/seat.ready"  # written in a seat once its engine and lab are up
# What of the project goes into a seat (a checkout's layout, so labkit finds its labs and notebooks).
PROJECT_FILES = ("labkit", "labs", "notebooks", "pyproject.toml", "requirements.txt")
README = "The Swarm labs, as installed in a labkit seat: see the project's README.\n"  # pyproject's readme
MEMORY = SEAT_MEMORY
PIDS = SEAT_PIDS


def seat_recipe_hash() -> str:
    """Content hash of everything a seat image contains."""
    digest = hashlib.sha256()
    digest.update(f"images\0{images.recipe_hash()}\0".encode())
    for path in _project_files():
        data = path.read_bytes()
        digest.update(f"{path.relative_to(PROJECT).as_posix()}\0{len(data)}\0".encode() + data)
    return digest.hexdigest()[:16]


def _project_files() -> list[Path]:
    found: list[Path] = []
    for name in PROJECT_FILES:
        top = PROJECT / name
        found += [top] if top.is_file() else [p for p in top.rglob("*") if p.is_file() and _kept(p)]
    return sorted(found, key=lambda p: p.relative_to(PROJECT).as_posix())


def _kept(path: Path) -> bool:
    return "__pycache__" not in path.parts and ".ipynb_checkpoints" not in path.parts and path.suffix != ".pyc"


def seat_is_current(client: docker.DockerClient) -> bool:
    return images.image_is_current(client, SEAT_IMAGE, seat_recipe_hash())


def ensure_seat_image(client: docker.DockerClient, report: Report = print, force: bool = False) -> None:
    """Build labkit/seat unless a current one is there (a few minutes; no network is used)."""
    recipe = seat_recipe_hash()
    if not force and images.image_is_current(client, SEAT_IMAGE, recipe):
        return
    if not _is_root():
        raise ImageBuildError("The seat image is missing or out of date, and building it needs root "
                              "(apt downloads, as for the lab images). Run `sudo .venv/bin/labkit seat build`.")
    images.ensure_images(client, report)
    with _lock("seat"):  # one build at a time; a second one waits, then finds it current
        if not force and images.image_is_current(client, SEAT_IMAGE, recipe):
            return
        _build(client, recipe, report)


def _build(client: docker.DockerClient, recipe: str, report: Report) -> None:
    build_dir = settings().cache_dir / f"seat-{recipe}"
    shutil.rmtree(build_dir, ignore_errors=True)
    try:
        context = write_context(build_dir / "context", report, offline=True)
        report("Building labkit/seat:base (no network)")
        _docker_build(client, context, BASE_IMAGE, {"BASE": images.NODE_IMAGE}, report)
        preload = build_dir / "preload"
        _preload(client, preload / "engine", report)
        report("Adding the preloaded engine to the seat image")
        subprocess.run(["tar", "--numeric-owner", "--xattrs", "-C", str(preload / "engine"), "-cf",
                        str(preload / "engine.tar"), "."], check=True)  # owners, modes and file capabilities
        shutil.rmtree(preload / "engine")
        (preload / "Dockerfile").write_text(
            f"FROM {BASE_IMAGE}\nADD engine.tar /var/lib/docker/\n"
            f"LABEL {LABEL_RECIPE}={recipe} {LABEL_CACHE}=image\n"
        )
        _docker_build(client, preload, SEAT_IMAGE, {}, report)
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    if not images.image_is_current(client, SEAT_IMAGE, recipe):
        raise ImageBuildError("The engine did not keep the seat image it built. Run `labkit seat build` again.")
    client.images.prune(filters={"dangling": True, "label": f"{LABEL_CACHE}=image"})  # the seats built before
    report("Seat image ready")


def write_context(context: Path, report: Report, offline: bool) -> Path:
    """The seat's build context in CONTEXT: the Dockerfile, its scripts, the project, and when OFFLINE the
    Debian packages and wheels too (otherwise `docker build` takes them from Debian's and PyPI's sources)."""
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    for name in ("Dockerfile", "packages.txt"):
        shutil.copy(SEAT_RECIPES / name, context / name)
    shutil.copy(images.RECIPES / "install-engine.sh", context / "install-engine.sh")
    for path in _project_files():
        dest = context / "project" / path.relative_to(PROJECT)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    (context / "project/README.md").write_text(README)  # not the real one: a README edit rebuilds no seat
    (context / "debs").mkdir()
    (context / "wheels").mkdir()
    for empty in ("debs", "wheels"):  # COPY needs the folders to exist, even empty
        (context / empty / ".keep").write_text("")
    if offline:
        report("Downloading the seat's Debian packages with the host's apt")
        _download_debs(context / "debs")
        report("Downloading the Python packages as wheels")
        _download_wheels(context / "wheels")
    return context


def _download_debs(repo: Path) -> None:
    """The packages of packages.txt and everything they need that the node image lacks, as a flat apt
    repository: the host's apt resolves them against the node image's own dpkg status."""
    status = repo.parent / "node-dpkg-status"
    status.write_bytes(_file_from_image(images.NODE_IMAGE, "/var/lib/dpkg/status"))
    (repo / "partial").mkdir(parents=True, exist_ok=True)
    packages = images.package_list(SEAT_RECIPES / "packages.txt")
    options = ["-o", f"Dir::State::status={status}", "-o", f"Dir::Cache::archives={repo}", "-o", "Debug::NoLocking=1"]
    subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
    done = subprocess.run(["apt-get", "install", "-y", "-qq", "--download-only", "--no-install-recommends",
                           *options, *packages], capture_output=True, text=True)
    shutil.rmtree(repo / "partial", ignore_errors=True)
    (repo / "lock").unlink(missing_ok=True)
    debs = sorted(repo.glob("*.deb"))
    if done.returncode != 0 or not any(d.name.startswith("python3_") for d in debs):
        raise ImageBuildError(f"apt could not download the seat's packages ({', '.join(packages)}):\n"
                              f"{done.stderr[-2000:]}")
    (repo / "Packages").write_text(images.packages_index(debs))
    status.unlink()


def _download_wheels(wheels: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", str(wheels),
                           "-r", str(PROJECT / "requirements.txt"), "setuptools>=68", "wheel"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise ImageBuildError(f"pip could not download the seat's Python packages:\n{done.stderr[-2000:]}")


def _file_from_image(image: str, path: str) -> bytes:
    done = subprocess.run(["docker", "run", "--rm", "--network=none", "--entrypoint", "cat", image, path],
                          capture_output=True)
    if done.returncode != 0:
        raise ImageBuildError(f"Could not read {path} from {image}: {done.stderr.decode(errors='replace')}")
    return done.stdout


def _docker_build(client: docker.DockerClient, context: Path, tag: str, args: dict[str, str], report: Report) -> None:
    """`docker build` CONTEXT as TAG with no network, labelled a cache (`labkit clean` removes it), reporting
    each step."""
    log: list[str] = []
    for chunk in client.api.build(path=str(context), tag=tag, buildargs=args, network_mode="none", rm=True,
                                  forcerm=True, pull=False, decode=True, labels={LABEL_CACHE: "image"}):
        if "stream" in chunk:
            line = chunk["stream"].rstrip()
            log.append(line)
            if line.startswith("Step "):  # "Step 5/15 : RUN set -eu; ...": the step and its instruction
                step, _, instruction = line.partition(" : ")
                report(f"{step}: {instruction.split(' ', 1)[0]}")
        if "error" in chunk:
            tail = "\n".join(log[-15:])
            raise ImageBuildError(f"Building {tag} failed: {chunk['error'].strip()}\n{tail}")


def _preload(client: docker.DockerClient, engine_dir: Path, report: Report) -> None:
    """Fill ENGINE_DIR as a seat's engine keeps its images: a base seat's engine, on that folder, loads
    the lab images from the host's engine (`docker save | docker load`), then stops cleanly."""
    engine_dir.mkdir(parents=True)
    mode = DindBackend("seat-build", client).probe_privileged()
    name = f"labkit-seat-build-{secrets.token_hex(4)}"
    api = client.api
    created = api.create_container(
        BASE_IMAGE, entrypoint=["/usr/local/bin/labkit-entrypoint", "node"], name=name,
        labels={LABEL_KIND: "seat-build"},
        host_config=engine_host_config(api, mode, binds=[f"{engine_dir}:/var/lib/docker"], network_mode="none"),
    )
    container = client.containers.get(created["Id"])
    try:
        container.start()
        _wait_inner_engine(container)
        wanted = [images.NODE_IMAGE, *(w.image for w in images.WORKLOADS)]
        report(f"Loading {len(wanted)} lab images into the seat's engine")
        save = subprocess.Popen(["docker", "save", *wanted], stdout=subprocess.PIPE)
        load = subprocess.run(["docker", "exec", "-i", name, "docker", "load", "-q"], stdin=save.stdout,
                              capture_output=True, text=True)
        save.wait()
        if save.returncode != 0 or load.returncode != 0:
            raise ImageBuildError(f"Loading the lab images into the seat failed: {load.stderr.strip()}")
        # The lab made once and removed: its registry (a cache volume `down` keeps) then holds the lab
        # images, so a new seat's `labkit up` publishes nothing. (Its stopped nodes cannot be kept: their
        # layers hold overlay whiteouts, which an image layer cannot carry.)
        report("Making the seat's lab once, for its registry")
        for cmd in (["labkit", "up"], ["labkit", "down"]):
            done = container.exec_run(cmd)
            if done.exit_code != 0:
                raise ImageBuildError(f"`{' '.join(cmd)}` in the seat being built failed:\n"
                                      f"{done.output.decode(errors='replace')[-2000:]}")
        container.stop(timeout=30)  # dockerd shuts down cleanly on SIGTERM
    finally:
        container.remove(force=True, v=True)


def _wait_inner_engine(container: docker.models.containers.Container, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if container.exec_run(["docker", "version", "--format", "{{.Server.Version}}"]).exit_code == 0:
            return
        container.reload()
        if container.status != "running":
            break
        time.sleep(0.2)
    logs = container.logs(tail=10).decode(errors="replace")
    raise ImageBuildError(f"The engine inside {container.name} did not start. Its log:\n{logs}")


# ----------------------------------------------------------------------------------------- seats


@dataclass(frozen=True)
class Seat:
    name: str
    status: str  # the container's: running, exited, ...
    port: int | None  # on 127.0.0.1
    token: str | None
    ready: bool  # its engine and lab are up

    @property
    def url(self) -> str | None:
        if self.port is None or self.token is None:
            return None
        return f"http://127.0.0.1:{self.port}/lab/tree/start.ipynb?token={self.token}"


def container_name(name: str) -> str:
    return f"labkit-seat-{name}"


def _valid(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,39}", name):
        raise InvalidInput(f"'{name}' is not a seat name: use letters, digits and dashes (at most 40).")
    return name.lower()


def run_seat(client: docker.DockerClient, name: str, port: int | None, report: Report,
             memory: str = MEMORY, pids: int = PIDS) -> Seat:
    """Start seat NAME: its own network (no way out), its container, JupyterLab published on 127.0.0.1."""
    name = _valid(name)
    try:
        client.containers.get(container_name(name))
        raise InvalidInput(f"Seat {name} exists already: `labkit seat ls` shows it, `labkit seat rm {name}` "
                           "removes it.")
    except docker.errors.NotFound:
        pass
    ensure_seat_image(client, report)
    port = port or free_port()
    token = secrets.token_hex(24)
    network = _seat_network(client, name)
    mode = DindBackend("seat", client).probe_privileged()
    report(f"Starting seat {name} ({mode} mode), JupyterLab on 127.0.0.1:{port}")
    api = client.api
    for old in client.volumes.list(filters={"label": f"{LABEL_SEAT}={name}"}):
        old.remove(force=True)  # left by a seat removed by hand: a new seat starts afresh
    try:
        volume = engine_volume(client, container_name(name), {LABEL_SEAT: name, LABEL_KIND: "seat"})
        created = api.create_container(
            SEAT_IMAGE, name=container_name(name), hostname=name, ports=[PORT],
            environment={"JUPYTER_TOKEN": token, "LABKIT_SEAT_NO_ROUTE": "1"},
            labels={LABEL_SEAT: name, LABEL_KIND: "seat"},
            host_config=engine_host_config(api, mode, port_bindings={PORT: ("127.0.0.1", port)}, mem_limit=memory,
                                           pids_limit=pids, network_mode=network.name,
                                           binds=[f"{volume}:{ENGINE_DIR}"] if volume else None),
        )
        api.start(created["Id"])
    except docker.errors.APIError as exc:
        remove_seat(client, name)
        raise BackendError(f"Seat {name} could not start: {exc.explanation or exc}") from exc
    return seat(client, name)


def engine_volume(client: docker.DockerClient, name: str, labels: dict[str, str]) -> str | None:
    """Volume NAME for a new seat's engine, filled from the template (a fraction of a second); NAME as it
    is when it exists already (a seat's own, kept). None where this process cannot write the engine's
    volumes (not root, or a remote engine): the seat then gets Docker's copy of the image's folder."""
    try:
        existing = client.volumes.get(name)
        return name if existing.attrs.get("Labels", {}).get(LABEL_KIND) == "seat" else None
    except docker.errors.NotFound:
        pass
    template = engine_template(client)
    if template is None:
        return None
    volume = client.volumes.create(name, labels=labels)
    target = Path(volume.attrs["Mountpoint"])
    try:
        engine_state.copy_engine(template, target, skip=frozenset({TEMPLATE_DONE}))
    except (OSError, subprocess.CalledProcessError):
        volume.remove(force=True)
        return None
    return name


def engine_template(client: docker.DockerClient) -> Path | None:
    """The folder of the template volume for the current seat image (made once per image, by Docker's own
    copy: about 3 s); None where this process cannot reach it (not root, or the engine on another machine)."""
    if not _is_root():
        return None
    recipe = seat_recipe_hash()
    with _lock("seat-engine"):
        for volume in client.volumes.list(filters={"label": f"{LABEL_CACHE}=seat-engine"}):
            folder = Path(volume.attrs["Mountpoint"])
            if volume.attrs.get("Labels", {}).get(LABEL_RECIPE) == recipe and (folder / TEMPLATE_DONE).exists():
                return folder
            volume.remove(force=True)  # another image's, or half made
        volume = client.volumes.create(f"{ENGINE_TEMPLATE}-{recipe}",
                                       labels={LABEL_CACHE: "seat-engine", LABEL_RECIPE: recipe})
        folder = Path(volume.attrs["Mountpoint"])
        if not folder.is_dir():  # the engine runs elsewhere (a VM): its volumes are not this machine's
            volume.remove(force=True)
            return None
        # Mounting the image's volume path on an empty volume makes Docker copy the folder into it.
        copier = client.containers.create(SEAT_IMAGE, entrypoint=["true"], network_mode="none",
                                          volumes={volume.name: {"bind": ENGINE_DIR, "mode": "rw"}})
        copier.remove()
        (folder / TEMPLATE_DONE).touch()
        return folder


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    """One process at a time (others wait) for NAME, across processes of this machine."""
    settings().cache_dir.mkdir(parents=True, exist_ok=True)
    with (settings().cache_dir / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _seat_network(client: docker.DockerClient, name: str) -> docker.models.networks.Network:
    """A bridge of the seat's own (no other seat on it), with no masquerading: nothing leaves through it."""
    for old in client.networks.list(filters={"label": f"{LABEL_SEAT}={name}"}):
        old.remove()
    return client.networks.create(container_name(name), driver="bridge", labels={LABEL_SEAT: name, LABEL_KIND: "seat"},
                                  options={"com.docker.network.bridge.enable_ip_masquerade": "false"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seat(client: docker.DockerClient, name: str) -> Seat:
    try:
        container = client.containers.get(container_name(_valid(name)))
    except docker.errors.NotFound:
        raise InvalidInput(f"No seat {name}. `labkit seat ls` lists the seats.") from None
    return _describe(container)


def seats(client: docker.DockerClient) -> list[Seat]:
    found = client.containers.list(all=True, filters={"label": LABEL_SEAT}, ignore_removed=True)
    return sorted((_describe(c) for c in found), key=lambda s: s.name)


def _describe(container: docker.models.containers.Container) -> Seat:
    env = dict(e.split("=", 1) for e in container.attrs["Config"].get("Env") or [] if "=" in e)
    bindings = (container.attrs["HostConfig"].get("PortBindings") or {}).get(f"{PORT}/tcp") or []
    port = int(bindings[0]["HostPort"]) if bindings and bindings[0].get("HostPort") else None
    ready = container.status == "running" and container.exec_run(["test", "-f", READY]).exit_code == 0
    return Seat(container.labels[LABEL_SEAT], container.status, port, env.get("JUPYTER_TOKEN"), ready)


def remove_seat(client: docker.DockerClient, name: str) -> None:
    """Remove seat NAME: its container, with its engine's volume (its lab and work), and its network."""
    name = _valid(name)
    found = False
    for c in client.containers.list(all=True, filters={"label": f"{LABEL_SEAT}={name}"}, ignore_removed=True):
        c.remove(force=True, v=True)
        found = True
    for volume in client.volumes.list(filters={"label": f"{LABEL_SEAT}={name}"}):
        volume.remove(force=True)
        found = True
    for network in client.networks.list(filters={"label": f"{LABEL_SEAT}={name}"}):
        network.remove()
        found = True
    if not found:
        raise InvalidInput(f"No seat {name}. `labkit seat ls` lists the seats.")


def wait_ready(client: docker.DockerClient, name: str, timeout: float = 180) -> Seat:
    """Wait until seat NAME's lab is up and its JupyterLab answers; the seat."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        current = seat(client, name)
        if current.status != "running":
            logs = client.containers.get(container_name(name)).logs(tail=10).decode(errors="replace")
            raise BackendError(f"Seat {name} stopped ({current.status}). Last lines of its log:\n{logs}")
        if current.ready and not current.port:  # spawned by JupyterHub: the hub checks its JupyterLab
            return current
        if current.ready and current.port:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{current.port}/api/status?token={current.token}",
                                            timeout=2) as answer:
                    if answer.status == 200:
                        return current
            except OSError:
                pass
        if time.monotonic() > deadline:
            raise BackendError(f"Seat {name} was not ready within {timeout:.0f} s: see "
                               f"`docker exec {container_name(name)} cat /var/log/labkit-seat.log`.")
        time.sleep(0.2)


def _is_root() -> bool:
    return os.geteuid() == 0
