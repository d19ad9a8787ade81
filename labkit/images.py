"""The lab images, built on the local engine from Debian packages, with no registry.

- ``labkit/node``: Debian 12 with docker.io; every lab node and the lab hub run it.
- ``labkit/alpine`` and ``labkit/nginx``: small stand-ins for the images the
  slides use, assembled from files of the same Debian packages (busybox with
  iputils ping; nginx with its default page). The lab hub serves them to the
  nodes as ``alpine`` and ``nginx`` under the tags learners type.
- nginx comes in several tags, all the same Debian nginx binary: ``latest`` (its
  own version), and ``1.24``, ``1.25``, ``1.26-broken`` that name their tag in
  the page and, through Debian's headers-more module, in the ``Server`` header.
  Every tag answers ``/whoami`` (container hostname and version) and
  ``/health`` (200; 500 in ``1.26-broken``, for failing health checks).

Every file that goes into an image lives under ``recipes/``: the scripts and
lists that build the node root, and under ``recipes/workloads/`` one tree per
workload image, laid over its root as it is: ``common/`` first, then the
workload's own (``nginx/``), then its tag's (``nginx-1.25/``); later trees
replace files of the same path. Only ``etc/os-release`` is written from the
workload's name and tag.

Each image carries the hash of its recipe (every file under ``recipes/`` but
those in ``NOT_IN_IMAGES``, and this module's build parameters) in a label; a
build runs only when it differs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from labkit.aptsources import debian_mirror
from labkit.errors import ImageBuildError, InvalidInput
from labkit.report import Report
from labkit.settings import settings
from labkit.topology import LABEL_CACHE, LABEL_LAB, LABEL_RECIPE

SUITE = "bookworm"
RECIPES = Path(__file__).parent / "recipes"
# Files under recipes/ (paths relative to it) that no image contains, so the recipe hash leaves them out:
# form-swarm.sh runs on the Vagrant VMs only. Everything else there counts.
NOT_IN_IMAGES = frozenset({"form-swarm.sh"})
BOX_TREE = "box"  # recipes/box/: the Vagrant box (box.py), which has a recipe hash of its own
SEAT_TREE = "seat"  # recipes/seat/: the seat image (seat.py), likewise
WORKLOAD_TREES = "workloads"  # recipes/workloads/{common,<name>,<name>-<tag>}/...: laid over a workload image's root
NODE_IMAGE = "labkit/node:latest"
ENTRYPOINT = "/usr/local/bin/labkit-entrypoint"
NODE_CHANGES = (
    f'ENTRYPOINT ["{ENTRYPOINT}"]',
    'CMD ["node"]',
    "VOLUME /var/lib/docker",
    'LABEL org.opencontainers.image.description="labkit lab node: Debian 12 with docker.io"',
)
# Trimmed from the node image: documentation, translations, apt's caches.
TRIM = ["var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info"]


@dataclass(frozen=True)
class Workload:
    """A small image assembled from files of the node root filesystem."""

    name: str  # what learners type: alpine, nginx
    binaries: tuple[str, ...]  # copied with the shared libraries they load
    files: tuple[str, ...]  # copied as they are
    changes: tuple[str, ...]  # Dockerfile-style instructions for `docker import`
    tag: str = "latest"  # what learners type after the colon: nginx:1.25

    @property
    def ref(self) -> str:
        """NAME:TAG, as learners type it."""
        return f"{self.name}:{self.tag}"

    @property
    def image(self) -> str:
        """The image on the host engine."""
        return f"labkit/{self.ref}"

    @property
    def repository(self) -> str:
        """The repository in the lab registry (the tag goes after it)."""
        return f"library/{self.name}"

    @property
    def trees(self) -> tuple[str, ...]:
        """Names of the recipe trees under recipes/workloads/ laid over its root, in order (later ones win)."""
        return ("common", self.name) if self.tag == "latest" else ("common", self.name, f"{self.name}-{self.tag}")


_WORKLOAD_DESCRIPTION = "labkit stand-in for {0}, built offline from Debian 12 packages"
_OS_RELEASE = 'NAME="labkit {name}"\nID=labkit\nVERSION_ID="{tag}"\nPRETTY_NAME="{description}"\n'
# Every nginx tag is Debian's one nginx binary; the tags differ only in their recipe trees (page, version, /health).
NGINX_MODULES = ("/usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so",)  # more_set_headers: Server
NGINX_TAGS = ("latest", "1.24", "1.25", "1.26-broken")
WORKLOADS = (
    Workload(
        "alpine",
        binaries=("/bin/busybox", "/usr/bin/ping", "/usr/bin/wget"),
        files=("/etc/ssl/certs/ca-certificates.crt",),
        changes=('CMD ["/bin/sh"]',),
    ),
    *(
        Workload(
            "nginx",
            binaries=("/bin/busybox", "/usr/sbin/nginx", *NGINX_MODULES),  # busybox wget: health checks
            files=("/etc/nginx/mime.types",),
            changes=('CMD ["nginx", "-g", "daemon off;"]', "EXPOSE 80"),
            tag=tag,
        )
        for tag in NGINX_TAGS
    ),
)


def workload(ref: str) -> Workload:
    """The workload learners call REF (``nginx``, ``nginx:1.25``)."""
    name, _, tag = ref.partition(":")
    for w in WORKLOADS:
        if (w.name, w.tag) == (name, tag or "latest"):
            return w
    raise InvalidInput(f"No lab image {ref}; there are {', '.join(w.ref for w in WORKLOADS)}.")


def image_recipe_files() -> list[Path]:
    """The files under RECIPES that go into an image, sorted by their path relative to it."""
    files = [p for p in RECIPES.rglob("*") if p.is_file() and p.relative_to(RECIPES).as_posix() not in NOT_IN_IMAGES
             and p.relative_to(RECIPES).parts[0] not in (BOX_TREE, SEAT_TREE)]
    return sorted(files, key=lambda p: p.relative_to(RECIPES).as_posix())


def recipe_hash() -> str:
    """Content hash of everything that decides what the images contain."""
    digest = hashlib.sha256()

    def add(name: str, data: bytes) -> None:
        digest.update(f"{name}\0{len(data)}\0".encode() + data)

    add("SUITE", SUITE.encode())
    add("ENTRYPOINT", ENTRYPOINT.encode())
    add("TRIM", repr(TRIM).encode())
    add("NODE_CHANGES", repr(NODE_CHANGES).encode())
    for path in image_recipe_files():
        add(f"recipes/{path.relative_to(RECIPES).as_posix()}", path.read_bytes())
    for w in WORKLOADS:
        add(f"workload/{w.ref}", repr(w).encode())
        add(f"workload/{w.ref}/description", _description(w).encode())
        for rel, content in sorted(generated_workload_files(w).items()):
            add(f"workload/{w.ref}/{rel}", content.encode())
    return digest.hexdigest()[:16]


def package_list(path: Path) -> list[str]:
    """The Debian package names in a recipe list (comments after #, any spacing)."""
    return [word for line in path.read_text().splitlines() for word in line.split("#", 1)[0].split()]


def packages_index(debs: list[Path]) -> str:
    """An apt `Packages` index of DEBS for a flat repository (`deb [trusted=yes] file:DIR ./`)."""
    stanzas = []
    for deb in debs:
        control = subprocess.run(["dpkg-deb", "-f", str(deb)], check=True, capture_output=True, text=True).stdout
        data = deb.read_bytes()
        stanzas.append(
            control.rstrip("\n")
            + f"\nFilename: ./{deb.name}\nSize: {len(data)}\nMD5sum: {hashlib.md5(data).hexdigest()}"
            + f"\nSHA256: {hashlib.sha256(data).hexdigest()}\n"
        )
    return "\n".join(stanzas)


def node_packages() -> list[str]:
    return package_list(RECIPES / "node-packages.txt")


def image_is_current(client: docker.DockerClient, image: str, recipe: str) -> bool:
    try:
        labels = client.images.get(image).labels or {}
    except docker.errors.ImageNotFound:
        return False
    return labels.get(LABEL_RECIPE) == recipe


def images_are_current(client: docker.DockerClient) -> bool:
    recipe = recipe_hash()
    return all(image_is_current(client, i, recipe) for i in [NODE_IMAGE, *(w.image for w in WORKLOADS)])


def ensure_images(client: docker.DockerClient, report: Report = print, force: bool = False) -> None:
    """Build the node and workload images unless current ones are already there."""
    if not force and images_are_current(client):
        return
    if os.geteuid() != 0:
        raise ImageBuildError(
            "The lab images are missing or out of date, and building them needs root (debootstrap). "
            "Run `sudo .venv/bin/labkit setup` once; after that you can run labs as yourself."
        )
    recipe = recipe_hash()
    cache = settings().cache_dir
    build_dir = cache / f"build-{recipe}"
    rootfs = _rootfs(build_dir, report)
    if force or not image_is_current(client, NODE_IMAGE, recipe):
        report("Importing the node image")
        import_root(
            client,
            rootfs,
            NODE_IMAGE,
            recipe,
            list(NODE_CHANGES),
        )
    for workload in WORKLOADS:
        if force or not image_is_current(client, workload.image, recipe):
            report(f"Assembling the {workload.ref} image")
            staging = build_dir / f"{workload.name}-{workload.tag}"
            assemble(rootfs, staging, workload)
            description = _description(workload)
            import_root(
                client,
                staging,
                workload.image,
                recipe,
                [*workload.changes, f'LABEL org.opencontainers.image.description="{description}"'],
            )
    shutil.rmtree(build_dir, ignore_errors=True)
    for old in cache.glob("build-*"):  # leftovers of earlier recipes
        shutil.rmtree(old, ignore_errors=True)
    client.images.prune(filters={"dangling": True, "label": f"{LABEL_CACHE}=image"})
    report("Images ready")


def remove_caches(client: docker.DockerClient) -> int:
    """Remove labkit's images, registry data and build directories; return how many went."""
    in_use = client.containers.list(all=True, filters={"label": LABEL_LAB}, ignore_removed=True)
    if in_use:
        raise InvalidInput("A lab still runs on these images. Run `labkit down` (for each --lab) first.")
    removed = 0
    for volume in client.volumes.list(filters={"label": LABEL_CACHE}):  # registry data, seat engine templates
        volume.remove(force=True)
        removed += 1
    cached = client.images.list(filters={"label": f"{LABEL_CACHE}=image"})
    for image in sorted(cached, key=lambda i: i.attrs.get("Created", ""), reverse=True):  # children first
        client.images.remove(image.id, force=True)
        removed += 1
    shutil.rmtree(settings().cache_dir, ignore_errors=True)
    return removed


def _rootfs(build_dir: Path, report: Report) -> Path:
    """A Debian root filesystem with the node packages; a half-built one is started afresh."""
    rootfs = build_dir / "rootfs"
    done = build_dir / "rootfs.complete"
    if done.exists():
        return rootfs
    if os.geteuid() != 0:
        raise ImageBuildError("Building the node image needs root (debootstrap). Run `sudo labkit setup` once.")
    if not shutil.which("debootstrap"):
        raise ImageBuildError(
            "debootstrap is not installed. Install it (apt-get install debootstrap) or run `labkit setup`, which does."
        )
    shutil.rmtree(build_dir, ignore_errors=True)
    build_dir.mkdir(parents=True)
    mirror = settings().debian_mirror or debian_mirror(SUITE)
    packages = node_packages()
    report(f"debootstrap {SUITE} with {len(packages)} packages (about 35 s)")
    cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", SUITE, str(rootfs), mirror]
    log_path = build_dir / "debootstrap.log"
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        with log_path.open("w") as log:
            for line in proc.stdout:
                log.write(line)
                if line.startswith("I: ") and line[3:].split(" ", 1)[0] in (
                    "Retrieving",
                    "Validating",
                    "Extracting",
                    "Installing",
                    "Configuring",
                    "Unpacking",
                ):
                    report(line[3:].strip())
    if proc.returncode != 0:
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-5:])
        raise ImageBuildError(f"debootstrap failed (exit {proc.returncode}); the next run starts it afresh. "
                          f"Last lines of {log_path}:\n{tail}")
    report("Installing the engine with install-engine.sh (as on Vagrant VMs)")
    run_in_root(rootfs, RECIPES / "install-engine.sh", build_dir / "install-engine.log")
    for rel in TRIM:
        target = rootfs / rel
        if target.is_dir():
            shutil.rmtree(target)
            target.mkdir()
    shutil.copy(RECIPES / "node-entrypoint.sh", rootfs / ENTRYPOINT.lstrip("/"))
    (rootfs / ENTRYPOINT.lstrip("/")).chmod(0o755)
    (rootfs / "etc/labkit").mkdir(exist_ok=True)
    shutil.copy(RECIPES / "registry.yml", rootfs / "etc/labkit/registry.yml")
    done.touch()
    return rootfs


