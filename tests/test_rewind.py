"""Rewinds for real: a second `labkit reset` to a step puts the nodes' saved engines back, and the lab is
as a replay leaves it (the same nodes, leader, services and running tasks, the same progress); Swarm
still heals a killed task afterwards; a state that does not come back as saved is replayed from then on;
`labkit down` keeps the saved states."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

import labkit
from labkit import rewind
from labkit.backends.arp_hold import ArpHold
from labkit.backends.dind_states import CPU_SHARES, LABEL_STATE, META, DindStates
from labkit.fields import UNLOCK_KEYS
from labkit.labs import HOST, Command, all_steps, find
from labkit.progress import Progress
from labkit.runner import apply_solution, course, quorum_after_stop, replay_command, reset, run_check, starting_lab
from labkit.swarm import task_containers
from labkit.topology import LABEL_NODE, pick_subnet
from tests.conftest import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.destructive, pytest.mark.root]
LABS = course()
# After init, joins and a service created, its task running. A step no other test resets to or saves (the
# walk-through saves each lab's start): a state marked unfit here is unfit for every lab on this machine.
TARGET = "first-service:find"
BEFORE = "first-service:create"


AUTOLOCKED = "autolock:rotate"  # autolock on, manager1 unlocked by the learner (the walk-through saves it too)
LOCKED = "autolock:unlock-manager"  # manager1 restarted with autolock on: locked; pinger on the workers runs on
FRESH_LAB_START = "secrets:create"  # a lab on a fresh swarm of its own: its start, and the step after it
FRESH_LAB_NEXT = "secrets:grant"
WORKERS = ("worker1", "worker2")
WGET = ["wget", "-q", "-T", "2", "-O", "/dev/null", "http://probe-web/"]  # probe-client asks probe-web
GOSSIP_TOGETHER = 0.2  # s between the workers' gossip joins in a put-back, at most
OWN_STEPS = {TARGET, FRESH_LAB_START, FRESH_LAB_NEXT}  # the walk-through saves every other step's state


def replayed_from_earlier(said: list[str]) -> bool:
    """Whether a reset replayed: from a fresh cluster, or from a state saved at an earlier step."""
    return any("Fresh cluster" in line or "then replaying from there" in line for line in said)


def step(ref: str) -> labkit.Step:
    found = find(ref, LABS)[1]
    assert found is not None
    return found


def full_key(lab: labkit.Cluster, ref: str) -> str:
    target = step(ref)
    return DindStates(lab.backend).full_key(rewind.state_key(starting_lab(LABS, target), target))  # type: ignore[arg-type]


def forget(host, lab: labkit.Cluster, ref: str) -> None:
    """No saved state for REF (one left by an earlier run on this machine would make the first reset a rewind)."""
    for volume in host.volumes.list(filters={"label": f"{LABEL_STATE}={full_key(lab, ref)}"}):
        volume.remove(force=True)


def forget_verdict(host, lab: labkit.Cluster, ref: str) -> None:
    """No word left on this machine that REF's state is unfit (an earlier run's put-back, slow under load,
    would make every reset there replay for a day); a fit state stays, as another test may be putting it back."""
    for volume in host.volumes.list(filters={"label": f"{LABEL_STATE}={full_key(lab, ref)}"}):
        meta = Path(volume.attrs["Mountpoint"]) / META
        if meta.is_file() and "unfit" in json.loads(meta.read_text()):
            volume.remove(force=True)


def saved_engine(host, lab: labkit.Cluster, ref: str, node: str) -> Path:
    """The copy of NODE's engine folder in the state saved at REF."""
    volumes = host.volumes.list(filters={"label": [f"{LABEL_STATE}={full_key(lab, ref)}", f"{LABEL_NODE}={node}"]})
    assert len(volumes) == 1
    return Path(volumes[0].attrs["Mountpoint"])


def snapshot_interval(lab: labkit.Cluster) -> int:
    """Swarm's Raft setting as a learner reads it (`docker info`: Snapshot Interval)."""
    return int(lab["manager1"].docker.info()["Swarm"]["Cluster"]["Spec"]["Raft"]["SnapshotInterval"])


