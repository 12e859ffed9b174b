"""The README's page example in headless Chromium, run exactly as written (issue 10, item 3).

From README.md itself (tests/readme.py parses it): the ```html block is saved as the
``example.html`` the README names, next to ``dist/`` (a symlink to the build) in a directory
standing for the checkout's root; the relay, the echo node and the static server start there with
the README's own commands (``bash -c``, ``.venv/bin`` first on PATH), the page's URL is what the
README's ``echo`` line prints, and what the page shows must match the README's ```text block
(``…`` standing for IDs and times). Any page error (a ``SyntaxError`` in the snippet, an
unhandled rejection) fails the test at once. Needs the test network namespace (``./build.sh
test``) for the ``webrtc`` the README's output shows; fails (never skips) without Chromium or the
dist.
"""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

import pytest

from tests import readme
from tests.readme import ShellCommand

from .conftest import report

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

PAGE_WAIT = 180.0  # s for the page to boot Pyodide, reach the node and finish (or fail)
# before any script of the page runs: page errors and unhandled rejections are kept for the test
CATCH_ERRORS = """
window.__readmeErrors = [];
addEventListener("error", (e) => window.__readmeErrors.push(String((e.error && e.error.stack) || e.message)));
addEventListener("unhandledrejection", (e) => window.__readmeErrors.push("unhandled rejection: " + String(e.reason)));
"""
STATE_JS = """
const out = document.getElementById("out");
return JSON.stringify({ out: out ? out.textContent : null, errors: window.__readmeErrors || null });
"""


def html_block() -> readme.Block:
    return readme.only([b for b in readme.blocks() if b.lang == "html"], "```html block")


def shows_block(section: str) -> readme.Block:
    """The ```text block of ``section``: what the README says the page shows."""
    found = [b for b in readme.blocks() if b.lang == "text" and b.section == section]
    return readme.only(found, f"```text block (what the page shows) in '{section}'")


def wait_for_port(host: str, port: int, proc: ShellCommand, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if proc.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on {host}:{port}: {proc.describe()}") from None
            time.sleep(0.1)


def test_the_readme_page_example_gets_the_echo_back(browser_dist, chromium, tmp_path) -> None:
    html = html_block()
    (tmp_path / "example.html").write_text(html.code)
    (tmp_path / "dist").symlink_to(browser_dist)  # "next to dist/ (in this checkout's root)"
    procs: list[ShellCommand] = []
    driver = chromium
    home = driver.current_window_handle
    script_id = None
    try:
        relay = ShellCommand(readme.command("darkswap-relay"), tmp_path)
        procs.append(relay)
        relay.read_lines(2)
        node = ShellCommand(readme.command("darkswap-node"), tmp_path)
        procs.append(node)
        node.read_lines(3)  # printed once its reservation on the relay is up
        url_cmd = ShellCommand(readme.command('echo "http://'), tmp_path)
        assert url_cmd.wait(60) == 0, url_cmd.describe()
        url = url_cmd.lines[-1]
        assert node.lines[0].endswith(url.rsplit("&peer=", 1)[-1]), (url, node.lines)
        server = ShellCommand(readme.command("python -m http.server"), tmp_path)
        procs.append(server)
        where = urlsplit(url)
        wait_for_port(where.hostname, where.port, server)

        driver.switch_to.new_window("window")
        script_id = driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CATCH_ERRORS})
        t0 = time.monotonic()
        driver.get(url)
        state: dict = {}
        while time.monotonic() - t0 < PAGE_WAIT:
            state = json.loads(driver.execute_script(STATE_JS))
            text = state["out"] or ""
            if state["errors"] or "\nerror " in "\n" + text or text.rstrip().endswith("closed"):
                break
            time.sleep(0.25)
        console = [f"{e.get('level')}: {e.get('message')}" for e in driver.get_log("browser")][-30:]
        diag = f"page {url}\nshows:\n{state.get('out')}\nconsole:\n" + "\n".join(console)
        assert state.get("errors") == [], f"page errors: {state.get('errors')}\n{diag}"
        shows = shows_block(html.section)
        assert readme.matches(shows.code, state["out"] or ""), f"the README says the page shows\n{shows.code}\n{diag}"
        report(f"README page example: boot, connect, WebRTC and echo in {time.monotonic() - t0:.1f} s")
    finally:
        if script_id is not None:
            driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": script_id["identifier"]})
        if driver.current_window_handle != home:
            driver.close()
            driver.switch_to.window(home)
        codes = [p.stop() for p in reversed(procs)]
    assert all(c in (0, -15) for c in codes), codes  # http.server dies of SIGTERM (-15), the CLIs exit 0
