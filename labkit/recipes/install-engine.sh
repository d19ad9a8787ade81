#!/bin/sh
# Install Docker Engine from Debian's own packages, the same way on every labkit
# node: the dind node image build runs this in its Debian root filesystem, and
# Vagrant runs it on each VM. Also installs the tools the labs use on a node.
set -eu
export DEBIAN_FRONTEND=noninteractive
PACKAGES="docker.io iptables iproute2 procps ca-certificates kmod openssl"

apt-get update -qq
# shellcheck disable=SC2086  # a list of package names
apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null

# The engine's API stays on its unix socket: never on TCP without authentication.
if grep -qs 'tcp://' /etc/docker/daemon.json /etc/default/docker; then
    echo "install-engine: the Docker API is configured on TCP; labkit nodes never expose it" >&2
    exit 1
fi

if [ -d /run/systemd/system ]; then   # a VM: start the engine now and at every boot
    systemctl enable --now docker.service >/dev/null 2>&1
    if id vagrant >/dev/null 2>&1; then usermod -aG docker vagrant; fi
fi
apt-get clean
echo "install-engine: $(dockerd --version)"
