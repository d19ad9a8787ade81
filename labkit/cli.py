"""The `labkit` command: bring a lab up and down, look at it, and get onto its nodes."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, TypeVar

import docker.errors
import typer
from rich.console import Console
from rich.table import Table

from labkit import __version__, engine, images
from labkit import doctor as doctor_mod
from labkit.backends import BACKENDS, Backend, get_backend
from labkit.checks import Result
from labkit.cluster import Cluster
from labkit.errors import InvalidInput, LabkitError
from labkit.fields import render
from labkit.labs import Lab, Step, find, next_step
from labkit.progress import Progress, log_exception
from labkit.room import client as room_client
from labkit.runner import course, run_check
from labkit.runner import reset as runner_reset
from labkit.runner import solve as runner_solve
from labkit.settings import HubSettings, settings
from labkit.swarm import form_swarm
from labkit.topology import Topology, lab_name

app = typer.Typer(
    help="Learn Docker Swarm mode by doing it, on a real multi-node swarm.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# emoji=False: "autolock:unlock:" is a step reference, not rich's :unlock: emoji
console = Console(stderr=True, soft_wrap=True, emoji=False)
out = Console(soft_wrap=True, emoji=False)

LabOpt = Annotated[str | None, typer.Option("--lab", help="Lab name (default: $LABKIT_LAB or 'lab').")]
BackendOpt = Annotated[
    str | None, typer.Option("--backend", help=f"{' or '.join(BACKENDS)} (default: $LABKIT_BACKEND, else dind).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document (for scripts and tools).")]
T = TypeVar("T")


def _print_json(document: object) -> None:
    sys.stdout.write(json.dumps(document, indent=1) + "\n")


def _report(message: str) -> None:
    console.print(f"[cyan]•[/] {message}")


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _guard(fn: Callable[[], T]) -> T:
    """Run FN; a LabkitError becomes one line and exit 1, never a traceback. Checks it made that wait for
    the learner's room are then sent in the background (the command never waits on the room)."""
    try:
        return fn()
    except LabkitError as exc:
        _fail(str(exc))
    except docker.errors.APIError as exc:
        _fail(f"Docker refused: {exc.explanation or exc}. `labkit status` and `labkit doctor` check the lab.")
    except docker.errors.DockerException as exc:
        log = log_exception("command", exc)
        _fail(f"Docker could not be reached or answered oddly (details in {log}). "
              "`labkit status` and `labkit doctor` check the lab.")
    except PermissionError as exc:
        where = f" on {exc.filename}" if exc.filename else ""
        _fail(f"Permission denied{where}. labkit keeps your runtime files under $XDG_RUNTIME_DIR or "
              "~/.local/state/labkit; `labkit doctor` checks your access to the Docker engine.")
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        _fail(f"{exc.strerror or exc}{where}. `labkit doctor` checks the setup.")
    except KeyboardInterrupt:
        _fail("Interrupted. `labkit up` resumes, `labkit down` removes what was made.")
    finally:
        room_client.send_in_background()
    raise AssertionError("unreachable")


def _cluster(lab: str | None, backend: str | None) -> Cluster:
    return Cluster(get_backend(backend, lab_name(lab)))


def _version(value: bool) -> None:
    if value:
        out.print(f"labkit {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print labkit's version and exit.")
    ] = False,
) -> None:
    """Learn Docker Swarm mode by doing it, on a real multi-node swarm."""


@app.command()
def setup(install: Annotated[bool, typer.Option(help="Install missing packages with apt.")] = True) -> None:
    """Make sure a local Docker engine runs (installing it with apt if needed) and build the images."""

    def go() -> None:
        client = engine.ensure_engine(_report, install=install)
        images.ensure_images(client, _report)
        _report("Setup done. Next: `labkit up`.")

    _guard(go)


@app.command()
def up(
    managers: Annotated[int | None, typer.Option(help="Manager nodes (default 1).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker nodes (default 2).")] = None,
    swarm: Annotated[bool, typer.Option("--swarm", help="Also form the swarm (skip the first lab).")] = False,
    lab: LabOpt = None,
    backend: BackendOpt = None,
) -> None:
    """Start the lab's nodes: bare engines, no swarm yet (the first lab forms it)."""

    def go() -> None:
        c = _cluster(lab, backend)
        topology = None
        if managers is not None or workers is not None:
            topology = Topology(managers if managers is not None else 1, workers if workers is not None else 2)
        nodes = c.backend.up(topology, _report)
        if swarm:
            form_swarm(nodes, _report)
        _print_status(c)

    _guard(go)


