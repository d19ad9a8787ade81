"""The nginx tags the later labs use (rolling updates, health checks, load balancing), run for real.

Each tag is pulled through the lab registry as a learner types it (`nginx:1.25`) on one node of the
shared bare-engine lab, and fetched from another container with wget: the page and the Server header
name the version, /whoami names the container that answered, /health is 200 (500 in 1.26-broken), and
the `--health-cmd` the lab uses marks 1.25 healthy and 1.26-broken unhealthy. No swarm is formed here,
and every container started is removed.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator

import pytest

import labkit
from tests.conftest import wait_until

pytestmark = pytest.mark.cluster

NODE = "worker1"
TAGS = {"latest": "nginx/1.22.1", "1.24": "nginx/1.24", "1.25": "nginx/1.25", "1.26-broken": "nginx/1.26"}
HEALTH_CMD = "wget -q -O /dev/null http://127.0.0.1/health"  # what the health-check lab types


def _name(tag: str) -> str:
    return "imgtest-nginx-" + tag.replace(".", "-")


@pytest.fixture(scope="module")
def servers(lab: labkit.Cluster) -> Iterator[dict[str, tuple[str, str]]]:
    """tag -> (container id, address) of an nginx:TAG container on NODE, removed at the end."""
    node = lab[NODE]
    started: dict[str, tuple[str, str]] = {}
    try:
        for tag in TAGS:
            run = node.run(f"docker run -d --name {_name(tag)} nginx:{tag}", timeout=120)
            assert run.ok, f"nginx:{tag} did not start from the lab registry: {run.stderr}"
            cid = run.stdout.strip()
            address = node.run(f"docker inspect -f '{{{{.NetworkSettings.IPAddress}}}}' {cid}").stdout.strip()
            assert address, f"nginx:{tag} has no address"
            started[tag] = (cid, address)
        yield started
    finally:
        node.run(f"docker rm -f {' '.join(_name(t) for t in TAGS)}")


def fetch(lab: labkit.Cluster, url: str) -> labkit.RunResult:
    """GET URL from another container on NODE (GNU wget: -S prints the response headers on stderr)."""
    cmd = f"docker run --rm alpine wget -S -T 5 -O- {shlex.quote(url)}"

    def answered() -> labkit.RunResult | None:
        result = lab[NODE].run(cmd)
        return result if "HTTP/1.1" in result.stderr else None

    return wait_until(answered, 30, f"an answer from {url}")


def status_line(result: labkit.RunResult) -> str:
    return next(line.strip() for line in result.stderr.splitlines() if line.strip().startswith("HTTP/1.1"))


def header(result: labkit.RunResult, name: str) -> str:
    for line in result.stderr.splitlines():
        key, _, value = line.strip().partition(":")
        if key.lower() == name.lower():
            return value.strip()
    raise AssertionError(f"no {name} header in:\n{result.stderr}")


@pytest.mark.parametrize("tag", TAGS)
def test_the_page_and_server_header_name_the_version(lab: labkit.Cluster, servers, tag: str) -> None:
    page = fetch(lab, f"http://{servers[tag][1]}/")
    assert status_line(page) == "HTTP/1.1 200 OK"
    assert "Welcome to nginx!" in page.stdout
    assert header(page, "Server") == TAGS[tag]
    if tag != "latest":
        assert TAGS[tag].replace("/", " ") in page.stdout  # "nginx 1.25"


@pytest.mark.parametrize("tag", TAGS)
def test_whoami_names_the_container_that_answered(lab: labkit.Cluster, servers, tag: str) -> None:
    cid, address = servers[tag]
    answer = fetch(lab, f"http://{address}/whoami")
    assert status_line(answer) == "HTTP/1.1 200 OK"
    assert answer.stdout == f"{cid[:12]} {TAGS[tag]}\n"


@pytest.mark.parametrize("tag", TAGS)
def test_health_is_ok_except_in_the_broken_tag(lab: labkit.Cluster, servers, tag: str) -> None:
    answer = fetch(lab, f"http://{servers[tag][1]}/health")
    if tag == "1.26-broken":
        assert status_line(answer).startswith("HTTP/1.1 500")
    else:
        assert status_line(answer) == "HTTP/1.1 200 OK"
        assert answer.stdout == "ok\n"


@pytest.mark.parametrize(("tag", "expected"), [("1.25", "healthy"), ("1.26-broken", "unhealthy")])
def test_the_labs_health_cmd_runs_in_the_image(lab: labkit.Cluster, servers, tag: str, expected: str) -> None:
    """The image's own wget (busybox) runs the health check the lab types; no name lookup is involved."""
    node = lab[NODE]
    name = _name(tag) + "-hc"
    try:
        run = node.run(
            f"docker run -d --name {name} --health-cmd {shlex.quote(HEALTH_CMD)} "
            f"--health-interval 1s --health-timeout 3s --health-retries 2 nginx:{tag}"
        )
        assert run.ok, run.stderr
        inspect = f"docker inspect -f '{{{{.State.Health.Status}}}}' {name}"

        def decided() -> str | None:
            status = node.run(inspect).stdout.strip()
            return status if status in ("healthy", "unhealthy") else None

        assert wait_until(decided, 30, f"the health of nginx:{tag}") == expected
    finally:
        node.run(f"docker rm -f {name}")
