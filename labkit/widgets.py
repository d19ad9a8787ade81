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
from labkit.runner import apply_solution, run_check


def result_text(ref: str, result: Result | None, question: bool = False) -> str:
    """One line for the record: PASS/FAIL and the summary (no evidence, which varies run to run)."""
    if result is None:
        return f"… {ref}: not checked yet"
    if result.passed:
        return f"PASS {ref}: {result.summary}"
    waiting = ("Run the command(s), then answer", "Predict, run the command(s), then answer")
    mark = "?" if question and result.summary.startswith(waiting) else "FAIL"
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
                             description="Answer:", layout=w.Layout(width="420px"))
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
                          description="Predict:", layout=w.Layout(width="420px"))
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


class ClusterMap(w.HTML):  # type: ignore[misc]
    """Nodes and the tasks on them, coloured by state, redrawn every second while it is live."""

    def __init__(self, cluster: Cluster, live_for: float = 600.0, interval: float = 1.0) -> None:
        super().__init__()
        self.cluster = cluster
        self._stop = threading.Event()
        self.redraw()
        if live_for > 0:
            threading.Thread(target=self._loop, args=(live_for, interval), daemon=True).start()

    def redraw(self) -> None:
        try:
            self.nodes = diagrams.snapshot(self.cluster)
            self.value = diagrams.tasks_svg(self.nodes)
        except Exception as exc:  # a map that cannot read the cluster says so and keeps trying
            self.nodes = []
            self.value = f"<i>cluster map: cannot read the cluster ({escape(str(exc)[:120])})</i>"

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