@app.command()
def down(lab: LabOpt = None, backend: BackendOpt = None) -> None:
    """Remove every container, volume and network of the lab (caches stay)."""

    def go() -> None:
        removed = _cluster(lab, backend).backend.down(_report)
        _report(f"Lab removed ({removed} resources)." if removed else "Nothing to remove.")

    _guard(go)


@app.command()
def clean() -> None:
    """Remove labkit's caches: its images and the lab registry's data (labs must be down)."""

    def go() -> None:
        removed = images.remove_caches(engine.host_client())
        _report(f"Removed {removed} cached images and volumes; the next `labkit up` rebuilds them.")

    _guard(go)


@app.command()
def status(lab: LabOpt = None, backend: BackendOpt = None, as_json: JsonOpt = False) -> None:
    """Show each node: role, engine state, swarm state, address, network (connected or disconnected)."""

    def go() -> None:
        c = _cluster(lab, backend)
        if as_json:
            _print_json({"lab": c.lab, "backend": c.backend.name, "nodes": [asdict(s) for s in c.status()]})
            return
        if not c.nodes:
            _report(f"Lab '{c.lab}' has no nodes. Start it with `labkit up`.")
            return
        _print_status(c)

    _guard(go)


def _print_status(c: Cluster) -> None:
    table = Table(title=f"lab '{c.lab}' ({c.backend.name})")
    for col in ("node", "role", "engine", "swarm", "address", "network"):
        table.add_column(col)
    for s in c.status():
        colour = "green" if s.engine == "answering" else "yellow"
        network = s.network if s.network != "disconnected" else f"[yellow]{s.network}[/]"
        table.add_row(s.name, s.role, f"[{colour}]{s.engine}[/]", s.swarm, s.address, network)
    out.print(table)


NodeArg = Annotated[str, typer.Argument(help="Node name, e.g. worker2 (`labkit status` lists them).")]
node_app = typer.Typer(
    help="Fail a node on purpose and bring it back: power it off or on, restart it, cut it off the lab network or "
    "reconnect it.",
    no_args_is_help=True,
)
app.add_typer(node_app, name="node")


def _node_action(lab: str | None, backend: str | None, act: Callable[[Backend], str]) -> None:
    """Run one node action and print its one line."""
    line = _guard(lambda: act(_cluster(lab, backend).backend))
    out.print(line, highlight=False)


@node_app.command("stop")
def node_stop(node: NodeArg, lab: LabOpt = None, backend: BackendOpt = None) -> None:
    """Power NODE off abruptly, like pulling the plug (its engine stops with it)."""
    _node_action(lab, backend, lambda b: b.power(node, False, _report))


@node_app.command("start")
def node_start(node: NodeArg, lab: LabOpt = None, backend: BackendOpt = None) -> None:
    """Power NODE on again; returns when its engine answers."""
    _node_action(lab, backend, lambda b: b.power(node, True, _report))


@node_app.command("restart")
def node_restart(node: NodeArg, lab: LabOpt = None, backend: BackendOpt = None) -> None:
    """Reboot NODE: its engine shuts down cleanly and starts again (a manager with autolock comes back locked)."""
    _node_action(lab, backend, lambda b: b.restart(node, _report))


@node_app.command("disconnect")
def node_disconnect(node: NodeArg, lab: LabOpt = None, backend: BackendOpt = None) -> None:
    """Cut NODE off the lab network (a partition): its engine keeps running, no other node reaches it."""
    _node_action(lab, backend, lambda b: b.partition(node, False, _report))


@node_app.command("connect")
def node_connect(node: NodeArg, lab: LabOpt = None, backend: BackendOpt = None) -> None:
    """Reconnect NODE to the lab network with the address it had."""
    _node_action(lab, backend, lambda b: b.partition(node, True, _report))


StepArg = Annotated[str, typer.Argument(help="LAB or LAB:STEP, e.g. scale or nodes:join (see `labkit labs`).")]
NextStepArg = Annotated[
    str | None,
    typer.Argument(help="LAB or LAB:STEP, e.g. scale or nodes:join (default: your next unfinished step)."),
]


def _resolve(ref: str | None, lab: str | None) -> tuple[Lab, Step | None]:
    """The lab and step REF names; without REF, the learner's next unfinished step, said out loud."""
    labs = course()
    if ref:
        return find(ref, labs)
    step = next_step(labs, Progress(lab_name(lab)))
    if step is None:
        raise LabkitError("Every step of every lab is done. `labkit labs` lists them; "
                          "`labkit check LAB:STEP` checks one again.")
    _report(f"Your next step: {step.ref} ({step.title})")
    return find(step.ref, labs)


