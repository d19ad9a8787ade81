"""The room's dashboard in a real browser (Debian's chromium, driven by playwright): an attendee runs
`labkit check` in a terminal and the instructor's projector shows it within a second, without a reload."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, is_local
from tests.test_room import RoomProcess, room  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser]
SCREENSHOT = ARTIFACTS / "room-dashboard.png"


def attendee_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`labkit` as an attendee whose lab is not running here (no engine): their check fails, plainly."""
    env = {**os.environ, "LABKIT_STATE_DIR": str(home), "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    return subprocess.run([sys.executable, "-m", "labkit", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_the_dashboard_shows_a_check_within_a_second(room: RoomProcess, tmp_path: Path) -> None:  # noqa: F811
    if not CHROMIUM.exists():
        pytest.fail("chromium is missing (`make test` installs it; Debian: apt-get install chromium)")
    home = tmp_path / "ada"
    joined = attendee_cli(home, "room", "join", room.url, "--code", room.code, "--name", "Ada")
    assert joined.returncode == 0, joined.stderr
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1600, "height": 700})
            context.route(lambda url: not is_local(url), lambda route: route.abort())
            page = context.new_page()
            page.goto(room.dashboard)
            assert "token=" not in page.url  # the token left the address bar for a cookie
            expect(page.locator("#live")).to_have_text("live", timeout=10_000)
            expect(page.locator("tr[data-name='Ada']")).to_be_visible()
            check = attendee_cli(home, "check", "swarm-init:info", "--answer", "inactive")
            done = time.monotonic()
            assert check.returncode == 1 and "FAIL swarm-init:info" in check.stdout  # no lab here: a plain failure
            cell = page.locator("tr[data-name='Ada'] td.trying")
            expect(cell).to_have_count(1, timeout=1_000)
            seen = time.monotonic() - done
            assert seen < 1.0, f"the dashboard showed the check {seen:.2f} s after it ran"
            expect(page.locator("tr[data-name='Ada'] td.hint")).to_contain_text("labkit")
            expect(page.locator("#count")).to_have_text("1 attendees, 0 stuck")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
