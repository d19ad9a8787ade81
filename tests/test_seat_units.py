"""The seat image's recipe and build context, and seat names: logic that needs no engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit import images, seat
from labkit.errors import InvalidInput


def test_the_seat_recipe_is_its_own_and_covers_what_the_seat_contains(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not any(p.relative_to(images.RECIPES).parts[0] == "seat" for p in images.image_recipe_files())
    files = {p.relative_to(seat.PROJECT).as_posix() for p in seat._project_files()}
    assert {"labkit/seat.py", "labkit/recipes/seat/Dockerfile", "labs/01-swarm-init.toml",
            "notebooks/start.ipynb", "requirements.txt", "pyproject.toml"} <= files
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)
    before = seat.seat_recipe_hash()
    monkeypatch.setattr(images, "recipe_hash", lambda: "another-node-image")
    assert seat.seat_recipe_hash() != before  # a new node image makes a new seat


def test_a_context_for_elsewhere_has_the_dockerfile_the_project_and_no_packages(tmp_path: Path) -> None:
    context = seat.write_context(tmp_path / "ctx", lambda _: None, offline=False)
    dockerfile = (context / "Dockerfile").read_text()
    assert "ARG BASE=debian:bookworm" in dockerfile and "VOLUME /var/lib/docker" in dockerfile
    assert (context / "install-engine.sh").read_bytes() == (images.RECIPES / "install-engine.sh").read_bytes()
    assert (context / "project/labkit/seat.py").is_file() and (context / "project/labs").is_dir()
    assert [p.name for p in (context / "debs").iterdir()] == [".keep"]  # Debian's own sources elsewhere
    assert [p.name for p in (context / "wheels").iterdir()] == [".keep"]  # PyPI elsewhere
    assert not list(context.rglob("__pycache__"))


@pytest.mark.parametrize("bad", ["", "-a", "a b", "a/b", "x" * 41, "ä"])
def test_a_bad_seat_name_is_refused_in_plain_words(bad: str) -> None:
    with pytest.raises(InvalidInput, match="not a seat name"):
        seat._valid(bad)


def test_a_seat_names_its_url_with_its_port_and_token() -> None:
    s = seat.Seat("ada", "running", 8890, "abc", True)
    assert s.url == "http://127.0.0.1:8890/lab/tree/start.ipynb?token=abc"
    assert seat.Seat("ada", "running", None, None, True).url is None