@app.command("labs")
def labs_(lab: LabOpt = None, as_json: JsonOpt = False) -> None:
    """List the labs in course order, with your progress."""

    def go() -> None:
        progress = Progress(lab_name(lab))
        if as_json:
            _print_json({"lab": lab_name(lab), "labs": [
                {"id": item.id, "title": item.title, "steps": [
                    {"ref": s.ref, "id": s.id, "title": s.title, "passed": progress.passed(s.ref)} for s in item.steps
                ]} for item in course()
            ]})
            return
        table = Table(title="Swarm labs")
        for col in ("lab", "title", "done", "next step"):
            table.add_column(col)
        for item in course():
            done = [s for s in item.steps if progress.passed(s.ref)]
            nxt = next((s for s in item.steps if not progress.passed(s.ref)), None)
            table.add_row(item.id, item.title, f"{len(done)}/{len(item.steps)}",
                          f"{nxt.ref}: {nxt.title}" if nxt else "[green]complete[/]")
        out.print(table)

    _guard(go)


@app.command()
def show(ref: NextStepArg = None, lab: LabOpt = None, backend: BackendOpt = None, as_json: JsonOpt = False) -> None:
    """Show a step (or every step of a lab): the node, the commands to type, the question."""

    def go() -> None:
        item, step = _resolve(ref, lab)
        c = _cluster(lab, backend)
        if as_json:
            _print_json({"lab": c.lab, "id": item.id, "title": item.title, "steps": [
                {"ref": s.ref, "title": s.title, "node": s.node, "question": s.question, "predict": s.predict,
                 "commands": [{"node": cmd.node, "run": render(cmd.run, c, cmd.node)} for cmd in s.commands]}
                for s in ([step] if step else list(item.steps))
            ]})
            return
        if step is None:
            out.print(f"[bold]{item.title}[/]\n{item.intro}\n")
        for s in [step] if step else list(item.steps):
            out.print(f"[bold]{s.ref}[/]  {s.title}")
            ask = f"  [yellow]?[/] {s.question}  (answer with `labkit check {s.ref} --answer ...`)"
            if s.question and s.predict:
                out.print(ask.replace("?[/] ", "?[/] Predict first: ", 1))
            for command in s.commands:
                refused = "  [dim](meant to be refused)[/]" if command.fails else ""
                out.print(f"  [cyan]{command.node}$[/] {render(command.run, c, command.node)}{refused}",
                          highlight=False)
            if s.question and not s.predict:
                out.print(ask)

    _guard(go)


@app.command()
def check(
    ref: NextStepArg = None,
    answer: Annotated[str | None, typer.Option(help="Your answer, for a step that asks a question.")] = None,
    lab: LabOpt = None,
    backend: BackendOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a step (or each step of a lab) on the live cluster."""

    def go() -> bool:
        item, step = _resolve(ref, lab)
        c = _cluster(lab, backend)
        results = []
        for s in [step] if step else list(item.steps):
            result = run_check(c, s, answer=answer if step else None)
            results.append((s.ref, result))
            if not as_json:
                _print_result(s.ref, result)
        if as_json:
            _print_json({"lab": c.lab, "results": [{"ref": ref_, **asdict(r)} for ref_, r in results]})
        return all(r.passed for _, r in results)

    if not _guard(go):
        raise typer.Exit(1)


def _print_result(ref: str, result: Result) -> None:
    mark = "[bold green]PASS[/]" if result.passed else "[bold red]FAIL[/]"
    out.print(f"{mark} {ref}: {result.summary}", highlight=False)
    for line in result.evidence:
        out.print(f"     [dim]seen:[/] {line}", highlight=False)
    if result.hint and not result.passed:
        out.print(f"     [yellow]try:[/] {result.hint}", highlight=False)


@app.command()
def solve(ref: StepArg, lab: LabOpt = None, backend: BackendOpt = None) -> None:
    """Apply the solutions of a lab's steps, up to and including STEP."""

    def go() -> None:
        item, step = find(ref, course())
        for s, result in zip(item.steps, runner_solve(_cluster(lab, backend), item, step, _report), strict=False):
            _print_result(s.ref, result)

    _guard(go)


@app.command()
def reset(ref: StepArg, lab: LabOpt = None, backend: BackendOpt = None) -> None:
    """Rewind to the start of a step: a fresh cluster, then the solutions of every earlier step."""

    def go() -> None:
        labs = course()
        item, step = find(ref, labs)
        runner_reset(_cluster(lab, backend), labs, step or item.steps[0], _report)

    _guard(go)


# Config labkit adds to JupyterLab's own (never replacing the user's): no news, no update checks, no toasts.
JUPYTER_CONFIG = Path(__file__).resolve().parent / "jupyter"


def jupyter_lab_command(port: int, browser: bool, ip: str = "127.0.0.1") -> tuple[list[str], dict[str, str]]:
    """The argv and environment that start a quiet, private JupyterLab. The token comes from
    $JUPYTER_TOKEN (a new random one when unset) and travels only in the environment, never in argv."""
    env = dict(os.environ)
    env["JUPYTER_TOKEN"] = env.get("JUPYTER_TOKEN") or secrets.token_hex(24)
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(
        p for p in (str(JUPYTER_CONFIG), env.get("JUPYTER_CONFIG_PATH", "")) if p
    )
    notebooks = settings().notebooks_dir
    argv = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.ip={ip}", f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0", f"--ServerApp.root_dir={notebooks}",
            f"--ServerApp.open_browser={browser}", str(notebooks / "start.ipynb")]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    return argv, env


