#!/bin/sh
# Entry point of every labkit container built from the node image.
#   labkit-entrypoint node [DOCKERD-FLAGS...]   run a Docker Engine (a lab node)
#   labkit-entrypoint hub                       run the lab's DNS and registry mirror
#   labkit-entrypoint box                       boot a Vagrant box (docker provider): systemd as init
#   labkit-entrypoint lab-route                 (in a box) default route through the lab network only
set -eu

say() { echo "labkit-entrypoint: $*" >&2; }

# Remount /sys read-write (needed to create network devices and cgroups).
writable_sys() {
    if grep -qE '^sysfs /sys sysfs ro[,]' /proc/mounts; then
        mount -o remount,rw /sys || say "could not remount /sys read-write"
    fi
}

# Give the inner dockerd writable cgroups.
#  cgroup v2: move ourselves into a child group and delegate every controller
#             (the same dance as Docker's official dind image).
#  cgroup v1: a non-privileged container sees read-only controller mounts; a
#             plain remount is refused, so unmount each and mount it afresh.
writable_cgroups() {
    if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
        if grep -qE ' /sys/fs/cgroup cgroup2 ro[,]' /proc/mounts; then
            mount -o remount,rw /sys/fs/cgroup
        fi
        mkdir -p /sys/fs/cgroup/init
        xargs -rn1 < /sys/fs/cgroup/cgroup.procs > /sys/fs/cgroup/init/cgroup.procs 2>/dev/null || :
        sed -e 's/ / +/g' -e 's/^/+/' < /sys/fs/cgroup/cgroup.controllers \
            > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || :
        return
    fi
    if grep -qE ' /sys/fs/cgroup tmpfs ro[,]' /proc/mounts; then
        mount -o remount,rw /sys/fs/cgroup || :
    fi
    grep -E '^cgroup /sys/fs/cgroup/[^ ]+ cgroup ro[, ]' /proc/mounts | while read -r _ dir _ opts _; do
        controllers=$(echo "$opts" | tr ',' '\n' \
            | grep -vE '^(ro|rw|nosuid|nodev|noexec|relatime|noatime|strictatime)$' | paste -sd, -)
        case "$controllers" in name=*) controllers="none,$controllers" ;; esac
        umount "$dir" && mount -t cgroup -o "$controllers" cgroup "$dir" \
            || say "could not remount cgroup $dir ($controllers)"
    done
}

mode=${1:-node}
[ $# -gt 0 ] && shift
case "$mode" in
    node)
        writable_sys
        writable_cgroups
        # A node restarted after a hard stop keeps its old pid files; in a new pid namespace their
        # pids may now be other processes, and dockerd would wait on a containerd that is not there.
        rm -f /var/run/docker.pid /run/containerd/containerd.pid /var/run/docker/containerd/containerd.pid
        mkdir -p /labkit
        exec dockerd "$@"
        ;;
    hub)
        # DNS: answer lab names from /etc/hosts, every other name NXDOMAIN at once
        # (never forward: nothing may leave the machine).
        dnsmasq --no-resolv --no-poll --address='/#/' --log-facility=- --user=root
        exec docker-registry serve /etc/labkit/registry.yml
        ;;
    box)
        writable_sys
        writable_cgroups
        # Vagrant's docker provider also attaches the box to Docker's default bridge (its SSH port is
        # published there): that bridge must never be a way out, so the box gets no route through it.
        ip route del default 2>/dev/null || :
        exec /sbin/init
        ;;
    lab-route)
        # LAB_SUBNET and LAB_GATEWAY come from /etc/labkit/box.env. Vagrant connects the lab network
        # just after the box starts: wait for it (60 s), then route through it.
        tries=0
        until ip -4 -o addr show to "$LAB_SUBNET" | grep -q inet; do
            tries=$((tries + 1))
            [ "$tries" -gt 600 ] && { say "no address in $LAB_SUBNET after 60 s"; exit 1; }
            sleep 0.1
        done
        exec ip route replace default via "$LAB_GATEWAY"
        ;;
    *)
        exec "$mode" "$@"
        ;;
esac
