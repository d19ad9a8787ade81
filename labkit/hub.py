"""The lab hub: one container on the lab network that every node relies on.

- DNS (dnsmasq): answers lab names from its /etc/hosts and NXDOMAIN for every
  other name at once. It never forwards, so no lookup leaves the machine, and
  an inner engine's attempt to reach a public registry fails in milliseconds.
- Registry mirror (Debian's docker-registry): holds the lab images as
  ``library/alpine`` and ``library/nginx`` (every tag in ``images.WORKLOADS``:
  ``nginx:1.25`` is ``library/nginx:1.25``), so ``docker pull alpine`` and
  ``docker service create nginx:1.25 ...`` work on every node exactly as typed.

Its registry data lives in a cache volume named by the images' recipe hash, so
it is filled once and kept across ``labkit down``.
"""

from __future__ import annotations

import json

import docker
import docker.errors

from labkit import images
from labkit.errors import BackendError
from labkit.report import Report
from labkit.topology import HUB_HOSTNAME, LABEL_CACHE, REGISTRY_PORT, AddressPlan, Names

__all__ = ["ensure_hub", "registry_volume", "seed_registry"]
LABEL_HOSTS = "labkit.hosts"


def registry_volume() -> str:
    return f"labkit-registry-{images.recipe_hash()}"


def ensure_hub(
    host: docker.DockerClient, names: Names, plan: AddressPlan, hosts: dict[str, str], report: Report
) -> None:
    """Start the hub, (re)creating it when the lab's names changed."""
    hosts_label = json.dumps(hosts, sort_keys=True)
    try:
        current = host.containers.get(names.hub)
        if (
            current.labels.get(LABEL_HOSTS) == hosts_label
            and current.image.labels.get(images.LABEL_RECIPE) == images.recipe_hash()
        ):
            if current.status != "running":
                current.start()
            return
        current.remove(force=True, v=True)  # and its anonymous volume
    except docker.errors.NotFound:
        pass
    volume = registry_volume()
    try:
        host.volumes.get(volume)
    except docker.errors.NotFound:
        host.volumes.create(volume, labels={LABEL_CACHE: "registry"})
    report("Starting the lab hub (DNS and registry mirror)")
    api = host.api
    api.create_container(
        images.NODE_IMAGE,
        command=["hub"],
        name=names.hub,
        hostname=HUB_HOSTNAME,
        labels=names.labels("hub", **{LABEL_HOSTS: hosts_label}),
        host_config=api.create_host_config(
            binds=[f"{volume}:/var/lib/docker-registry"],
            extra_hosts={n: ip for n, ip in hosts.items() if n != HUB_HOSTNAME},
            init=True,
        ),
        networking_config=api.create_networking_config(
            {names.network: api.create_endpoint_config(ipv4_address=plan.hub, aliases=[HUB_HOSTNAME])}
        ),
    )
    host.containers.get(names.hub).start()


def seed_registry(host: docker.DockerClient, client: docker.DockerClient, hub_address: str, report: Report) -> None:
    """Publish every lab image tag on the hub's registry, through a node's engine (CLIENT), unless there already."""
    for workload in images.WORKLOADS:
        repo = f"{hub_address}:{REGISTRY_PORT}/{workload.repository}"
        try:
            client.api.inspect_distribution(f"{repo}:{workload.tag}")
            continue
        except docker.errors.APIError:
            pass
        report(f"Publishing {workload.ref} on the lab registry")
        client.images.load(b"".join(host.images.get(workload.image).save(named=True)))
        loaded = client.images.get(workload.image)
        loaded.tag(repo, workload.tag)
        for line in client.api.push(repo, tag=workload.tag, stream=True, decode=True):
            if "error" in line:
                raise BackendError(
                    f"Could not publish {workload.ref} on the lab registry: {line['error']}. "
                    "Run `labkit down` and `labkit up`."
                )
        client.images.remove(f"{repo}:{workload.tag}")
        client.images.remove(workload.image)