@app.command("lab")
def jupyter_lab(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8888,
    browser: Annotated[bool, typer.Option(help="Open a browser at the start notebook.")] = True,
    ip: Annotated[str, typer.Option(help="Address to listen on (a seat listens on 0.0.0.0 inside its "
                                         "container and publishes the port on 127.0.0.1 only).")] = "127.0.0.1",
) -> None:
    """Open JupyterLab on 127.0.0.1 at the start notebook, with a token ($JUPYTER_TOKEN or a new one)."""
    argv, env = jupyter_lab_command(port, browser, ip)
    _report(f"JupyterLab: http://127.0.0.1:{port}/lab/tree/start.ipynb?token={env['JUPYTER_TOKEN']}")
    os.execve(argv[0], argv, env)


@app.command()
def doctor(lab: LabOpt = None, backend: BackendOpt = None) -> None:
    """Check the engine, the node mode and the kernel features the labs use."""

    def go() -> bool:
        results = doctor_mod.diagnose(_cluster(lab, backend))
        table = Table.grid(padding=(0, 2))
        for r in results:
            mark = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}[r.level]
            table.add_row(mark, f"[bold]{r.name}[/]", r.detail)
        out.print(table)
        return all(r.level != "fail" for r in results)

    if not _guard(go):
        raise typer.Exit(1)


@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_(
    node: Annotated[str, typer.Argument(help="Node name, e.g. manager1.")],
    cmd: Annotated[list[str], typer.Argument(help="The command, after --.")],
    lab: LabOpt = None,
    backend: BackendOpt = None,
) -> None:
    """Run a command on a node: `labkit exec manager1 -- docker node ls`."""

    def go() -> int:
        argv = cmd[0] if len(cmd) == 1 else shlex.join(cmd)
        result = _cluster(lab, backend)[node].run(argv)
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        return result.exit_code

    code = _guard(go)
    raise typer.Exit(code)


@app.command()
def shell(
    node: Annotated[str, typer.Argument(help="Node name, e.g. manager1.")],
    lab: LabOpt = None,
    backend: BackendOpt = None,
) -> None:
    """Open an interactive shell on a node."""
    argv = _guard(lambda: _cluster(lab, backend).backend.shell_command(node))
    os.execvp(argv[0], argv)


room_app = typer.Typer(help="The room: an instructor's live dashboard of every attendee's checks.",
                       no_args_is_help=True)
app.add_typer(room_app, name="room")


@room_app.command("serve")
def room_serve(
    host: Annotated[str, typer.Option(help="Address to listen on (behind a TLS proxy for a real room).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    db: Annotated[Path | None, typer.Option(help="The room's SQLite file (default: room.db in labkit's state "
                                                 "folder).")] = None,
    roster: Annotated[Path | None, typer.Option(help="A file of expected names, one per line (the dashboard "
                                                     "lists who has not joined).")] = None,
    hub: Annotated[bool, typer.Option(help="Run as JupyterHub's service: seats post with their hub token, "
                                           "no join code (`make hub` starts it so).")] = False,
) -> None:
    """Run the room service: prints the dashboard URL (with your instructor token) and the join code."""
    from labkit.labs import all_steps
    from labkit.room.server import serve

    def go() -> None:
        names = [n.strip() for n in roster.read_text().splitlines() if n.strip()] if roster else None
        serve(host, port, db or settings().state_dir / "room.db", [s.ref for s in all_steps(course())],
              lambda line: out.print(line, highlight=False), names, hub=hub)

    _guard(go)


