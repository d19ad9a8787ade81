"""The shape labkit keeps as it grows: layers without cycles, backends as data, one errors module,
settings read when asked, a small public surface. Pure source reading: no engine needed."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import labkit
from labkit import errors
from labkit.backends import BACKENDS, Backend, backend_class, get_backend
from labkit.errors import InvalidInput, LabkitError
from labkit.settings import VARIABLES, HubSettings, Settings
from labkit.topology import lab_name
from tests.conftest import NEEDS_MORE

PACKAGE = Path(labkit.__file__).parent
ROOT = PACKAGE.parent

# Bottom to top; an import runs down this list (or within a layer), never up. ../shared/STYLE.md.
LAYERS: list[set[str]] = [
    {"errors", "client", "settings", "report", "topology", "aptsources", "progress", "outbox", "agent_tasks",
     "raft_leader"},
    {"engine", "engine_state", "images", "box", "hub", "swarm", "kernel"},
    {"backends", "backends.base", "backends.arp_hold", "backends.tcp_sockets", "backends.dind_states", "backends.dind",
     "backends.vagrant"},
    {"cluster", "seat", "hosted"},
    {"labs", "fields"},
    {"checks", "checks.base", "checks.pki", "checks.placement", "checks.services", "checks.swarm",
     "checks.updates", "checks.failures", "checks.networks", "checks.configs", "checks.autolock",
     "checks.stacks", "checks.secrets", "checks.managers", "checks.health", "checks.trust", "diagrams"},
    {"runner", "rewind"},
    {"cli", "nb", "widgets", "notebook_build", "doctor", "__main__", "", "room", "room.store", "room.board",
     "room.server", "room.client"},
]


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every labkit module NAME imports, at the top or inside functions (lazy imports count)."""
    found = set()
    package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
                base = "labkit" + ("." + base if base else "")
            short_base = base.removeprefix("labkit").lstrip(".")
            targets = [f"{base}.{a.name}" if f"{short_base}.{a.name}".lstrip(".") in known else base
                       for a in node.names]
        for target in targets:
            if not (target == "labkit" or target.startswith("labkit.")):
                continue
            short = target.removeprefix("labkit").lstrip(".")
            while short and short not in known:
                short = short.rpartition(".")[0]
            if short != name and (short in known):
                found.add(short)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def layer(module: str) -> int:
    for i, members in enumerate(LAYERS):
        if module in members:
            return i
    raise AssertionError(f"labkit.{module} has no layer in tests/test_structure.py: put it in LAYERS")


def test_every_module_has_a_layer() -> None:
    for name in modules():
        layer(name)


def test_imports_run_down_the_layers_never_up() -> None:
    upward = [f"labkit.{m} (layer {layer(m)}) imports labkit.{t} (layer {layer(t)})"
              for m, targets in graph().items() for t in targets
              if layer(t) > layer(m) and m != ""]  # the package's __init__ re-exports the public surface
    assert not upward, "\n".join(upward)


def test_no_import_cycles() -> None:
    g = {m: {t for t in ts if t != ""} for m, ts in graph().items() if m != ""}
    seen: dict[str, int] = {}  # 1 visiting, 2 done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(g[node]):
            if seen.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt):], nxt]))
            elif nxt not in seen:
                visit(nxt, [*path, nxt])
        seen[node] = 2

    for start in sorted(g):
        if start not in seen:
            visit(start, [start])
    assert not cycles, cycles


def test_the_cycle_finder_finds_a_cycle(tmp_path: Path) -> None:
    """The walk above must be able to fail: a lazy import inside a function counts."""
    (tmp_path / "a.py").write_text("from labkit import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from labkit.a import x\n")
    known = {"a": tmp_path / "a.py", "b": tmp_path / "b.py"}
    assert imports_of("a", known["a"], known) == {"b"}
    assert imports_of("b", known["b"], known) == {"a"}


# ---------------------------------------------------------------- backends as data


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_every_backend_in_the_table_imports(name: str) -> None:
    cls = backend_class(name)
    assert issubclass(cls, Backend)
    assert cls.name == name
    assert isinstance(get_backend(name, "t"), cls)


def test_an_unknown_backend_is_refused_with_the_choices() -> None:
    with pytest.raises(InvalidInput, match="dind, vagrant"):
        backend_class("qemu")


def test_the_cli_help_names_every_backend() -> None:
    from labkit.cli import app

    help_text = CliRunner().invoke(app, ["status", "--help"], env={"COLUMNS": "200"}).output
    for name in BACKENDS:
        assert name in help_text


# ---------------------------------------------------------------- errors