def meta_file(host, lab: labkit.Cluster, ref: str) -> Path:
    volumes = host.volumes.list(filters={"label": [f"{LABEL_STATE}={full_key(lab, ref)}", "labkit.kind=state"]})
    assert len(volumes) == 1
    return Path(volumes[0].attrs["Mountpoint"]) / META


@pytest.fixture(scope="module")
def lab(own_lab: labkit.Cluster, host) -> labkit.Cluster:
    forget(host, own_lab, TARGET)
    return own_lab


def test_a_second_reset_puts_the_saved_state_back_as_the_replay_left_it(lab: labkit.Cluster, host) -> None:
    old = host.volumes.create("labkit-state-ci-older-labkit", labels={"labkit.cache": "state", LABEL_STATE: "older"})
    said: list[str] = []
    reset(lab, LABS, step(TARGET), said.append)
    assert replayed_from_earlier(said) and any("Saving" in line for line in said)
    # Saved with a Raft snapshot (put back, its manager elects itself sooner), Swarm's setting as it was.
    assert list((saved_engine(host, lab, TARGET, "manager1") / "swarm/raft/snap-v3-encrypted").glob("*.snap"))
    assert snapshot_interval(lab) == 10000
    assert old.name not in {v.name for v in host.volumes.list()}  # an older labkit's state: pruned on a save
    replayed = rewind.fingerprint(lab)
    addresses = {n.name: n.address for n in lab.nodes}
    progress = Progress(lab.lab)
    earlier = [s.ref for s in all_steps(LABS)[: [s.ref for s in all_steps(LABS)].index(TARGET)]]
    assert all(progress.passed(ref) for ref in earlier)

    manager = lab["manager1"]  # the learner breaks things: the service goes, a worker leaves
    assert manager.run("docker service rm pinger").ok
    assert lab["worker2"].run("docker swarm leave --force").ok
    progress.forget(earlier)

    said.clear()
    nodes = host.containers.list(filters={"label": [f"labkit.lab={lab.lab}", "labkit.kind=node"]})
    started = {c.name: c.attrs["State"]["StartedAt"] for c in nodes}
    assert len(started) == 3
    since = time.time()
    reset(lab, LABS, step(TARGET), said.append)
    assert any("Putting back" in line for line in said) and not any("Fresh cluster" in line for line in said)
    for name, at in started.items():  # each engine was put back in place: its node kept running (a second faster)
        assert host.containers.get(name).attrs["State"]["StartedAt"] == at, name
    assert rewind.fingerprint(lab) == replayed  # the same nodes, roles, leader, node states and tasks
    assert snapshot_interval(lab) == 10000
    assert {n.name: n.address for n in lab.nodes} == addresses
    assert all(progress.passed(ref) for ref in earlier)
    assert not run_check(lab, step(TARGET), wait=False).passed  # the step itself is still to do
    assert run_check(lab, step(BEFORE), wait=False, answer=progress.answer(BEFORE)).passed
    # The workers loaded while their manager got ready, their dials held meanwhile (arp_hold): they joined
    # the gossip all the same, and every node answers and asks for addresses as it did before
    logs = {c.name: c.logs(since=int(since)).decode(errors="replace") for c in nodes}
    assert not [name for name, log in logs.items() if "Error in joining gossip" in log]
    # Its lone manager, no task on Swarm's networks, kept its list (itself: see waits_for_own_manager), and its
    # agent started a session: with itself on the swarm port, or through its local socket ("{ }") when that
    # was there first (a busy machine: its engine loaded its containers after its manager was ready)
    manager_log = logs[lab.backend.names.container("manager1")]
    session = re.findall(r"selected by agent for new session: (\{[^}]*\})", manager_log)
    assert session and re.fullmatch(r"\{ \}|\{\w+ [\d.]+:2377\}", session[0]), session
    assert {name: arp_settings(host, lab, name) for name in ("manager1", *WORKERS)} == \
        {name: {"arp_ignore": "0", "retrans_time_ms": "1000", "mcast_solicit": "3"} for name in ("manager1", *WORKERS)}


def node_pid(host, lab: labkit.Cluster, node: str) -> int:
    return int(host.containers.get(lab.backend.names.container(node)).attrs["State"]["Pid"])


