"""Widgets for the notebooks. Thin: they display what labkit's checks and
diagrams return, and hold no knowledge of their own.

Each widget also gives a plain-text (and, for the map, SVG) rendering, which is
what a headless run records and what nbval compares.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from html import escape
from typing import Any

import ipywidgets as w

from labkit import diagrams
from labkit.checks import Result
from labkit.cluster import Cluster
from labkit.fields import render
from labkit.labs import Step
from labkit.progress import Progress
from labkit.room import client as room_client
from labkit.runner import apply_solution, run_check

# An answer box sends its value when the learner leaves it (clicking Check, pressing Enter), not as they type.
# Typed into, it sends the first keystroke and holds back the rest until the kernel has answered that one
# (ipywidgets throttles each widget's updates); a click on Check, another widget, is not held back. On a busy
# kernel the click came first: the CI's browser test typed "active" and the check judged "a".
WHOLE_ANSWER: dict[str, Any] = {"continuous_update": False}


def result_text(ref: str, result: Result | None, question: bool = False) -> str:
    """One line for the record: PASS/FAIL and the summary (no evidence, which varies run to run)."""
    if result is None:
        return f"… {ref}: not checked yet"
    if result.passed:
        return f"PASS {ref}: {result.summary}"
    mark = "?" if question and result.awaits_answer else "FAIL"
    return f"{mark} {ref}: {result.summary}" + (f"\n     try: {result.hint}" if result.hint else "")


def inline_md(text: str) -> str:
    """Escape TEXT for HTML, with `code` spans as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text))


def result_html(result: Result, done_before: bool) -> str:
    colour, mark = ("#2e9d4f", "✔ PASS") if result.passed else ("#d64541", "✘ NOT YET")
    parts = [f'<div style="border-left:4px solid {colour};padding:4px 10px;margin:4px 0">',
             f'<b style="color:{colour}">{mark}</b> {inline_md(result.summary)}']
    if result.evidence:
        parts.append("<div style='color:#555;margin-top:4px'>What labkit saw:<ul style='margin:2px 0'>"
                     + "".join(f"<li><code>{escape(e)}</code></li>" for e in result.evidence) + "</ul></div>")
    if result.hint and not result.passed:
        parts.append(f"<div style='margin-top:4px'><b>Try:</b> {inline_md(result.hint)}</div>")
    if done_before and not result.passed:
        parts.append("<div style='color:#555'>(You completed this step earlier; the cluster has changed since.)</div>")
    parts.append(f"<div style='color:#999;font-size:smaller'>checked in {result.seconds:.2f} s</div></div>")
    return "".join(parts)