@room_app.command("join")
def room_join(
    url: Annotated[str, typer.Argument(help="The room's address, as your instructor gave it.")],
    code: Annotated[str, typer.Option(help="The room's join code.")],
    name: Annotated[str, typer.Option(help="Your name, as the instructor will see it.")],
) -> None:
    """Join a room: from now on each of your checks is sent to the instructor's dashboard."""
    _guard(lambda: room_client.join(url, code, name))
    out.print(f"Joined the room at {url.rstrip('/')} as {name}. Your checks now reach the instructor's "
              "dashboard; `labkit room leave` stops that.", highlight=False)


@room_app.command("leave")
def room_leave() -> None:
    """Leave the room: checks stay on this computer only."""
    from labkit import outbox

    left = _guard(outbox.leave)
    out.print("Left the room." if left else "You had not joined a room.", highlight=False)


seat_app = typer.Typer(help="Seats: a Docker Engine, a 3-node lab and JupyterLab in one container each.",
                       no_args_is_help=True)
app.add_typer(seat_app, name="seat")


@seat_app.command("build")
def seat_build(force: Annotated[bool, typer.Option(help="Build even if a current image exists.")] = False) -> None:
    """Build the labkit/seat image here, with no network (a few minutes; root)."""
    from labkit import seat

    _guard(lambda: seat.ensure_seat_image(engine.host_client(), _report, force=force))


@seat_app.command("context")
def seat_context(
    folder: Annotated[Path, typer.Argument(help="Where to write the build context (emptied first).")],
) -> None:
    """Write the seat's Dockerfile and context, to `docker build` it elsewhere (packages from Debian and PyPI)."""
    from labkit import seat

    made = _guard(lambda: seat.write_context(folder, _report, offline=False))
    out.print(f"Build it with: docker build -t labkit/seat {made}", highlight=False)


@seat_app.command("run")
def seat_run(
    name: Annotated[str, typer.Argument(help="The seat's name (letters, digits, dashes).")],
    port: Annotated[int | None, typer.Option(help="Port on 127.0.0.1 for JupyterLab (default: a free one).")] = None,
    wait: Annotated[bool, typer.Option(help="Wait until its lab is up and JupyterLab answers.")] = True,
) -> None:
    """Start a seat: its own engine, lab and JupyterLab, published on 127.0.0.1 only."""
    from labkit import seat

    def go() -> seat.Seat:
        client = engine.host_client()
        made = seat.run_seat(client, name, port, _report)
        if wait:
            _report("Waiting for its engine, its lab and JupyterLab")
            made = seat.wait_ready(client, made.name)
        return made

    made = _guard(go)
    out.print(f"Seat {made.name}: {made.url}", highlight=False, soft_wrap=True)


@seat_app.command("ls")
def seat_ls() -> None:
    """List the seats on this engine, with their URLs."""
    from labkit import seat

    found = _guard(lambda: seat.seats(engine.host_client()))
    if not found:
        out.print("No seats. `labkit seat run NAME` starts one.", highlight=False)
    for s in found:
        state = "ready" if s.ready else s.status if s.status != "running" else "starting"
        out.print(f"{s.name}\t{state}\t{s.url or '-'}", highlight=False, soft_wrap=True)


@seat_app.command("rm")
def seat_rm(name: Annotated[str, typer.Argument(help="The seat to remove, with its lab and work.")]) -> None:
    """Remove a seat: its container, its engine's volume (lab and notebooks) and its network."""
    from labkit import seat

    _guard(lambda: seat.remove_seat(engine.host_client(), name))
    out.print(f"Seat {name} removed.", highlight=False)


hub_app = typer.Typer(help="A hosted room on JupyterHub (`make hub` starts it): one seat per attendee.",
                      no_args_is_help=True)
app.add_typer(hub_app, name="hub")


@hub_app.command("prespawn")
def hub_prespawn(
    users: Annotated[Path, typer.Argument(help="A file of user names, one per line.")],
    url: Annotated[str, typer.Option(help="The hub's address.")] = "http://127.0.0.1:8000",
) -> None:
    """Start every listed user's seat before the doors open (needs $LABKIT_HUB_ADMIN_TOKEN, as the hub has)."""
    from labkit import hosted

    def go() -> list[str]:
        token = HubSettings.from_env().admin_token
        if not token:
            raise InvalidInput("Set LABKIT_HUB_ADMIN_TOKEN to the token the hub was started with.")
        names = [n.strip() for n in users.read_text().splitlines() if n.strip() and not n.startswith("#")]
        return hosted.prespawn(url, token, names, _report)

    started = _guard(go)
    out.print(f"{len(started)} seats starting or running.", highlight=False)


if __name__ == "__main__":
    app()