def arp_settings(host, lab: labkit.Cluster, node: str) -> dict[str, str]:
    """How NODE answers ARP and asks for its neighbours' addresses on the lab network (eth0)."""
    files = {"arp_ignore": "conf/eth0/arp_ignore", "retrans_time_ms": "neigh/eth0/retrans_time_ms",
             "mcast_solicit": "neigh/eth0/mcast_solicit"}
    said = subprocess.run(["nsenter", "--target", str(node_pid(host, lab, node)), "--net", "cat",
                           *(f"/proc/sys/net/ipv4/{f}" for f in files.values())],
                          capture_output=True, text=True, check=True).stdout.split()
    return dict(zip(files, said, strict=True))


def test_a_held_dial_waits_for_its_peer_and_goes_through_once_it_is_heard(lab: labkit.Cluster, host) -> None:
    """A put-back starts the workers while their manager gets ready, their dials held meanwhile (a worker
    whose session starts before its manager's gossip listens joins no gossip for a minute; a refused dial
    waits out a second before gRPC tries again): the manager answers no ARP, and the worker's connect
    waits, neither refused nor through, until labkit has the manager heard; then it goes within moments.
    What a hold leaves (labkit ended in the middle of a put-back) the next put-back undoes."""
    reset(lab, LABS, step(TARGET), lambda _: None)
    left = ArpHold()  # as a labkit ended in the middle would leave it
    left.ask_often(node_pid(host, lab, "worker1"), lab["worker1"].address)
    left.deafen({node_pid(host, lab, "manager1"): lab["manager1"].address})
    said: list[str] = []
    reset(lab, LABS, step(TARGET), said.append)
    assert any("Putting back" in line for line in said)
    for name in ("manager1", "worker1"):
        assert arp_settings(host, lab, name) == {"arp_ignore": "0", "retrans_time_ms": "1000", "mcast_solicit": "3"}
    worker, manager = node_pid(host, lab, "worker1"), node_pid(host, lab, "manager1")
    dial = ["nsenter", "--target", str(worker), "--net", sys.executable, "-c",
            "import socket, time; t = time.monotonic(); "
            f"socket.create_connection(({lab['manager1'].address!r}, 2377), 20).close(); "
            "print(time.monotonic() - t)"]
    hold = ArpHold()
    try:
        hold.ask_often(worker, lab["worker1"].address)
        # The live swarm's own traffic can teach worker1 manager1's address: Linux learns a requester's
        # address from its ARP request, and manager1 asks for worker1's now and then (a CI rehearsal's dial
        # went through at once). Once in three tries, the dial must be held.
        for _ in range(3):
            hold.deafen({manager: lab["manager1"].address})
            assert arp_settings(host, lab, "manager1")["arp_ignore"] == "8"
            subprocess.run(["nsenter", "--target", str(worker), "--net", "ip", "neigh", "flush", "all"], check=True)
            dialling = subprocess.Popen(dial, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(1.5)
            if dialling.poll() is None:  # held: not refused, not through
                break
            hold.hear([manager])
        assert dialling.poll() is None, dialling.communicate()
        heard = time.monotonic()
        hold.hear([manager])
        out, err = dialling.communicate(timeout=20)
        assert dialling.returncode == 0, err
        assert time.monotonic() - heard < 1.0  # within moments, not a second's retry
        assert float(out) > 1.0  # it waited for the manager to be heard (its interpreter took a moment to start)
    finally:
        hold.end()
    assert arp_settings(host, lab, "manager1")["arp_ignore"] == "0"
    assert arp_settings(host, lab, "worker1") == {"arp_ignore": "0", "retrans_time_ms": "1000", "mcast_solicit": "3"}


def test_after_a_rewind_swarm_heals_a_killed_task_and_its_engine_does_not(lab: labkit.Cluster) -> None:
    before = rewind.fingerprint(lab)["tasks"]
    node = next(n for n in lab.nodes if task_containers(n.docker))
    container = task_containers(node.docker)[0]
    assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] in ("", "no")  # given back after the start
    container.kill()
    wait_until(lambda: len(rewind.fingerprint(lab)["tasks"]) == len(before)
               and set(rewind.fingerprint(lab)["tasks"]) != set(before), 30, "Swarm to replace the killed task")
    container.reload()
    assert container.status == "exited"  # its engine left it dead: Swarm made a new task