def run_in_root(rootfs: Path, script: Path, log: Path) -> None:
    """Run SCRIPT inside ROOTFS (chroot) with the host's resolver, no service starts, /proc mounted."""
    policy = rootfs / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")  # Debian's way to say: install, but start nothing
    policy.chmod(0o755)
    shutil.copy("/etc/resolv.conf", rootfs / "etc/resolv.conf")
    shutil.copy(script, rootfs / "tmp" / script.name)
    subprocess.run(["mount", "-t", "proc", "proc", str(rootfs / "proc")], check=True)
    try:
        with log.open("w") as out:
            done = subprocess.run(["chroot", str(rootfs), "/bin/sh", f"/tmp/{script.name}"], stdout=out,
                                  stderr=subprocess.STDOUT)
    finally:
        subprocess.run(["umount", str(rootfs / "proc")], check=False)
        policy.unlink(missing_ok=True)
        (rootfs / "tmp" / script.name).unlink(missing_ok=True)
        (rootfs / "etc/resolv.conf").unlink(missing_ok=True)
    if done.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-5:])
        raise ImageBuildError(f"{script.name} failed (exit {done.returncode}); the next run starts afresh. "
                          f"Last lines of {log}:\n{tail}")


def import_root(client: docker.DockerClient, root: Path, image: str, recipe: str, changes: list[str]) -> None:
    """`docker import` a directory as IMAGE, labelled with the recipe hash."""
    tar_path = root.parent / f"{root.name}.tar"
    subprocess.run(["tar", "--numeric-owner", "--xattrs", "-C", str(root), "-cf", str(tar_path), "."], check=True)
    repository, tag = image.rsplit(":", 1)
    try:
        client.api.import_image_from_file(
            str(tar_path),
            repository=repository,
            tag=tag,
            changes=[*changes, f"LABEL {LABEL_RECIPE}={recipe}", f"LABEL {LABEL_CACHE}=image"],
        )
    finally:
        tar_path.unlink(missing_ok=True)
    if not image_is_current(client, image, recipe):
        raise ImageBuildError(f"The engine did not keep the imported image {image}. Run `labkit setup` again.")


