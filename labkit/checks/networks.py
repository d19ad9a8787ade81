"""Checks of cross-node networks: an overlay network (created on workers only when a task needs it),
service discovery by name across nodes, virtual IP versus DNS round robin, and published ports (the
routing mesh where the kernel has IPVS, host-mode publishing where it has not)."""

from __future__ import annotations

import re
import shlex
from typing import Any

from labkit.backends.base import Node
from labkit.checks.base import Context, Result, check, judge_answer, per_look, replicas_of, sections

NETWORK, WEB, CLIENT, PORT = "backend", "web", "client", 8080
WHOAMI = re.compile(r"^(\S+) nginx/(\S+)$")
ROUNDS = 4  # rounds of six requests the discovery check asks at most, until every web task has answered


def _running(ctx: Context, service: dict[str, Any]) -> list[str]:
    hosts = ctx.hostnames()
    return sorted(hosts.get(t["NodeID"], "?") for t in ctx.running_tasks(service))


def has_ipvs(node: Node) -> bool:
    """Whether NODE's kernel has IPVS (service virtual IPs and the routing mesh need it)."""
    return node.run("test -d /proc/sys/net/ipv4/vs || test -d /sys/module/ip_vs").ok


def _network(ctx: Context) -> dict[str, Any] | None:
    return next((n for n in ctx.api.networks(names=[NETWORK]) if n["Name"] == NETWORK), None)


def _listed_by(ctx: Context) -> dict[str, bool]:
    """Whether each node's engine lists the network (its name filter matches parts of names: compare whole)."""
    return {n.name: any(net.name == NETWORK for net in n.docker.networks.list(names=[NETWORK]))
            for n in ctx.cluster.nodes}


def _lazy_answer(ctx: Context) -> str:
    return "yes" if _listed_by(ctx).get(str(ctx.params.get("node", "worker1"))) else "no"


@check("overlay_lazy", answer=_lazy_answer)
def overlay_lazy(ctx: Context) -> Result:
    """An overlay network exists on the managers; a worker lists it only once a task there needs it."""
    if not ctx.swarm_active():
        return ctx.not_initialised()
    network = _network(ctx)
    if network is None or network["Driver"] != "overlay":
        return Result(False, f"There is no overlay network called {NETWORK} yet.", hint=ctx.step.hints[0])
    seen = _listed_by(ctx)
    evidence = (f"{NETWORK}: driver overlay, scope {network.get('Scope')}",
                "listed by: " + ", ".join(f"{n} {'yes' if s else 'no'}" for n, s in sorted(seen.items())))
    worker = str(ctx.params.get("node", "worker1"))
    return judge_answer(ctx, ["yes", "y"] if seen.get(worker) else ["no", "n", "not yet"], evidence)


REQUEST_TIMEOUT = 4  # s for one request from the client's container
NO_IPVS_TRY = 0.3  # s for the one request that shows a virtual IP without IPVS answers nothing


def ask_web(ctx: Context, path: str = "/whoami", times: int = 6, target: str = WEB,
            timeout: float = REQUEST_TIMEOUT) -> list[str]:
    """TIMES requests from the client's container to http://TARGET/PATH, each given TIMEOUT seconds: each
    answer, or 'FAIL'."""
    found = ctx.task_container(CLIENT)
    if found is None:
        return []
    _, container = found
    # busybox wget's -T bounds reads, not a connect nobody answers (a VIP without IPVS, after a put-back:
    # a CI check hung past the client's 60 s): timeout bounds each request. busybox's timeout counts whole
    # seconds; a shorter bound is the shell's: the request is killed if it still waits.
    wget = f"wget -q -T 2 -O- http://{target}{path}"
    one = (f"timeout {int(timeout)} {wget} || echo FAIL" if timeout >= 1 else
           f"{wget} & p=$!; sleep {timeout:g}; if kill $p 2>/dev/null; then echo FAIL; else wait $p || echo FAIL; fi")
    _, out = container.exec_run(["sh", "-c", f"for i in $(seq {times}); do {one}; done"])
    return [line.strip() for line in (out or b"").decode(errors="replace").splitlines() if line.strip()]