def gossip_joined(log: str) -> float | None:
    """When an engine last joined the nodes' gossip, from its log (None if it did not)."""
    stamps = re.findall(r'time="([^"]+)" level=info msg="New memberlist node', log)
    return datetime.fromisoformat(stamps[-1][:26]).timestamp() if stamps else None


def worker1_client(lab: labkit.Cluster):
    """probe-client's running container on worker1, if it has one yet."""
    return next(iter(lab["worker1"].docker.containers.list(filters={"name": "probe-client"})), None)


def test_after_a_put_back_a_service_reaches_another_on_another_node_by_name(lab: labkit.Cluster, host) -> None:
    """Service discovery rides on the nodes' gossip, which a worker joins as its engine starts and retries
    only a minute later: CI put-backs had started the workers before their manager's gossip listened, and
    the networks lab's client could not reach web by name for that minute (about one put-back in three
    of this state, every time in the networks lab's): each put-back here must join at once."""
    reset(lab, LABS, step(TARGET), lambda _: None)
    manager = lab["manager1"]
    for command in ("docker network create --driver overlay probe-net",
                    "docker service create --detach --name probe-web --network probe-net --endpoint-mode dnsrr "
                    "--constraint node.hostname==worker2 nginx:1.25",
                    "docker service create --detach --name probe-client --network probe-net "
                    "--constraint node.hostname==worker1 --stop-signal SIGKILL alpine sleep 1d"):
        assert manager.run(command).ok, command
    wait_until(lambda: len(rewind.fingerprint(lab)["tasks"]) == 3, 60, "the probe's tasks to run")
    key = "ci-probe-gossip"
    assert rewind.save(lab, key, [], 60.0, lambda _: None)
    saved = rewind.fingerprint(lab)["tasks"]
    origin = starting_lab(LABS, step(TARGET))
    try:
        for _ in range(3):
            since = time.time()
            assert rewind.restore(lab, key, origin, lambda _: None) is not None
            # The same tasks run again (Swarm's agent starts them on their overlay network), none failed:
            # an engine's own restart of their containers fails on a network not made yet, and Swarm
            # replaces each task after its 5 s restart delay, a failed task in its history.
            probes = manager.docker.api.tasks(filters={"service": ["probe-web", "probe-client"]})
            history = [(t["ID"][:10], t["DesiredState"], t["Status"]["State"], t["Status"].get("Err")) for t in probes]
            assert rewind.fingerprint(lab)["tasks"] == saved and len(saved) == 3, history  # why one was replaced
            assert [t["Status"]["State"] for t in probes] == ["running", "running"], probes
            nodes = host.containers.list(filters={"label": [f"labkit.lab={lab.lab}", "labkit.kind=node"]})
            logs = {c.name: c.logs(since=since).decode(errors="replace") for c in nodes if c.name.endswith(WORKERS)}
            assert len(logs) == 2 and not [n for n, log in logs.items() if "Error in joining gossip" in log]
            # The managers were favoured for the machine's CPU while the workers joined (see Favoured): no longer
            shares = {c.name: c.attrs["HostConfig"]["CpuShares"] for c in nodes}
            assert set(shares.values()) <= {0, CPU_SHARES}, shares
            # The workers join the gossip together (their leader frozen until both have dialled it): one that
            # joins later asks the other for probe-net's entries before the other knows of it, and its task
            # waits 30 s for the answer (Docker 20.10's networkdb). Apart, they joined 0.1 to 0.6 s apart,
            # and 9 put-backs in 12 stalled so; together, within 0.06 s, and none of 12 did.
            joined = [gossip_joined(log) for log in logs.values()]
            assert None not in joined and abs(joined[0] - joined[1]) < GOSSIP_TOGETHER, joined
            # A put-back returns after 10 s even if an engine stalls making the overlay network anyway: its
            # container may come late.
            wait_until(lambda: worker1_client(lab) is not None, 45, "probe-client's container on worker1")
            client = worker1_client(lab)
            wait_until(lambda c=client: c.exec_run(WGET)[0] == 0, 30,
                       "probe-client to reach probe-web by name (a failed gossip join retries after 60 s)")
    finally:
        for volume in host.volumes.list(filters={"label": f"{LABEL_STATE}={DindStates(lab.backend).full_key(key)}"}):
            volume.remove(force=True)


