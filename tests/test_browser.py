"""The README's main path in a real browser: `labkit lab` serves JupyterLab, headless Chromium opens the
start notebook, runs it, and answers its check widget, wrong first, then right.

The browser reaches nothing but 127.0.0.1. JupyterLab keeps its config, data, settings, workspaces and
runtime files in a temporary directory, with autosave off, so start.ipynb is never rewritten; the
learner's progress file is never touched either (LABKIT_STATE_DIR is temporary too).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest
from jupyter_client import BlockingKernelClient
from playwright.sync_api import Page, Route, expect, sync_playwright

import labkit
from labkit.swarm import form_swarm

pytestmark = [pytest.mark.cluster, pytest.mark.browser, pytest.mark.destructive]


@pytest.fixture(scope="module")
def lab(own_lab: labkit.Cluster) -> labkit.Cluster:
    """This module changes its lab: a lab of its own (see conftest.own_lab), not the shared test lab."""
    return own_lab

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SCREENSHOT = ARTIFACTS / "jupyterlab-check.png"
FAILURE_SCREENSHOT = ARTIFACTS / "jupyterlab-failure.png"
CHROMIUM = Path("/usr/bin/chromium")
LOCAL = "127.0.0.1"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
    # Belt and braces for "nothing but 127.0.0.1": every other host goes to a proxy that does not exist
    # and resolves to nothing; the page's requests are also filtered by a route below.
    f"--proxy-server=http://{LOCAL}:9", f"--proxy-bypass-list={LOCAL}",
    f"--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE {LOCAL}",
]
SERVER_START = 60.0  # s; JupyterLab's cold start on a 2-core machine takes 10-20 s
PAGE = 60_000  # ms: load the page, start the kernel
CELLS = 180_000  # ms: run the notebook (status, doctor, a command on manager1, a check)
CHECK = 60_000  # ms: one click on Check
# JupyterLab user settings for the test: no autosave, and every cell attached to the DOM so locators see them
# all. No news or update settings here: `labkit lab` itself must keep JupyterLab quiet, and the test checks it.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}
TOAST = ".Toastify__toast"  # JupyterLab's notifications (news, update checks) pop up as these


@dataclass
class JupyterLab:
    port: int
    token: str
    log: Path
    notebooks: Path  # what it serves
    runtime: Path  # its runtime files: its kernels' connection files among them

    def url(self, path: str) -> str:
        return f"http://{LOCAL}:{self.port}{path}?token={self.token}"

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOCAL, 0))
        return int(s.getsockname()[1])


def answers(url: str) -> bool:
    """Whether URL answers 200, asked directly (never through a proxy from the environment)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=5) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def kernel_idle(page: Page) -> None:
    """Wait for the notebook's kernel, as a learner would: the status bar's kernel item goes "No Kernel |
    Initializing", then "Python 3 (ipykernel) | Idle" (the toolbar's execution indicator says idle before
    the kernel is there: not a usable signal). Once in a loaded CI run the page never heard that its
    started kernel was idle: as a learner would, reload the page once (a screenshot of it is kept)."""
    kernel = page.locator(".jp-StatusBar-TextItem").filter(has_text=re.compile(r"^Python 3.*\| Idle$"))
    try:
        expect(kernel).to_have_count(1, timeout=PAGE / 2)
    except AssertionError:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "kernel-not-idle.png"))
        page.reload(wait_until="domcontentloaded", timeout=PAGE)
        expect(kernel).to_have_count(1, timeout=PAGE)


@contextlib.contextmanager
def kernel_busy(jupyterlab: JupyterLab, seconds: float) -> Iterator[None]:
    """The notebook's kernel busy for SECONDS from the moment this enters: a second client (as a console
    on the same kernel would be) runs `time.sleep`, and what the page sends meanwhile waits behind it."""
    [connection] = jupyterlab.runtime.glob("kernel-*.json")
    client = BlockingKernelClient(connection_file=str(connection))
    client.load_connection_file()
    client.start_channels()
    try:
        sent = client.execute(f"import time; time.sleep({seconds})")
        while True:
            msg = client.get_iopub_msg(timeout=PAGE / 1000)
            if msg["parent_header"].get("msg_id") == sent and msg["content"].get("execution_state") == "busy":
                break
        yield
    finally:
        client.stop_channels()