@per_look
def _discovery(ctx: Context) -> tuple[Result, list[str]]:
    if not ctx.swarm_active():
        return ctx.not_initialised(), []
    web, client = ctx.service(WEB), ctx.service(CLIENT)
    if web is None or client is None:
        missing = " and ".join(n for n, s in ((WEB, web), (CLIENT, client)) if s is None)
        return Result(False, f"There is no service called {missing} yet.", hint=ctx.step.hints[0]), []
    web_nodes, client_nodes = _running(ctx, web), _running(ctx, client)
    evidence = [f"web tasks on: {', '.join(web_nodes) or 'none'}", f"client on: {', '.join(client_nodes) or 'none'}"]
    if len(web_nodes) < 2 or not client_nodes:
        return Result(False, "The services are starting.", tuple(evidence), pending=True, hint="Wait."), []
    if set(client_nodes) & set(web_nodes):
        return Result(False, "client runs on a node that also runs web: this step wants them on different nodes.",
                      tuple(evidence), hint=ctx.step.hints[0]), []
    answers: list[str] = []
    for _ in range(ROUNDS):  # DNS round robin is random: six requests all reach one task 1 time in 32
        answers += ask_web(ctx)
        tasks = sorted({m.group(1) for a in answers if (m := WHOAMI.match(a))})
        if "FAIL" in answers or not answers or len(tasks) >= len(web_nodes):
            break
    evidence.append(f"client asked http://web/whoami {len(answers)} times: "
                    f"{sum(a == 'FAIL' for a in answers)} failed, answered by {len(tasks)} task(s): {', '.join(tasks)}")
    if not answers or "FAIL" in answers or not tasks:
        return Result(False, "client cannot reach web by its name yet.", tuple(evidence), pending=True,
                      hint="Are both services on the network backend? `docker service inspect` shows it."), []
    return Result(True, f"client on {client_nodes[0]} reaches web on {', '.join(web_nodes)} by name.",
                  tuple(evidence)), tasks


@check("service_discovery", answer=lambda ctx: str(len(_discovery(ctx)[1])))
def service_discovery(ctx: Context) -> Result:
    """client reaches web by its name, across nodes over VXLAN; the learner predicted how many tasks answer."""
    result, tasks = _discovery(ctx)
    if not result.passed:
        return result
    word = {1: "one", 2: "two", 3: "three"}.get(len(tasks), "")
    return judge_answer(ctx, [str(len(tasks)), f"{len(tasks)} tasks", word, f"{word} tasks"], result.evidence)


@check("virtual_ip")
def virtual_ip(ctx: Context) -> Result:
    """A service with a virtual IP: DNS answers one address; traffic to it needs IPVS in the kernel."""
    if not ctx.swarm_active():
        return ctx.not_initialised()
    service = ctx.service("webvip")
    if service is None:
        return Result(False, "There is no service called webvip yet.", hint=ctx.step.hints[0])
    vips = [v.get("Addr", "") for v in (service.get("Endpoint") or {}).get("VirtualIPs") or []]
    running = _running(ctx, service)
    ipvs = has_ipvs(ctx.manager)
    evidence = [f"webvip: endpoint mode vip, virtual IP(s) {', '.join(vips) or 'none yet'}",
                f"webvip tasks on: {', '.join(running) or 'none'}",
                f"IPVS in the kernel: {'yes' if ipvs else 'no'}"]
    if not vips or not running:
        return Result(False, "webvip is starting.", tuple(evidence), pending=True, hint="Wait a moment.")
    # Without IPVS the virtual IP cannot answer: one short try shows it (a try waits out its whole bound).
    answers = ask_web(ctx, times=2, target="webvip") if ipvs else \
        ask_web(ctx, times=1, target="webvip", timeout=NO_IPVS_TRY)
    ok = [a for a in answers if WHOAMI.match(a)]
    evidence.append(f"client asked http://webvip/whoami {'twice' if ipvs else 'once'}: {len(ok)} answered")
    if ipvs and not ok:
        return Result(False, "webvip's virtual IP does not answer yet.", tuple(evidence), pending=True,
                      hint="Is webvip on the network backend?")
    if ipvs:
        return Result(True, "webvip has one virtual IP, and the kernel balances it over the tasks.", tuple(evidence))
    return Result(True, "webvip got a virtual IP, but this machine's kernel has no IPVS: requests to it go "
                  "nowhere. That is why this course uses --endpoint-mode dnsrr here.", tuple(evidence))