def test_a_swarm_that_changes_while_it_is_saved_is_not_kept(lab: labkit.Cluster, host) -> None:
    """The fingerprint is taken before the nodes are copied: a swarm that moves on meanwhile (a node that
    a new leader has not heard from turns down on its own) would be saved with copies that hold another
    state than its fingerprint says, and its put-back never looks as saved (a CI walk: 'unknown' saved,
    'down' put back). It is saved again, once, as it now is (see test_rewind_units); here worker2 is
    drained as the copies are made, and made active again as they are made again: nothing is kept, and
    it says so. The same save with the swarm left alone is kept."""
    reset(lab, LABS, step(TARGET), lambda _: None)
    manager = lab["manager1"]
    key = "ci-probe-moving"
    said: list[str] = []

    def change_as_it_saves(line: str) -> None:
        said.append(line)
        if line.startswith("Saving this state"):
            saves = sum(seen.startswith("Saving this state") for seen in said)
            availability = "drain" if saves == 1 else "active"
            assert manager.run(f"docker node update --availability {availability} worker2").ok

    try:
        assert not rewind.save(lab, key, [], 60.0, change_as_it_saves)
        assert lab.backend.saved_state(key) is None
        assert host.volumes.list(filters={"label": f"{LABEL_STATE}={DindStates(lab.backend).full_key(key)}"}) == []
        assert any(line.startswith(rewind.CHANGED_WHILE_SAVED) and "worker2" in line for line in said), said
        assert manager.run("docker node update --availability drain worker2").ok
        # left alone: pinger's task, if the drain moves it, stopped and started elsewhere (under CI's load
        # that took longer than the 10 s a save waits for it, and the save rightly kept nothing)
        wait_until(lambda: rewind._settled(lab), 60, "the drain's task moves to end")
        assert rewind.save(lab, key, [], 60.0, lambda _: None)
        assert lab.backend.saved_state(key)["fingerprint"]["seen"]["worker2"] == ["ready", "drain"]
    finally:
        manager.run("docker node update --availability active worker2")
        for volume in host.volumes.list(filters={"label": f"{LABEL_STATE}={DindStates(lab.backend).full_key(key)}"}):
            volume.remove(force=True)


def test_several_managers_come_back_with_their_saved_leader_elected_at_once(lab: labkit.Cluster, host) -> None:
    """Put back, managers start as Raft followers, and Swarm would elect a leader only 10 to 20 s later, and
    maybe another one: labkit has the saved leader campaign at once (raft_leader). Three managers, put back
    three times: manager1 leads each time, elected by labkit's message (its engine's log says so)."""
    reset(lab, LABS, step(TARGET), lambda _: None)
    manager = lab["manager1"]
    for worker in WORKERS:
        assert manager.run(f"docker node promote {worker}").ok
    wait_until(lambda: [lab[w].status().swarm for w in WORKERS] == ["manager", "manager"], 60, "two more managers")
    key = "ci-probe-leader"
    assert rewind.save(lab, key, [], 60.0, lambda _: None)
    origin = starting_lab(LABS, step(TARGET))
    node = next(c for c in host.containers.list(filters={"label": [f"labkit.lab={lab.lab}", "labkit.kind=node"]})
                if c.name.endswith("manager1"))
    try:
        for _ in range(3):
            since = time.time()
            assert rewind.restore(lab, key, origin, lambda _: None) is not None
            roles = rewind.fingerprint(lab)["nodes"]
            assert roles == {"manager1": "leader", "worker1": "manager", "worker2": "manager"}
            assert b"received MsgTimeoutNow" in node.logs(since=since)
    finally:
        for volume in host.volumes.list(filters={"label": f"{LABEL_STATE}={DindStates(lab.backend).full_key(key)}"}):
            volume.remove(force=True)