def menu(page: Page, name: str, item: str) -> None:
    """Click JupyterLab's menu bar entry NAME, then its ITEM, as a user would."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{re.escape(name)}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme not in {"http", "https", "ws", "wss"} or parts.hostname == LOCAL


@pytest.fixture
def jupyterlab(lab: labkit.Cluster, tmp_path: Path) -> Iterator[JupyterLab]:
    """`labkit lab` as the README starts it, on a free port with a random token; stopped at the end."""
    token = secrets.token_hex(24)
    settings = tmp_path / "lab-settings"
    for plugin, values in LAB_SETTINGS.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    notebooks = tmp_path / "notebooks"  # a copy: nothing in the repository can be rewritten
    shutil.copytree(ROOT / "notebooks", notebooks, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    env = {
        **os.environ,
        "LABKIT_LAB": lab.lab,
        "LABKIT_NOTEBOOKS": str(notebooks),
        "LABKIT_STATE_DIR": str(tmp_path / "state"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "JUPYTER_TOKEN": token,  # the token travels in the environment, never on the command line
    }
    env.pop("LABKIT_STRICT", None)  # the learner's notebook, not the regression run
    server = JupyterLab(port=free_port(), token=token, log=tmp_path / "jupyterlab.log", notebooks=notebooks,
                        runtime=Path(env["JUPYTER_RUNTIME_DIR"]))
    argv = [sys.executable, "-m", "labkit", "lab", "--port", str(server.port), "--no-browser"]
    with server.log.open("wb") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + SERVER_START
        while not answers(server.url("/api/status")):
            if proc.poll() is not None:
                pytest.fail(f"`labkit lab` exited with code {proc.returncode}:\n{server.log_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer within {SERVER_START:.0f} s:\n{server.log_tail()}")
            time.sleep(0.25)
        # `labkit lab` became JupyterLab (same process): no other user can read the token in `ps`.
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
        assert "jupyter" in cmdline and token not in cmdline, cmdline.replace("\0", " ")
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def page(jupyterlab: JupyterLab) -> Iterator[Page]:
    """A headless Chromium page that can reach 127.0.0.1 and nothing else."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser test drives Debian's chromium; "
                    "install it with `apt-get install chromium` (make test does, as root).")

    blocked: list[str] = []
    sockets: list[str] = []

    def block(route: Route) -> None:
        blocked.append(route.request.url)
        route.abort("blockedbyclient")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.route(lambda url: not is_local(url), block)
            page = context.new_page()
            page.on("websocket", lambda ws: sockets.append(ws.url))
            yield page
            assert all(is_local(url) for url in sockets), f"the page opened a websocket elsewhere: {sockets}"
        finally:
            browser.close()
    assert not blocked, f"the page asked for something away from {LOCAL}: {blocked}"


