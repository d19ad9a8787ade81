"""Find the Debian mirror this machine's apt already uses (the node image build needs one).

The mirror is read at run time and never written into the project.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from labkit.errors import ImageBuildError

APT_DIR = Path("/etc/apt")


def _one_line_entries(text: str) -> Iterable[tuple[str, list[str], list[str]]]:
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 3 or words[0] != "deb":
            continue
        if words[1].startswith("["):  # options: deb [arch=amd64 signed-by=...] URI suite comps
            while words and not words[0].endswith("]"):
                words.pop(0)
            words = ["deb", *words[1:]]
        if len(words) >= 3:
            yield words[1], [words[2]], words[3:]


def _deb822_entries(text: str) -> Iterable[tuple[str, list[str], list[str]]]:
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if fields.get("enabled", "yes").lower() == "no" or "deb" not in fields.get("types", "").split():
            continue
        for uri in fields.get("uris", "").split():
            yield uri, fields.get("suites", "").split(), fields.get("components", "").split()


def debian_mirror(suite: str, apt_dir: Path = APT_DIR) -> str:
    """The first configured mirror that serves SUITE's main component."""
    sources: list[tuple[str, list[str], list[str]]] = []
    one_line = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for path in one_line:
        if path.is_file():
            sources.extend(_one_line_entries(path.read_text(errors="replace")))
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        sources.extend(_deb822_entries(path.read_text(errors="replace")))
    for uri, suites, components in sources:
        if suite in suites and "main" in components:
            return uri.rstrip("/")
    raise ImageBuildError(
        f"No Debian mirror for '{suite}' found in {apt_dir}/sources.list(.d). The node image is "
        f"built from Debian packages: add a source for {suite} main, or set LABKIT_DEBIAN_MIRROR."
    )