def parse_ldd(output: str) -> list[str]:
    """Library paths from `ldd` output (skips the kernel's vdso)."""
    paths: list[str] = []
    for line in output.splitlines():
        line = line.strip()
        if "not found" in line:
            raise ImageBuildError(f"A library the workload images need is missing from the node image: {line}")
        if "=>" in line:
            target = line.split("=>", 1)[1].strip().split(" (", 1)[0].strip()
        else:
            target = line.split(" (", 1)[0].strip()
        if target.startswith("/"):
            paths.append(target)
    return paths


def chroot(rootfs: Path, *cmd: str) -> str:
    return subprocess.run(["chroot", str(rootfs), *cmd], check=True, capture_output=True, text=True).stdout


def _copy_in(rootfs: Path, staging: Path, path: str) -> None:
    """Copy PATH (symlinks followed inside the root) to the same path in the staging root."""
    real = chroot(rootfs, "readlink", "-f", path).strip()
    dest = staging / path.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(rootfs / real.lstrip("/"), dest)


def assemble(rootfs: Path, staging: Path, workload: Workload) -> None:
    """Lay out a workload image: its binaries, their libraries, busybox applets, config."""
    shutil.rmtree(staging, ignore_errors=True)
    for d in (
        "usr/bin",
        "usr/sbin",
        "usr/lib",
        "usr/lib64",
        "etc",
        "tmp",
        "root",
        "run",
        "var/run",
        "var/log/nginx",
        "var/lib/nginx",
        "usr/share/nginx/html",
    ):
        (staging / d).mkdir(parents=True, exist_ok=True)
    for link, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")):
        (staging / link).symlink_to(target)
    (staging / "tmp").chmod(0o1777)
    needed: set[str] = set()
    for binary in workload.binaries:
        needed.add(binary)
        needed.update(parse_ldd(chroot(rootfs, "ldd", binary)))
    for path in sorted(needed | set(workload.files)):
        _copy_in(rootfs, staging, path)
    for applet in chroot(rootfs, "/bin/busybox", "--list").split():
        link = staging / "usr/bin" / applet
        if not link.exists() and not (staging / "usr/sbin" / applet).exists():
            link.symlink_to("busybox")
    lay_workload_files(staging, workload)


