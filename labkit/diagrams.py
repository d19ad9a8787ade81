"""SVG drawings of the live cluster: the swarm's topology and where tasks run.

Pure functions from plain data to SVG text, so they are testable without an
engine; ``snapshot()`` reads that data from the cluster.
"""

from __future__ import annotations

import itertools
import urllib.parse
from dataclasses import dataclass, field
from html import escape
from typing import Any

from labkit.cluster import Cluster

STATE_COLOURS = {
    "running": "#2e9d4f", "starting": "#e0a800", "preparing": "#e0a800", "assigned": "#e0a800",
    "pending": "#e0a800", "ready": "#e0a800", "new": "#e0a800", "accepted": "#e0a800",
    "failed": "#d64541", "rejected": "#d64541", "orphaned": "#d64541",
    "shutdown": "#9aa0a6", "complete": "#9aa0a6", "remove": "#9aa0a6",
}


@dataclass(frozen=True)
class Task:
    service: str
    slot: int
    state: str
    desired: str


@dataclass
class NodeView:
    name: str
    role: str  # manager | worker (the lab's plan)
    address: str
    swarm_role: str = "-"  # leader | manager | worker | - (not in the swarm)
    ready: bool = True
    tasks: list[Task] = field(default_factory=list)


def snapshot(cluster: Cluster) -> list[NodeView]:
    """What the cluster looks like now, as the first manager sees it (engines alone before init)."""
    views = {n.name: NodeView(n.name, n.role, n.address) for n in cluster.nodes}
    managers = cluster.managers
    if not managers:
        return list(views.values())
    api = managers[0].docker.api
    if managers[0].docker.info()["Swarm"].get("LocalNodeState") != "active":
        return list(views.values())
    ids = {}
    for n in api.nodes():
        name = n["Description"]["Hostname"]
        ids[n["ID"]] = name
        if name in views:
            leader = n.get("ManagerStatus", {}).get("Leader")
            views[name].swarm_role = "leader" if leader else n["Spec"]["Role"]
            views[name].ready = n["Status"]["State"] == "ready"
    names = {s["ID"]: s["Spec"]["Name"] for s in api.services()}
    for t in api.tasks():
        node = ids.get(t.get("NodeID", ""))
        if node in views and t["ServiceID"] in names and t["Status"]["State"] in STATE_COLOURS:
            views[node].tasks.append(Task(names.get(t["ServiceID"], "?"), int(t.get("Slot") or 0),
                                          t["Status"]["State"], t["DesiredState"]))
    return list(views.values())


def _svg(width: int, height: int, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">'
            + "".join(body) + "</svg>")


def _text(x: float, y: float, text: str, **attrs: str) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return f'<text x="{x:.0f}" y="{y:.0f}"{extra}>{escape(text)}</text>'


def topology_svg(nodes: list[NodeView]) -> str:
    """Managers on top (Raft among them), workers below, mutual-TLS links between the tiers."""
    managers = [n for n in nodes if n.role == "manager"]
    workers = [n for n in nodes if n.role == "worker"]
    box_w, box_h, gap = 150, 54, 30
    width = max(len(managers), len(workers), 1) * (box_w + gap) + gap
    height = 300
    in_swarm = any(n.swarm_role != "-" for n in nodes)

    def xs(count: int) -> list[float]:
        total = count * box_w + (count - 1) * gap
        start = (width - total) / 2
        return [start + i * (box_w + gap) for i in range(count)]

    body: list[str] = []
    top, bottom = 60, 210
    mx, wx = xs(len(managers)), xs(len(workers))
    joined_workers = [(x, w) for x, w in zip(wx, workers, strict=True) if w.swarm_role != "-"]
    for x, _ in joined_workers:  # control plane: each worker talks to the managers over mutual TLS
        for m_x, m in zip(mx, managers, strict=True):
            if m.swarm_role != "-":
                body.append(f'<line x1="{x + box_w / 2:.0f}" y1="{bottom}" x2="{m_x + box_w / 2:.0f}" '
                            f'y2="{top + box_h}" stroke="#5b8def" stroke-dasharray="4 3"/>')
    if joined_workers:
        mid = (top + box_h + bottom) / 2
        body.append(f'<rect x="{width / 2 - 85:.0f}" y="{mid - 10:.0f}" width="170" height="18" fill="white"/>')
        body.append(_text(width / 2, mid + 4, "mutual TLS (control plane)", text_anchor="middle", fill="#5b8def"))
    swarm_managers = [(x, m) for x, m in zip(mx, managers, strict=True) if m.swarm_role != "-"]
    if len(swarm_managers) > 1:  # Raft consensus among managers
        for (x1, _), (x2, _) in itertools.pairwise(swarm_managers):
            body.append(f'<line x1="{x1 + box_w:.0f}" y1="{top + box_h / 2}" x2="{x2:.0f}" y2="{top + box_h / 2}" '
                        'stroke="#8e44ad" stroke-width="2"/>')
    if swarm_managers:
        label = "Raft consensus among managers" if len(swarm_managers) > 1 else "Raft store (a quorum of one)"
        body.append(_text(width / 2, top - 18, label, text_anchor="middle", fill="#8e44ad"))
    for x, n in [*zip(mx, managers, strict=True), *zip(wx, workers, strict=True)]:
        y = top if n.role == "manager" else bottom
        colour = "#8e44ad" if n.swarm_role in ("leader", "manager") else ("#2e7d9a" if n.swarm_role == "worker"
                                                                            else "#9aa0a6")
        body.append(f'<rect x="{x:.0f}" y="{y}" width="{box_w}" height="{box_h}" rx="8" fill="white" '
                    f'stroke="{colour}" stroke-width="2"/>')
        body.append(_text(x + box_w / 2, y + 20, n.name + (" ★" if n.swarm_role == "leader" else ""),
                          text_anchor="middle", font_weight="bold"))
        role = {"leader": "manager (leader)", "-": "not in a swarm"}.get(n.swarm_role, n.swarm_role)
        body.append(_text(x + box_w / 2, y + 36, role, text_anchor="middle", fill=colour))
        body.append(_text(x + box_w / 2, y + 50, n.address, text_anchor="middle", fill="#555", font_size="10"))
    if not in_swarm:
        body.append(_text(width / 2, height - 12, "Separate engines: no swarm yet (docker swarm init starts one)",
                          text_anchor="middle", fill="#555"))
    return _svg(width, height, body)


