#!/bin/sh
# Entry point of every labkit container built from the node image.
#   labkit-entrypoint node [DOCKERD-FLAGS...]   run a Docker Engine (a lab node)
#   labkit-entrypoint hub                       run the lab's DNS and registry mirror
#   labkit-entrypoint box                       boot a Vagrant box (docker provider): systemd as init
#   labkit-entrypoint lab-route                 (in a box) default route through the lab network only
#   labkit-entrypoint seat [COMMAND...]         (the seat image) its engine and lab in the background, then
#                                               COMMAND (JupyterLab, or JupyterHub's single-user server)
#   labkit-entrypoint cgroups                   only make the cgroups writable (what node and seat do first)
# CGROUP_ROOT and PROC_MOUNTS (default /sys/fs/cgroup, /proc/mounts) and LABKIT_DRY_RUN=1 (print each mount
# instead of doing it) let tests check the cgroup decisions on a fake tree.
set -eu

say() { echo "labkit-entrypoint: $*" >&2; }
CG=${CGROUP_ROOT:-/sys/fs/cgroup}
MOUNTS=${PROC_MOUNTS:-/proc/mounts}
SELF_CGROUP=${PROC_SELF_CGROUP:-/proc/self/cgroup}
run() { if [ "${LABKIT_DRY_RUN:-}" = 1 ]; then echo "$*"; else "$@"; fi; }

# Remount /sys read-write (needed to create network devices and cgroups).
writable_sys() {
    if grep -qE '^sysfs /sys sysfs ro[,]' /proc/mounts; then
        mount -o remount,rw /sys || say "could not remount /sys read-write"
    fi
}

# Give the inner dockerd writable cgroups.
#  cgroup v2 (Docker Desktop, recent Ubuntu): move every process into a child group, then delegate every
#             controller to the children (the same dance as moby's dind script: a group with processes
#             cannot enable controllers for its children).
#  cgroup v1: a non-privileged container sees read-only controller mounts; a plain remount is refused,
#             so mount each hierarchy afresh, and put this container's own group of it (from
#             /proc/self/cgroup) where the read-only one was: the nested engine's containers then live
#             inside this container's groups, under its memory cap and pids limit.
writable_cgroups() {
    if [ -f "$CG/cgroup.controllers" ]; then
        if grep -qE " $CG cgroup2 ro[,]" "$MOUNTS"; then
            run mount -o remount,rw "$CG"
        fi
        mkdir -p "$CG/init"
        xargs -rn1 < "$CG/cgroup.procs" > "$CG/init/cgroup.procs" 2>/dev/null || :
        sed -e 's/ / +/g' -e 's/^/+/' < "$CG/cgroup.controllers" > "$CG/cgroup.subtree_control" 2>/dev/null || :
        return
    fi
    if grep -qE " $CG tmpfs ro[,]" "$MOUNTS"; then
        run mount -o remount,rw "$CG" || :
    fi
    grep -E "^cgroup $CG/[^ ]+ cgroup ro[, ]" "$MOUNTS" | while read -r _ dir _ opts _; do
        controllers=$(echo "$opts" | tr ',' '\n' \
            | grep -vE '^(ro|rw|nosuid|nodev|noexec|relatime|noatime|strictatime)$' | paste -sd, -)
        # A named hierarchy with no controller (name=systemd, maybe with xattr) must say "none".
        if [ -z "$(echo "$controllers" | tr ',' '\n' | grep -vE '^(name=.*|xattr)$')" ]; then
            controllers="none,$controllers"
        fi
        own=$(own_group "$controllers")
        if [ -n "$own" ] && [ "$own" != / ]; then
            stage="/run/labkit-cgroups/${dir##*/}"
            { run mkdir -p "$stage" && run mount -t cgroup -o "$controllers" cgroup "$stage" \
                && run umount "$dir" && run mount --bind "$stage$own" "$dir" && run umount "$stage"; } \
                || say "could not mount cgroup $dir ($controllers) at $own"
        else
            { run umount "$dir" && run mount -t cgroup -o "$controllers" cgroup "$dir"; } \
                || say "could not remount cgroup $dir ($controllers)"
        fi
    done
}

# This container's group in the cgroup v1 hierarchy of CONTROLLERS (a mount's options), from
# /proc/self/cgroup ("4:memory:/docker/ID"); nothing when the hierarchy is not listed there.
own_group() {
    first=$(echo "$1" | tr ',' '\n' | grep -vE '^(none|xattr)$' | head -n 1)
    awk -F: -v want="$first" '{ n = split($2, c, ","); for (i = 1; i <= n; i++) if (c[i] == want) { print $3; exit } }' \
        "$SELF_CGROUP"
}

