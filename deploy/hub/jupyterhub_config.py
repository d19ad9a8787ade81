"""JupyterHub for a workshop room: every attendee gets a labkit seat (its own engine, lab and JupyterLab).

    make hub            # JupyterHub on http://127.0.0.1:8000 (put a TLS proxy in front for a real room)

Settings: the LABKIT_HUB_* variables (README, "A hosted room"). Authentication: LABKIT_HUB_PASSWORD sets a
shared password for trials and tests; for a real room set your authenticator below (GitHub, LDAP, ...).
"""

import docker

from labkit import hosted

c = get_config()  # noqa: F821  (JupyterHub provides it)
gateway, mode = hosted.prepare(docker.from_env())
hosted.configure(c, gateway, mode)
# c.JupyterHub.authenticator_class = "github"   # a real room: any JupyterHub authenticator
