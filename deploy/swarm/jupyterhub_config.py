"""JupyterHub across several workshop hosts: DockerSpawner's SwarmSpawner runs each attendee's seat as a
Swarm service on a Swarm of workshop hosts (the hub on a manager).

    docker network create --driver overlay --attachable labkit-seats
    jupyterhub -f deploy/swarm/jupyterhub_config.py

What a service cannot give a seat, and so what stops this today (README: "Beyond one host"):
- `privileged`: never, for any service (moby issue 24862);
- capabilities: `cap_add`/`cap_drop` exist since engine API 1.41 (20.10), used below;
- seccomp and AppArmor unconfined (`Privileges.Seccomp`, `Privileges.AppArmor` in the service spec):
  only from engine API 1.45 (engine 26.0); before it a service runs the default seccomp profile;
- a device cgroup rule (`a *:* rwm`) and unmasked /proc and /sys paths (`systempaths=unconfined`):
  no field in the service spec, up to API 1.45 at least.
Tried on this project's machine (engine 20.10.24, a single-node swarm of the local engine): the seat as a
service with `--cap-add ALL --cap-drop SYS_RESOURCE` starts its JupyterLab and its own engine, but that
engine's first container (the lab hub) fails: "unable to join session keyring: unable to create session
key: operation not permitted", the default seccomp profile refusing keyctl. So on engines before API 1.45
a seat cannot run as a service; from 1.45 seccomp can be lifted, and whether the missing device rule and
/proc/sys paths then stop it is untried (no such engine here). Until then,
run one `make hub` per workshop host (DockerSpawner, deploy/hub/) behind a load balancer that sends each
attendee to one host, or use Kubernetes (deploy/k8s/values.yaml), where a pod can be privileged.
"""

import docker

from labkit import hosted, seat
from labkit.backends.dind import FALLBACK_HOST_CONFIG

c = get_config()  # noqa: F821  (JupyterHub provides it)
gateway, mode = hosted.prepare(docker.from_env())
hosted.configure(c, gateway, mode)
c.JupyterHub.spawner_class = "dockerspawner.SwarmSpawner"
c.JupyterHub.hub_ip = "0.0.0.0"  # seats on other hosts reach the hub over the overlay network
c.SwarmSpawner.image = seat.SEAT_IMAGE
c.SwarmSpawner.network_name = hosted.NETWORK  # an attachable overlay network, made beforehand
c.SwarmSpawner.extra_container_spec = {
    "cap_add": FALLBACK_HOST_CONFIG["cap_add"],  # engine API 1.41+
    "cap_drop": FALLBACK_HOST_CONFIG["cap_drop"],
}
c.SwarmSpawner.extra_resources_spec = {"mem_limit": 3 * 1024**3}
c.SwarmSpawner.extra_placement_spec = {"constraints": ["node.labels.labkit.seats == true"]}