# docker stop's signal, passed on to dockerd (pid $1), which shuts down cleanly: its containers, its
# networks, its swarm, and last its containerd. dockerd 20.10 then sleeps a whole second before it looks
# whether containerd has gone (libcontainerd's stopDaemon): once containerd, seen running, has gone, the
# shutdown is done, and dockerd is ended without that second (a restart takes 1.1 s less).
stop_engine() {
    kill -TERM "$1" 2>/dev/null || return 0
    (
        seen=
        while kill -0 "$1" 2>/dev/null; do
            if pgrep -P "$1" -x containerd >/dev/null; then
                seen=1
            elif [ -n "$seen" ]; then
                kill -KILL "$1" 2>/dev/null || :
                exit 0
            fi
            sleep 0.02
        done
    ) &
}

# dockerd, and dockerd again each time labkit puts a saved engine folder back in place (a rewind: see
# labkit/backends/dind_states.py). labkit creates /labkit/hold and ends dockerd and all it started; this
# loop then lets go of their mounts, says so (/labkit/down), and waits until labkit has filled the folder
# and removed hold: dockerd starts on it as after a restart of the node, without one (about a second
# less, and nothing changes on the host's networks). Without hold, the node ends with dockerd's status;
# docker stop's signal goes to dockerd, which shuts down cleanly (stop_engine).
engine() {
    rm -f /labkit/hold /labkit/down
    : > /labkit/respawns  # labkit's sign that this node's engine can be put back in place
    while :; do
        # A node restarted after a hard stop keeps its old pid files; in a new pid namespace their
        # pids may now be other processes, and dockerd would wait on a containerd that is not there.
        rm -f /var/run/docker.pid /run/containerd/containerd.pid /var/run/docker/containerd/containerd.pid
        dockerd "$@" &
        pid=$!
        stopping=
        trap 'stopping=1; stop_engine "$pid"' TERM INT
        status=0
        while :; do
            wait "$pid" && status=0 || status=$?
            kill -0 "$pid" 2>/dev/null || break  # else a signal (forwarded) ended the wait, not dockerd
        done
        trap - TERM INT
        [ -n "$stopping" ] && [ "$status" = 137 ] && status=0  # ended by stop_engine, its shutdown done
        [ -e /labkit/hold ] || exit "$status"
        # What a restart of the node leaves of the ended engine: its files, none of its mounts.
        awk '$2 ~ "^/var/lib/docker/|^/run/docker/|^/var/run/docker/" { print $2 }' /proc/self/mounts \
            | sort -r | while read -r mount; do umount -l "$mount" 2>/dev/null || :; done
        : > /labkit/down  # labkit fills the folder meanwhile (the rest takes about 0.2 s: bridges, iptables)
        # Nor its bridges (docker0, docker_gwbridge, ...) and firewall rules: a bare engine that found
        # docker_gwbridge could not choose an address for `docker swarm init`.
        ip -o link show type bridge | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' \
            | while read -r link; do ip link delete "$link" 2>/dev/null || :; done
        for table in filter nat mangle raw; do
            iptables -t "$table" -F 2>/dev/null || :
            iptables -t "$table" -X 2>/dev/null || :
        done
        for chain in INPUT FORWARD OUTPUT; do iptables -P "$chain" ACCEPT 2>/dev/null || :; done
        # Nor the neighbours it knew (as after a power-on): its first dials wait for them to answer ARP,
        # which a put-back holds until they are ready (see labkit's arp_hold).
        ip neigh flush all 2>/dev/null || :
        while [ -e /labkit/hold ]; do sleep 0.02; done
        rm -f /labkit/down
    done
}

mode=${1:-node}
[ $# -gt 0 ] && shift
case "$mode" in
    node)
        writable_sys
        writable_cgroups
        mkdir -p /labkit
        engine "$@"
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
    cgroups)
        writable_cgroups
        ;;
    seat)
        writable_sys
        writable_cgroups
        rm -f /var/run/docker.pid /run/containerd/containerd.pid /var/run/docker/containerd/containerd.pid
        # No way out of the machine: a seat needs no route beyond its own network (its images are inside).
        [ "${LABKIT_SEAT_NO_ROUTE:-}" = 1 ] && { ip route del default 2>/dev/null || :; }
        # The learner's copy of the notebooks, kept in /home/learner (a volume, where the seat has one).
        [ -d "${LABKIT_NOTEBOOKS:?}" ] || cp -r /opt/labkit/notebooks "$LABKIT_NOTEBOOKS"
        mkdir -p /run/labkit
        # The engine (labkit setup starts it) and the lab, while COMMAND starts: ready when seat.ready exists.
        { labkit setup && labkit up && touch /run/labkit/seat.ready; } > /var/log/labkit-seat.log 2>&1 &
        [ $# -gt 0 ] || set -- labkit lab --ip 0.0.0.0 --no-browser
        exec "$@"
        ;;
    *)
        exec "$mode" "$@"
        ;;
esac