def test_a_replay_that_powers_the_leader_off_has_the_next_one_elected_at_once(lab: labkit.Cluster, host) -> None:
    """A reset's replay of `labkit node stop` on the leader (the managers lab's leader-down, quorum-lost)
    has a running manager campaign at once (raft_leader), where Swarm's election timer would wait 10 to
    20 s (ElectionTick 10, a tick a second): a new leader within 5 s. The new leader powered off too, the
    manager left alone campaigns at once (its engine's log says so), and so finds sooner that it has no
    quorum (Swarm says so 10 ticks without a leader later)."""
    reset(lab, LABS, step("managers:leader-down"), lambda _: None)
    assert lab["manager1"].status().swarm == "leader"
    assert quorum_after_stop(lab, "manager1") is True
    said: list[str] = []
    replay_command(lab, step("managers:leader-down"), Command(HOST, "labkit node stop manager1"), said.append)
    assert "manager2 campaigns at once (a replay does not wait for Swarm's election timer)" in said, said
    wait_until(lambda: lab["manager2"].status().swarm == "leader", 5, "manager2 to lead")
    since = time.time()
    replay_command(lab, step("managers:quorum-lost"), Command(HOST, "labkit node stop manager2"), said.append)
    assert said[-1].startswith("manager3 campaigns at once"), said
    node = next(c for c in host.containers.list(filters={"label": [f"labkit.lab={lab.lab}", "labkit.kind=node"]})
                if c.name.endswith("manager3"))
    assert b"received MsgTimeoutNow" in node.logs(since=since)


def test_a_replay_whose_stop_leaves_no_quorum_elects_that_manager_first(lab: labkit.Cluster, host) -> None:
    """quorum-lost's `labkit node stop manager2` with manager3 leading: manager3 would keep leading until it
    misses a quorum (10 to 20 s), then hold every question 10 s more. The replay ends in the same state
    (no leader at all) with manager2 elected first: its stop is the leader's, and manager3, asked to
    campaign at once, finds it has no quorum; the step's check passes, its manager holding the question."""
    reset(lab, LABS, step("managers:quorum-lost"), lambda _: None)
    if lab["manager3"].status().swarm != "leader":
        assert lab.backend.elect_now(lambda _: None, "manager3")
        wait_until(lambda: lab["manager3"].status().swarm == "leader", 5, "manager3 to lead")
    assert quorum_after_stop(lab, "manager2") is False
    said: list[str] = []
    since = time.time()
    replay_command(lab, step("managers:quorum-lost"), Command(HOST, "labkit node stop manager2"), said.append)
    assert said[0] == ("manager2 campaigns at once: its stop will leave the others no quorum, which they then find "
                       "at once"), said
    assert said[-1].startswith("manager3 campaigns at once"), said
    assert lab["manager2"].health() != "running"
    assert quorum_after_stop(lab, "manager3") is None  # no leader is left to say who the managers are
    node = next(c for c in host.containers.list(filters={"label": [f"labkit.lab={lab.lab}", "labkit.kind=node"]})
                if c.name.endswith("manager3"))
    assert b"received MsgTimeoutNow" in node.logs(since=since)
    result = run_check(lab, step("managers:quorum-lost"), answer="yes")
    assert result.passed, result


def test_what_a_step_wrote_in_a_nodes_home_comes_back_with_the_state(lab: labkit.Cluster, host) -> None:
    """Steps keep files in a node's /root (the trust lab's old token, the stacks lab's app folder): a
    put-back brings back those of the state, and only those, whether the nodes stayed or were made again
    (a CI walk came to the trust lab from the managers lab's five nodes: the saved token was gone, and
    the state was marked unfit)."""
    reset(lab, LABS, step(TARGET), lambda _: None)
    assert lab["worker2"].run("mkdir -p /root/app && echo saved > /root/app/note").ok
    key = "ci-probe-home"
    assert rewind.save(lab, key, [], 60.0, lambda _: None)
    origin = starting_lab(LABS, step(TARGET))
    try:
        for made_again in (False, True):
            assert lab["worker2"].run("echo later > /root/app/note && echo later > /root/later").ok
            if made_again:
                lab.backend.down(lambda _: None)
            assert rewind.restore(lab, key, origin, lambda _: None) is not None, made_again
            assert lab["worker2"].run("cat /root/app/note").stdout.strip() == "saved", made_again
            assert not lab["worker2"].run("test -e /root/later").ok, made_again
    finally:
        for volume in host.volumes.list(filters={"label": f"{LABEL_STATE}={DindStates(lab.backend).full_key(key)}"}):
            volume.remove(force=True)