def test_every_exception_lives_in_errors_and_descends_from_labkit_error() -> None:
    elsewhere = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(b, ast.Name) and (b.id.endswith(("Error", "Exception")) or b.id in vars(errors))
                for b in node.bases
            ) and name != "errors":
                elsewhere.append(f"labkit.{name}.{node.name}")
    assert not elsewhere, f"exceptions outside labkit/errors.py: {elsewhere}"
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__]
    assert len(classes) >= 10
    for cls in classes:
        assert issubclass(cls, LabkitError)
        assert cls.__name__ in (errors.__doc__ or ""), f"{cls.__name__} is missing from the tree in errors.py"


def test_node_down_says_which_node_and_what_to_do() -> None:
    down = errors.NodeDown("worker2", "stopped", "citest")
    assert (down.node, down.state) == ("worker2", "stopped")
    assert "worker2 is stopped" in str(down) and "`labkit up --lab citest`" in str(down)
    assert "--lab" not in str(errors.NodeDown("worker2", "paused"))


# ---------------------------------------------------------------- settings


def test_settings_read_every_variable() -> None:
    env = {"LABKIT_LAB": "l2", "LABKIT_BACKEND": "vagrant", "LABKIT_STATE_DIR": "/s", "LABKIT_RUN_DIR": "/r",
           "LABKIT_CACHE": "/c", "LABKIT_DEBIAN_MIRROR": "http://m/debian", "LABKIT_LABS": "/labs",
           "LABKIT_NOTEBOOKS": "/nb", "LABKIT_VAGRANT_DIR": "/v",
           "LABKIT_VAGRANT_PROVIDER": "docker", "LABKIT_STRICT": "1", "LABKIT_ROOM_URL": "http://room:8765",
           "JUPYTERHUB_API_TOKEN": "hub-token", "HOME": "/home/x"}
    s = Settings.from_env(env, euid=1000)
    assert (s.lab, s.backend, s.debian_mirror, s.strict) == ("l2", "vagrant", "http://m/debian", True)
    assert s.vagrant_provider == "docker"
    assert (s.room_url, s.hub_token) == ("http://room:8765", "hub-token")
    assert [str(p) for p in (s.state_dir, s.run_dir, s.cache_dir, s.labs_dir, s.notebooks_dir, s.vagrant_dir)] == [
        "/s", "/r", "/c", "/labs", "/nb", "/v"]
    hub_env = {"LABKIT_HUB_PORT": "8123", "LABKIT_HUB_ADMIN_TOKEN": "t", "LABKIT_HUB_PASSWORD": "p",
               "LABKIT_HUB_MODE": "fallback", "LABKIT_HUB_MEMORY": "2g", "LABKIT_HUB_PIDS": "99",
               "LABKIT_HUB_IDLE": "7200"}
    assert HubSettings.from_env(hub_env) == HubSettings(8123, "t", "p", "fallback", "2g", 99, 7200)
    assert set(VARIABLES) == {k for k in {**env, **hub_env} if k.startswith("LABKIT_")}


def test_settings_defaults() -> None:
    s = Settings.from_env({"HOME": "/home/x"}, euid=1000)
    assert s.lab is None and s.backend == "dind" and not s.strict and s.vagrant_provider is None
    assert s.state_dir == Path("/home/x/.local/share/labkit")
    assert s.run_dir == Path("/home/x/.local/state/labkit/run")
    assert Settings.from_env({"HOME": "/root"}, euid=0).run_dir == Path("/run/labkit")
    assert s.labs_dir == ROOT / "labs"


def test_settings_are_read_when_asked_not_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_LAB", "first")
    assert lab_name() == "first"
    monkeypatch.setenv("LABKIT_LAB", "second")
    assert lab_name() == "second"


def test_the_readme_lists_every_variable() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in VARIABLES:
        assert f"| `{name}` |" in readme, f"{name} is missing from the README's table of variables"


def test_no_module_reads_labkit_variables_but_settings() -> None:
    for name, path in modules().items():
        if name != "settings":
            text = path.read_text()
            assert 'environ.get("LABKIT_' not in text and 'getenv("LABKIT_' not in text, f"labkit.{name}"


# ---------------------------------------------------------------- public surface


def test_public_surface_is_pinned() -> None:
    assert sorted(labkit.__all__) == ["Cluster", "LabkitError", "Node", "RunResult", "cluster", "errors"]
    for name in labkit.__all__:
        assert hasattr(labkit, name)


def test_make_unit_leaves_out_exactly_the_tests_that_keep_out_of_the_learners_state_folder_no_more() -> None:
    """The markers of tests that need more than Python are named twice: the Makefile's UNIT_MARKERS (what
    `make unit` leaves out) and conftest's NEEDS_MORE (who may use the learner's state folder); they agree."""
    line = next(line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("UNIT_MARKERS"))
    assert set(re.findall(r"\w+", line.split("not", 1)[1])) - {"or"} == set(NEEDS_MORE)
