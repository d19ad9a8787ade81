"""An image build that fails half-way starts afresh on the next run (no engine needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labkit import images
from labkit.errors import ImageBuildError

FAKE = """#!/bin/sh
# stands in for debootstrap: $4 is the target directory
mkdir -p "$4/usr/local/bin" "$4/etc"
echo partial > "$4/half-written"
[ -f "{ok}" ] || {{ echo "E: Couldn't download packages" ; exit 1; }}
rm -f "$4/half-written"
echo done > "$4/complete-tree"
"""


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="the build needs root, as debootstrap does")
def test_failed_debootstrap_is_reported_and_the_rerun_starts_afresh(tmp_path: Path, monkeypatch) -> None:
    bin_dir, ok = tmp_path / "bin", tmp_path / "ok"
    bin_dir.mkdir()
    fake = bin_dir / "debootstrap"
    fake.write_text(FAKE.format(ok=ok))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("LABKIT_DEBIAN_MIRROR", "http://mirror.test/debian")
    ran = []
    monkeypatch.setattr(images, "run_in_root", lambda root, script, log: ran.append(script.name))
    build = tmp_path / "build"

    with pytest.raises(ImageBuildError, match="starts it afresh") as failure:
        images._rootfs(build, lambda _: None)
    assert "Couldn't download packages" in str(failure.value)
    assert not (build / "rootfs.complete").exists()

    ok.touch()
    rootfs = images._rootfs(build, lambda _: None)
    assert (build / "rootfs.complete").exists()
    assert (rootfs / "complete-tree").exists()
    assert not (rootfs / "half-written").exists(), "the half-built tree must not be reused"
    assert (rootfs / images.ENTRYPOINT.lstrip("/")).stat().st_mode & 0o111
    assert ran == ["install-engine.sh"], "the engine is installed by the script Vagrant runs too"