def test_a_state_saved_on_another_subnet_is_put_back_there_once_it_is_free(lab: labkit.Cluster, host) -> None:
    """A lab made afresh takes the first free subnet, which may not be the one it had (another lab took it
    meanwhile): a CI walk-through's lab moved, and every reset to a state saved before replayed."""
    reset(lab, LABS, step(TARGET), lambda _: None)
    backend = lab.backend
    saved_on = backend._plan().subnet  # type: ignore[attr-defined]
    key, quick = "ci-probe-subnet", "ci-probe-subnet-quick"
    assert rewind.save(lab, key, [], 60.0, lambda _: None)
    assert rewind.save(lab, quick, [], 5.0, lambda _: None)  # a replay reaches it in 5 s
    origin = starting_lab(LABS, step(TARGET))
    try:
        backend.down(lambda _: None)
        elsewhere = pick_subnet([*backend._subnets_in_use(), saved_on])  # type: ignore[attr-defined]
        backend.make(origin.topology, lambda _: None, elsewhere)  # type: ignore[attr-defined]
        backend.up(origin.topology, lambda _: None)
        assert backend._plan().subnet == elsewhere  # type: ignore[attr-defined]
        # The lab would move for the long replay's state, not for the quick one's: that one is none it can
        # take, so a first reset starts from an earlier state saved here rather than afresh
        assert rewind.fit(lab, key) and not rewind.fit(lab, quick)
        said: list[str] = []
        assert rewind.restore(lab, key, origin, said.append) is not None, said
        assert backend._plan().subnet == saved_on  # type: ignore[attr-defined]
        assert run_check(lab, step(BEFORE), wait=False, answer=Progress(lab.lab).answer(BEFORE)).passed
        assert rewind.fit(lab, quick)  # back on its subnet
    finally:
        for probe in (key, quick):
            full = DindStates(lab.backend).full_key(probe)
            for volume in host.volumes.list(filters={"label": f"{LABEL_STATE}={full}"}):
                volume.remove(force=True)


def test_a_lab_made_afresh_keeps_its_subnet_while_it_is_free(lab: labkit.Cluster) -> None:
    """A reset to a fresh cluster gives the nodes the addresses they had (a learner's notes stay right),
    and the states saved on them stay usable: not the first free subnet, which another lab left."""
    backend = lab.backend
    topology = starting_lab(LABS, step(TARGET)).topology
    home = backend._plan().subnet  # type: ignore[attr-defined]
    backend.down(lambda _: None)
    first = pick_subnet(backend._subnets_in_use())  # type: ignore[attr-defined]
    elsewhere = pick_subnet([*backend._subnets_in_use(), first])  # type: ignore[attr-defined]
    try:
        backend.make(topology, lambda _: None, elsewhere)  # type: ignore[attr-defined]
        backend.up(topology, lambda _: None)
        addresses = {n.name: n.address for n in lab.nodes}
        backend.down(lambda _: None)
        backend.up(topology, lambda _: None)
        assert backend._plan().subnet == elsewhere  # type: ignore[attr-defined]
        assert {n.name: n.address for n in lab.nodes} == addresses
    finally:  # back where this module's states are saved: a lab elsewhere replays the quick ones there
        backend.down(lambda _: None)
        backend.make(topology, lambda _: None, home)  # type: ignore[attr-defined]
        backend.up(topology, lambda _: None)


def test_a_state_that_does_not_come_back_as_saved_is_replayed_from_then_on(lab: labkit.Cluster, host,
                                                                           monkeypatch) -> None:
    monkeypatch.setattr(rewind, "SETTLE", 3.0)
    path = meta_file(host, lab, TARGET)
    data = json.loads(path.read_text())
    data["meta"]["fingerprint"]["nodes"]["manager1"] = "worker"  # as if another leader had been elected
    path.write_text(json.dumps(data))
    said: list[str] = []
    reset(lab, LABS, step(TARGET), said.append)
    assert any("did not come back" in line for line in said) and replayed_from_earlier(said)
    assert run_check(lab, step(BEFORE), wait=False, answer=Progress(lab.lab).answer(BEFORE)).passed
    assert "unfit" in json.loads(meta_file(host, lab, TARGET).read_text())
    said.clear()
    reset(lab, LABS, step(TARGET), said.append)  # known unfit: replayed at once, nothing saved
    assert replayed_from_earlier(said) and not any("Saving" in line for line in said)
    assert not any("did not come back" in line for line in said)