def tasks_svg(nodes: list[NodeView]) -> str:
    """One column per node; each task a box coloured by its state (like the swarm visualizer)."""
    col_w, box_h, gap = 170, 22, 12
    rows = max((len(n.tasks) for n in nodes), default=0)
    width = len(nodes) * (col_w + gap) + gap
    height = 60 + max(rows, 1) * (box_h + 6) + 40
    body: list[str] = []
    for i, n in enumerate(nodes):
        x = gap + i * (col_w + gap)
        body.append(f'<rect x="{x}" y="8" width="{col_w}" height="{height - 44}" rx="8" fill="#f6f8fa" '
                    f'stroke="{"#ccc" if n.ready else "#d64541"}"/>')
        body.append(_text(x + col_w / 2, 28, n.name, text_anchor="middle", font_weight="bold"))
        role = {"leader": "manager ★", "-": "not in swarm"}.get(n.swarm_role, n.swarm_role)
        body.append(_text(x + col_w / 2, 44, role, text_anchor="middle", fill="#555", font_size="10"))
        tasks = sorted(n.tasks, key=lambda t: (t.desired != "running", t.service, t.slot))
        for j, t in enumerate(tasks):
            y = 56 + j * (box_h + 6)
            colour = STATE_COLOURS.get(t.state, "#9aa0a6")
            body.append(f'<rect x="{x + 8}" y="{y}" width="{col_w - 16}" height="{box_h}" rx="4" fill="{colour}"/>')
            body.append(_text(x + 14, y + 15, f"{t.service}.{t.slot}  {t.state}", fill="white"))
    legend = [("running", "#2e9d4f"), ("starting", "#e0a800"), ("failed", "#d64541"), ("shut down", "#9aa0a6")]
    for k, (label, colour) in enumerate(legend):
        x = gap + k * 95
        body.append(f'<rect x="{x}" y="{height - 22}" width="12" height="12" fill="{colour}"/>')
        body.append(_text(x + 16, height - 12, label, fill="#555", font_size="11"))
    return _svg(width, height, body)


def tasks_text(nodes: list[NodeView]) -> str:
    """The same map as plain text (for terminals and headless runs)."""
    lines = []
    for n in nodes:
        running = sorted(f"{t.service}.{t.slot}" for t in n.tasks if t.state == "running")
        other = sorted(f"{t.service}.{t.slot} {t.state}" for t in n.tasks if t.state != "running")
        lines.append(f"{n.name:10} {', '.join(running) or '-'}" + (f"  ({'; '.join(other)})" if other else ""))
    return "\n".join(lines)


def topology_text(nodes: list[NodeView]) -> str:
    """The topology as one line per node (for terminals and as a picture's alternative text)."""
    roles = {"leader": "manager, leader", "-": "not in a swarm"}
    return "\n".join(f"{n.name:10} {roles.get(n.swarm_role, n.swarm_role)}" for n in nodes)


class Drawing:
    """An SVG shown in notebooks as an <img> (so it renders even in an untrusted notebook), with a text twin."""

    def __init__(self, svg: str, text: str) -> None:
        self.svg, self.text = svg, text

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        return {"text/html": html_img(self.svg, self.text), "text/plain": self.text}


def html_img(svg: str, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="data:image/svg+xml,{urllib.parse.quote(svg, safe="")}">'