def _description(w: Workload) -> str:
    return _WORKLOAD_DESCRIPTION.format(w.name if w.tag == "latest" else w.ref)


def workload_trees(w: Workload) -> list[Path]:
    """The recipe trees laid over W's root, in order: common, its name's, its tag's (those that exist)."""
    base = RECIPES / WORKLOAD_TREES
    return [base / name for name in w.trees if (base / name).is_dir()]


def generated_workload_files(w: Workload) -> dict[str, str]:
    """The files written from the workload's name and tag rather than copied from a recipe tree."""
    return {"etc/os-release": _OS_RELEASE.format(name=w.name, tag=w.tag, description=_description(w))}


def lay_workload_files(staging: Path, w: Workload | str) -> None:
    """Lay workload W's recipe trees over the STAGING root (later trees win), then its generated files.

    W may be given as learners type it (``nginx:1.25``). Needs no chroot: it only reads RECIPES and
    writes under STAGING.
    """
    if isinstance(w, str):
        w = workload(w)
    files: dict[str, bytes] = {}
    for tree in workload_trees(w):
        files.update({p.relative_to(tree).as_posix(): p.read_bytes() for p in tree.rglob("*") if p.is_file()})
    files.update({rel: content.encode() for rel, content in generated_workload_files(w).items()})
    for rel, data in sorted(files.items()):
        dest = staging / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.unlink(missing_ok=True)  # never write through a symlink copied in from the node root
        dest.write_bytes(data)