def test_start_notebook_check_in_jupyterlab(lab: labkit.Cluster, jupyterlab: JupyterLab, page: Page) -> None:
    swarm = lab["manager1"].docker.info()["Swarm"]["LocalNodeState"]
    assert swarm == "inactive", f"the test lab's manager1 should be a fresh engine, its swarm is {swarm!r}"
    ARTIFACTS.mkdir(exist_ok=True)  # in .gitignore: screenshots are for looking at
    try:
        # Open the start notebook, as `labkit lab` prints it, and wait for its kernel.
        page.goto(jupyterlab.url("/lab/tree/start.ipynb"), wait_until="domcontentloaded", timeout=PAGE)
        notebook = page.locator(".jp-NotebookPanel").filter(has_text="Swarm labs: start here")
        expect(notebook).to_be_visible(timeout=PAGE)
        kernel_idle(page)

        # Edit > Clear Outputs of All Cells (the notebook is stored with recorded outputs: whatever shows
        # from here on comes from this run), then Run > Run All Cells and wait for the last cell's widget.
        menu(page, "Edit", "Clear Outputs of All Cells")
        expect(notebook.locator(".jp-OutputArea-child")).to_have_count(0, timeout=PAGE)
        menu(page, "Run", "Run All Cells")
        # The button's accessible name starts with its Font Awesome glyph: match the word at its end.
        check = page.get_by_role("button", name=re.compile(r"\bCheck$"))
        widget = notebook.locator(".widget-vbox").filter(has=check)
        expect(widget).to_have_count(1, timeout=CELLS)
        expect(widget).to_contain_text("Check: Is swarm mode active?")
        expect(widget).to_contain_text("NOT YET", timeout=CHECK)  # nothing answered yet
        widget.scroll_into_view_if_needed()
        box = widget.get_by_placeholder("your answer")
        check = widget.get_by_role("button", name=re.compile(r"\bCheck$"))

        # A wrong answer: NOT YET, with the hint.
        box.fill("")
        box.press_sequentially("active")
        check.click()
        expect(widget).to_contain_text("'active' is not what the cluster says", timeout=CHECK)
        expect(widget).to_contain_text("NOT YET")
        expect(widget).to_contain_text("Try:")
        expect(widget).not_to_contain_text("PASS")

        # The right answer, typed while the kernel is busy (a long cell running): PASS, the whole answer judged.
        with kernel_busy(jupyterlab, 3):
            box.fill("")
            box.press_sequentially("inactive")
            check.click()
        expect(widget).to_contain_text("PASS", timeout=CHECK)
        expect(widget).to_contain_text("Right: inactive.")
        expect(widget).not_to_contain_text("NOT YET")

        widget.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOT))
        # Quiet: no toast asked about "official Jupyter news" or a newer version at any point.
        assert page.locator(TOAST).count() == 0, page.locator(TOAST).all_inner_texts()
    except Exception:
        page.screenshot(path=str(FAILURE_SCREENSHOT))
        print(f"screenshot: {FAILURE_SCREENSHOT}\nJupyterLab log:\n{jupyterlab.log_tail()}")
        raise
    assert SCREENSHOT.exists(), SCREENSHOT
    assert SCREENSHOT.stat().st_size > 10_000, f"{SCREENSHOT} is only {SCREENSHOT.stat().st_size} bytes"


def test_cluster_map_redraws_while_the_learner_scales(lab: labkit.Cluster, jupyterlab: JupyterLab,
                                                      page: Page) -> None:
    manager = lab["manager1"]
    form_swarm(lab.nodes, lambda _: None)
    try:
        assert manager.run("docker service create -d --name web alpine sleep 1d").ok
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("%load_ext labkit.nb\nfrom labkit.nb import cluster_map\ncluster_map()")]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, jupyterlab.notebooks / "map.ipynb")
        page.goto(jupyterlab.url("/lab/tree/map.ipynb"), wait_until="domcontentloaded", timeout=PAGE)
        kernel_idle(page)
        menu(page, "Run", "Run All Cells")
        notebook = page.locator(".jp-NotebookPanel").filter(has_text="cluster_map()")
        tasks = notebook.locator(".jp-OutputArea-output svg text", has_text=re.compile(r"^web\.\d+\s+running$"))
        expect(tasks).to_have_count(1, timeout=CELLS)
        # The learner scales in a terminal; the map, already on the page, follows by itself.
        assert manager.run("docker service update -d web --replicas 3").ok
        expect(tasks).to_have_count(3, timeout=CHECK)
        page.screenshot(path=str(ARTIFACTS / "jupyterlab-cluster-map.png"))
    finally:
        manager.run("docker service rm web")
        for node in lab.nodes:  # back to bare engines for the other tests
            node.run("docker swarm leave --force")