def _fetch(ctx: Context, nodes: list[str]) -> dict[str, bool]:
    """Whether http://NODE:PORT/whoami answers, for each of NODES, asked from one throwaway container on the
    first manager (a container run costs 0.3 to 0.5 s: one for all)."""
    script = "; ".join(f"echo == {node}; timeout {REQUEST_TIMEOUT} wget -q -T 2 -O- http://{node}:{PORT}/whoami"
                       for node in nodes)
    said = sections(ctx.manager.run(f"docker run --rm alpine sh -c {shlex.quote(script)}", timeout=30).stdout)
    return {node: bool(WHOAMI.match(said.get(node, "").strip())) for node in nodes}


@check("published_port")
def published_port(ctx: Context) -> Result:
    """web published on port 8080: host mode answers on the nodes running a task; the routing mesh
    (ingress, where the kernel has IPVS) answers on every node."""
    if not ctx.swarm_active():
        return ctx.not_initialised()
    service = ctx.service(WEB)
    if service is None:
        return Result(False, "There is no service called web.", hint=ctx.step.hints[0])
    ports = (service["Spec"].get("EndpointSpec") or {}).get("Ports") or []
    port = next((p for p in ports if p.get("PublishedPort") == PORT), None)
    if port is None:
        return Result(False, f"web does not publish port {PORT}.", hint=ctx.step.hints[0])
    mode = port.get("PublishMode", "ingress")
    running = _running(ctx, service)
    ipvs = has_ipvs(ctx.manager)
    if mode == "ingress" and not ipvs:
        return Result(False, f"web publishes {PORT} through the routing mesh, but this machine's kernel has no "
                      "IPVS: the mesh cannot work here.", ("publish mode ingress, IPVS: no",),
                      hint=f"Publish in host mode instead: `docker service update --publish-rm {PORT} "
                      f"--publish-add mode=host,target=80,published={PORT} web`.")
    wanted = replicas_of(service, len(running))
    if len(running) < wanted or (service.get("UpdateStatus") or {}).get("State") == "updating":
        return Result(False, "web's tasks are restarting with the published port.",
                      (f"web tasks running on: {', '.join(running) or 'none'} ({len(running)}/{wanted})",),
                      pending=True, hint="Tasks restart when their ports change: wait a moment.")
    answers = _fetch(ctx, [n.name for n in ctx.cluster.nodes])
    evidence = (f"publish mode {mode}, IPVS: {'yes' if ipvs else 'no'}", f"web tasks on: {', '.join(running)}",
                "port 8080 answers on: " + ", ".join(f"{n} {'yes' if a else 'no'}" for n, a in sorted(answers.items())))
    expected = set(answers) if mode == "ingress" else set(running)
    if {n for n, a in answers.items() if a} != expected:
        return Result(False, "The published port does not answer where it should yet.", evidence, pending=True,
                      hint="Tasks restart when their ports change: wait a moment.")
    where = "every node, task or not (the routing mesh)" if mode == "ingress" else "only the nodes that run a task"
    return Result(True, f"Port {PORT} answers on {where}.", evidence)
