"""A learner's progress: which steps passed, and the answers given. Kept per lab
in a small JSON file, written atomically so a crash never loses it."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from labkit.settings import settings

KEPT = "_kept"  # in the progress file: values a lab keeps for the learner (never a step ref: those hold ':')


class Progress:
    def __init__(self, lab: str, directory: Path | None = None) -> None:
        self.path = (directory or settings().state_dir) / f"progress-{lab}.json"

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}  # no file yet, or a damaged one: start afresh rather than fail

    def _save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".progress-")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    def get(self, ref: str) -> dict[str, Any]:
        return dict(self._load().get(ref, {}))

    def answer(self, ref: str) -> str | None:
        value = self.get(ref).get("answer")
        return value if isinstance(value, str) else None

    def record(self, ref: str, passed: bool | None = None, answer: str | None = None) -> None:
        data = self._load()
        entry = dict(data.get(ref, {}))
        if answer is not None:
            entry["answer"] = answer
        if passed is not None:
            entry["passed"] = passed or bool(entry.get("passed"))  # once done, done
            entry["at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        data[ref] = entry
        self._save(data)

    def passed(self, ref: str) -> bool:
        return bool(self.get(ref).get("passed"))

    def keep(self, name: str, value: Any) -> None:
        """Keep VALUE (JSON) under NAME for this lab, on this computer, outside every node: e.g. a swarm's
        unlock key, which must not sit on the manager it unlocks (the autolock lab)."""
        data = self._load()
        data[KEPT] = {**(data.get(KEPT) if isinstance(data.get(KEPT), dict) else {}), name: value}
        self._save(data)

    def kept(self, name: str) -> Any:
        """What was kept under NAME (None if nothing was)."""
        kept = self._load().get(KEPT)
        return kept.get(name) if isinstance(kept, dict) else None

    def entries(self, refs: list[str]) -> dict[str, Any]:
        """What is recorded for REFS, and the kept values: to be put back later with ``restore``."""
        data = self._load()
        return {ref: data[ref] for ref in [*refs, KEPT] if ref in data}

    def restore(self, entries: dict[str, Any]) -> None:
        """Put back ENTRIES (from ``entries``); the kept values become theirs (they describe the cluster
        put back with them: a swarm's unlock keys), none if they have none."""
        data = self._load()
        data.pop(KEPT, None)
        data.update(entries)
        self._save(data)

    def forget_kept(self) -> None:
        """Forget the kept values: they described a cluster that is gone (a fresh one is made)."""
        data = self._load()
        if data.pop(KEPT, None) is not None:
            self._save(data)

    def forget(self, refs: list[str]) -> None:
        data = self._load()
        for ref in refs:
            data.pop(ref, None)
        self._save(data)


def log_exception(what: str, exc: BaseException) -> Path:
    """Append EXC (with its traceback) to labkit's log for bug reports; return the log's path.
    What a learner sees stays plain words; the details are kept here."""
    import traceback

    path = settings().state_dir / "labkit.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as log:
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {what}\n")
            log.write("".join(traceback.format_exception(exc)))
    except OSError:
        pass  # a log that cannot be written must not turn into a second failure
    return path