class CheckWidget(w.VBox):  # type: ignore[misc]
    """Check one step: a Check button (and an answer box for questions), Show/Apply solution."""

    def __init__(self, cluster: Cluster, step: Step, result: Result | None = None) -> None:
        self.cluster, self.step, self.result = cluster, step, result
        self.progress = Progress(cluster.lab)
        done = "  ✔ done" if self.progress.passed(step.ref) else ""
        self.title = w.HTML(f"<b>Check: {escape(step.title)}</b>{done}")
        self.answer = w.Text(value=self.progress.answer(step.ref) or "", placeholder="your answer",
                             description="Answer:", layout=w.Layout(width="420px"), **WHOLE_ANSWER)
        self.check_button = w.Button(description="Check", button_style="primary", icon="check")
        self.show_button = w.Button(description="Show solution", icon="eye")
        self.apply_button = w.Button(description="Apply solution", icon="magic")
        self.output = w.HTML()
        self.solution = w.HTML()
        self.check_button.on_click(lambda _: self._safely(self.run_check))
        self.show_button.on_click(lambda _: self._safely(self.show_solution))
        self.apply_button.on_click(lambda _: self._safely(self.apply))
        buttons = [self.check_button, self.show_button] + ([self.apply_button] if step.solution else [])
        rows: list[w.Widget] = [self.title]
        if step.question:
            rows.append(w.HTML(f"<b>Question:</b> {inline_md(step.question)}"))
            rows.append(self.answer)
        super().__init__([*rows, w.HBox(buttons), self.output, self.solution])
        if result is not None:
            self._show(result)

    def _safely(self, action: Callable[[], None]) -> None:
        """Buttons never raise into the void: any failure is shown in the widget."""
        try:
            action()
        except Exception as exc:
            self.output.value = (f"<div style='color:#d64541'>✘ {escape(str(exc))}</div>"
                                 "<div>Try <code>labkit status</code> in a terminal, or Apply solution.</div>")
        finally:
            room_client.send_in_background()  # the checks it made, to the learner's room if any (never waits)

    def run_check(self) -> None:
        self.output.value = "<i>checking…</i>"
        answer = self.answer.value.strip() or None if self.step.question else None
        self._show(run_check(self.cluster, self.step, answer=answer))

    def show_solution(self) -> None:
        if self.step.question and not self.step.solution:
            self.solution.value = ("<div>This step asks you to look: run the command(s) above and read the "
                                   "answer in their output. <b>Hint:</b> " + inline_md(self.step.hints[0]) + "</div>")
            return
        lines = "\n".join(f"{c.node}$ {render(c.run, self.cluster, c.node)}" for c in self.step.solution)
        self.solution.value = f"<pre style='background:#f6f8fa;padding:6px'>{escape(lines)}</pre>"

    def apply(self) -> None:
        self.output.value = "<i>applying the solution…</i>"
        self._show(apply_solution(self.cluster, self.step, lambda _: None))

    def _show(self, result: Result) -> None:
        self.result = result
        self.output.value = result_html(result, self.progress.passed(self.step.ref))

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = dict(super()._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = result_text(self.step.ref, self.result, bool(self.step.question))
        return bundle


class PredictWidget(w.VBox):  # type: ignore[misc]
    """A prediction, written down before the commands that answer it; the step's check judges it afterwards."""

    def __init__(self, lab: str, step: Step) -> None:
        self.step = step
        self.progress = Progress(lab)
        self.box = w.Text(value=self.progress.answer(step.ref) or "", placeholder="your prediction",
                          description="Predict:", layout=w.Layout(width="420px"), **WHOLE_ANSWER)
        self.save_button = w.Button(description="Save prediction", icon="pencil")
        self.saved = w.HTML()
        self.save_button.on_click(lambda _: self.save())
        super().__init__([w.HTML(f"<b>Predict:</b> {inline_md(step.question or '')}"),
                          w.HBox([self.box, self.save_button]), self.saved])

    def save(self) -> None:
        value = self.box.value.strip()
        if not value:
            self.saved.value = "<i>Write a prediction first.</i>"
            return
        self.progress.record(self.step.ref, answer=value)
        self.saved.value = (f"Saved: <b>{escape(value)}</b>. Now run the cells below; the check at the end of "
                            "this step judges your prediction against the cluster.")

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = dict(super()._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = f"Predict {self.step.ref}: {self.step.question}"
        return bundle


class ClusterMap(w.VBox):  # type: ignore[misc]
    """Nodes and the tasks on them, coloured by state, redrawn every second while it is live.

    With CONTROLS, each node gets two small buttons under the map: stop/start (power) and
    disconnect/connect (the lab network). They call the backend's own ``power``/``partition``, as
    `labkit node ...` does; whatever they say, success or failure, is shown in the widget, never raised."""

    def __init__(self, cluster: Cluster, live_for: float = 600.0, interval: float = 1.0,
                 controls: bool = True) -> None:
        self.cluster = cluster
        self.picture = w.HTML()
        self.message = w.HTML()
        self.buttons: dict[str, tuple[w.Button, w.Button]] = {}
        self._stop = threading.Event()
        self.nodes: list[diagrams.NodeView] = []
        self.redraw()
        rows: list[w.Widget] = [self.picture]
        if controls:
            rows += [self._controls(), self.message]
        super().__init__(rows)
        if live_for > 0:
            threading.Thread(target=self._loop, args=(live_for, interval), daemon=True).start()

    @property
    def value(self) -> str:
        """The map as drawn now (SVG, or a line saying why it cannot be read)."""
        return str(self.picture.value)

    def redraw(self) -> None:
        try:
            self.nodes = diagrams.snapshot(self.cluster)
            self.picture.value = diagrams.tasks_svg(self.nodes)
        except Exception as exc:  # a map that cannot read the cluster says so and keeps trying
            self.nodes = []
            self.picture.value = f"<i>cluster map: cannot read the cluster ({escape(str(exc)[:120])})</i>"

    # ------------------------------------------------------------ per-node buttons

    def _controls(self) -> w.Widget:
        try:
            names = [n.name for n in self.cluster.nodes]
        except Exception as exc:
            self.message.value = f"<span style='color:#d64541'>✘ {escape(str(exc))}</span>"
            return w.HBox([])
        small = {"layout": w.Layout(width="auto"), "style": {"font_size": "11px"}}
        rows = []
        for name in names:
            power, network = w.Button(**small), w.Button(**small)
            power.on_click(lambda _, n=name: self.act(n, "power"))
            network.on_click(lambda _, n=name: self.act(n, "network"))
            self.buttons[name] = (power, network)
            self._label(name)
            label = w.HTML(f"<code>{escape(name)}</code>", layout=w.Layout(width="80px"))
            rows.append(w.HBox([label, power, network], layout=w.Layout(margin="0 18px 2px 0")))
        return w.HBox(rows, layout=w.Layout(flex_flow="row wrap"))

    def _label(self, name: str) -> None:
        """Each button offers the opposite of the node's state now (start when it is off, ...)."""
        power, network = self.buttons[name]
        try:
            node = self.cluster[name]
            off = node.container_state() not in ("running", "paused", "restarting")
            cut = node.network_state() == "disconnected"
        except Exception:  # unknown state: offer the failure; the backend's answer is shown either way
            off, cut = False, False
        power.description, power.icon = ("start", "play") if off else ("stop", "power-off")
        network.description, network.icon = ("connect", "plug") if cut else ("disconnect", "unlink")

    def act(self, name: str, what: str) -> None:
        """Press NAME's power or network button: one backend call, its line (or error) shown below the map."""
        power, network = self.buttons[name]
        button = power if what == "power" else network
        verb = button.description
        button.disabled = True
        self.message.value = f"<i>{escape(verb)} {escape(name)}…</i>"
        try:
            backend = self.cluster.backend
            if what == "power":
                line = backend.power(name, verb == "start", lambda _: None)
            else:
                line = backend.partition(name, verb == "connect", lambda _: None)
            self.message.value = f"<span>{inline_md(line)}</span>"
        except Exception as exc:  # a button never raises into the void
            self.message.value = f"<span style='color:#d64541'>✘ {inline_md(str(exc))}</span>"
        finally:
            button.disabled = False
            self._label(name)
        self.redraw()

    def _loop(self, live_for: float, interval: float) -> None:
        deadline = time.monotonic() + live_for
        while not self._stop.wait(interval) and time.monotonic() < deadline:
            self.redraw()

    def stop(self) -> None:
        self._stop.set()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = dict(super()._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = diagrams.tasks_text(self.nodes)
        still = self.value if self.value.startswith("<svg") else diagrams.tasks_svg([])
        bundle["text/html"] = diagrams.html_img(still, "tasks per node")  # what a headless run records
        return bundle