def test_a_first_reset_replays_from_the_nearest_state_saved_before_it(lab: labkit.Cluster, host) -> None:
    """A first reset to a step puts back the state saved nearest before it (here the lab's start) and
    replays only the steps between; then that state is saved as well."""
    start, target = step(FRESH_LAB_START), step(FRESH_LAB_NEXT)
    forget_verdict(host, lab, FRESH_LAB_START)
    reset(lab, LABS, start, lambda _: None)  # saved (or put back, when an earlier run saved it)
    forget(host, lab, FRESH_LAB_NEXT)
    said: list[str] = []
    reset(lab, LABS, target, said.append)
    assert any(f"saved at the start of {FRESH_LAB_START}, then replaying" in line for line in said), said
    assert not any("Fresh cluster" in line for line in said) and any("Saving" in line for line in said)
    progress = Progress(lab.lab)
    assert progress.passed(FRESH_LAB_START)
    assert run_check(lab, start, wait=False).passed and not run_check(lab, target, wait=False).passed
    said.clear()
    reset(lab, LABS, target, said.append)  # now its own state comes back
    assert any("Putting back" in line for line in said) and not replayed_from_earlier(said)
    assert progress.passed(FRESH_LAB_START) and not run_check(lab, target, wait=False).passed


def test_an_autolocked_swarm_comes_back_unlocked_with_the_key_labkit_kept(lab: labkit.Cluster) -> None:
    """Put back, an autolocked manager starts locked, as after any restart: labkit unlocks it with the key
    saved with the state (the learner had unlocked it), and the key it keeps for `{unlock_key}` opens it."""
    target = step(AUTOLOCKED)
    reset(lab, LABS, target, lambda _: None)  # replayed and saved, or put back
    said: list[str] = []
    reset(lab, LABS, target, said.append)
    assert any("Putting back" in line for line in said) and not replayed_from_earlier(said), said
    manager = lab["manager1"]
    assert manager.status().swarm == "leader"
    assert manager.docker.api.inspect_swarm()["Spec"]["EncryptionConfig"]["AutoLockManagers"]
    assert manager.docker.api.get_unlock_key()["UnlockKey"] == Progress(lab.lab).kept(UNLOCK_KEYS)[-1]
    earlier = all_steps(LABS)[all_steps(LABS).index(target) - 1]
    assert run_check(lab, earlier, wait=False).passed and not run_check(lab, target, wait=False).passed


def test_a_locked_manager_comes_back_locked_its_workers_running_their_tasks(lab: labkit.Cluster) -> None:
    """Put back, the manager is unlocked for a moment (workers whose engines start while no manager leads
    stay pending, their tasks stopped), then restarted once its workers are active: locked, as the
    learner's restart left it, while the workers run pinger on; the learner's unlock then works."""
    target = step(LOCKED)
    reset(lab, LABS, target, lambda _: None)  # replayed and saved, or put back
    said: list[str] = []
    reset(lab, LABS, target, said.append)
    assert any("Putting back" in line for line in said) and not replayed_from_earlier(said), said
    assert lab["manager1"].docker.info()["Swarm"]["LocalNodeState"] == "locked"
    for name in WORKERS:
        assert lab[name].docker.info()["Swarm"]["LocalNodeState"] == "active", name
        assert len(task_containers(lab[name].docker, "pinger")) == 1, name
    earlier = all_steps(LABS)[all_steps(LABS).index(target) - 1]
    assert run_check(lab, earlier, wait=False).passed and not run_check(lab, target, wait=False).passed
    assert apply_solution(lab, target, lambda _: None).passed  # `docker swarm unlock` with the key labkit keeps


def test_down_keeps_the_saved_states(lab: labkit.Cluster, host) -> None:
    lab.backend.down(lambda _: None)
    assert host.volumes.list(filters={"label": f"{LABEL_STATE}={full_key(lab, TARGET)}"})
    forget(host, lab, TARGET)
