"""Seats for real: the labkit/seat image built here with no network, two seats side by side on this engine,
each with its own engine, lab and JupyterLab, and neither able to reach the other or the host's engine."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import docker
import pytest

from labkit import seat

pytestmark = [pytest.mark.seat, pytest.mark.engine, pytest.mark.root]
SEATS = ("ci-seat-a", "ci-seat-b")


def in_seat(name: str, *cmd: str) -> tuple[int, str]:
    """Run CMD in seat NAME's container; its exit code and output."""
    done = docker.from_env().containers.get(seat.container_name(name)).exec_run(list(cmd))
    return done.exit_code, done.output.decode(errors="replace")


@pytest.fixture(scope="module")
def seats(host) -> Iterator[dict[str, seat.Seat]]:
    seat.ensure_seat_image(host, lambda _: None)
    for name in SEATS:
        if name in {s.name for s in seat.seats(host)}:
            seat.remove_seat(host, name)
    try:
        for name in SEATS:
            seat.run_seat(host, name, None, lambda _: None)
        yield {name: seat.wait_ready(host, name) for name in SEATS}
    finally:
        for name in SEATS:
            if name in {s.name for s in seat.seats(host)}:
                seat.remove_seat(host, name)


def test_each_seat_has_its_lab_up_and_the_first_check_passes_there(seats: dict[str, seat.Seat]) -> None:
    for name in SEATS:
        code, out = in_seat(name, "labkit", "status", "--json")
        assert code == 0, out
        nodes = {n["name"]: n for n in json.loads(out)["nodes"]}
        assert sorted(nodes) == ["manager1", "worker1", "worker2"], out
        code, out = in_seat(name, "labkit", "check", "swarm-init:init")
        assert code != 0 and "docker swarm init" in out, out  # a fresh lab: the first step is still to do
        code, out = in_seat(name, "labkit", "solve", "swarm-init:init")
        assert code == 0 and "PASS swarm-init:init" in out, out
        code, out = in_seat(name, "labkit", "check", "swarm-init:init")
        assert code == 0 and "PASS swarm-init:init" in out, out


def test_jupyterlab_answers_on_127_0_0_1_with_the_token_only(seats: dict[str, seat.Seat]) -> None:
    for s in seats.values():
        with urllib.request.urlopen(f"http://127.0.0.1:{s.port}/api/contents/start.ipynb?token={s.token}") as r:
            assert json.load(r)["name"] == "start.ipynb"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{s.port}/api/contents/start.ipynb")
        assert refused.value.code == 403
        ports = docker.from_env().containers.get(seat.container_name(s.name)).attrs["NetworkSettings"]["Ports"]
        assert {b["HostIp"] for b in ports[f"{seat.PORT}/tcp"]} == {"127.0.0.1"}


def test_a_seat_reaches_neither_another_seat_nor_the_hosts_engine(host, seats: dict[str, seat.Seat]) -> None:
    a, b = SEATS
    b_address = network_of(host, b)["IPAddress"]
    a_gateway = network_of(host, a)["Gateway"]  # the host, as seat A sees it
    # B's JupyterLab: at B's own address, and at the host's side of A's network (B publishes on 127.0.0.1 only).
    for address, port in ((b_address, seat.PORT), (a_gateway, seats[b].port)):
        code, out = in_seat(a, "wget", "-q", "-T", "3", "-O-", f"http://{address}:{port}/api/status")
        assert code != 0, f"seat {a} reached {address}:{port}: {out}"
    code, out = in_seat(a, "ip", "route")
    assert "default" not in out, out  # no route out of the machine
    # A's docker command reaches A's own engine: its containers are A's lab, none of the host's.
    code, names = in_seat(a, "docker", "ps", "-a", "--format", "{{.ID}}")
    assert code == 0 and names.split(), names
    host_ids = {c.id[:12] for c in host.containers.list(all=True)}
    assert not set(names.split()) & host_ids, names


def network_of(host, name: str) -> dict:
    return next(iter(host.containers.get(seat.container_name(name)).attrs["NetworkSettings"]["Networks"].values()))


def test_seat_ls_lists_each_seat_ready_with_its_url(host, seats: dict[str, seat.Seat]) -> None:
    listed = {s.name: s for s in seat.seats(host)}
    for name in SEATS:
        assert listed[name].ready and listed[name].url == seats[name].url


def test_seat_rm_leaves_no_container_network_or_volume(host, seats: dict[str, seat.Seat]) -> None:
    name = SEATS[1]
    volumes = [m["Name"] for m in host.containers.get(seat.container_name(name)).attrs["Mounts"]
               if m["Type"] == "volume"]
    assert volumes  # the seat's engine keeps its images and lab in a volume of its own
    seat.remove_seat(host, name)
    assert name not in {s.name for s in seat.seats(host)}
    assert not host.networks.list(filters={"label": f"{seat.LABEL_SEAT}={name}"})
    left = {v.name for v in host.volumes.list()}
    assert not set(volumes) & left
