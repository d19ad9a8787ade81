#!/bin/sh
# Form the swarm for people who skip the first lab (Vagrant: LABKIT_SWARM=1).
# The leader inits and writes the join tokens into SHARED; every other node
# waits for its role's token there and joins.
#   form-swarm.sh ROLE ADDRESS LEADER_ADDRESS SHARED
set -eu
role=$1 address=$2 leader=$3 shared=$4

if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" = active ]; then
    echo "form-swarm: $(hostname) is already in a swarm"
    exit 0
fi
if [ "$address" = "$leader" ]; then
    docker swarm init --advertise-addr "$address"
    umask 077  # a join token lets a machine into the swarm: readable by its owner only
    mkdir -p "$shared"
    for r in worker manager; do
        docker swarm join-token -q "$r" > "$shared/$r.token.tmp" && mv "$shared/$r.token.tmp" "$shared/$r.token"
    done
    exit 0
fi
tries=0
until [ -s "$shared/$role.token" ]; do
    tries=$((tries + 1))
    if [ "$tries" -gt 120 ]; then
        echo "form-swarm: no $role token in $shared after 60 s; is the leader ($leader) up?" >&2
        exit 1
    fi
    sleep 0.5
done
docker swarm join --token "$(cat "$shared/$role.token")" --advertise-addr "$address" "$leader:2377"
