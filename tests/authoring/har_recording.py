"""Real browser recordings of the demo target: Chromium (through Playwright) saves HAR files.

Two journeys, each with the page's static assets and one request to a second loopback host
(`other_host`: a plain `http.server` on 127.0.0.2) that the import must drop:
- `login.har`: the /app page's form login (session cookie), then cookie-authenticated API calls;
- `token.har`: a token login (`POST /api/token`), then API calls with `Authorization: Bearer`.
The checked-in fixtures in tests/authoring/har/ were made with `python -m tests.authoring.har_recording
tests/authoring/har` (it starts its own demo target); tests also record fresh ones when Chromium is here.
All traffic is loopback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OTHER_HOST = "127.0.0.2"
TIMEOUT_MS = 15_000
# Demo credentials (the demo accepts NAME / NAME-pw): the import must never write them.
LOGIN_USER, LOGIN_PASSWORD = "alice", "alice-pw"
TOKEN_USER, TOKEN_PASSWORD = "bob", "bob-pw"

CREATE_AND_READ = """async (other) => {
  await fetch('/api/me');
  const made = await (await fetch('/api/items', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                                  body: JSON.stringify({name: 'from the browser'})})).json();
  await new Promise(ok => setTimeout(ok, 200));   // think time
  await fetch('/api/items/' + made.id);
  await fetch(other + '/beacon.json?page=items', {mode: 'no-cors'});
}"""
TOKEN_FLOW = """async ([other, user, password]) => {
  const login = await (await fetch('/api/token', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                                   body: JSON.stringify({username: user, password: password})})).json();
  const auth = {'Authorization': 'Bearer ' + login.access_token};
  await new Promise(ok => setTimeout(ok, 150));
  await fetch('/api/me', {headers: auth});
  await fetch('/api/items?limit=3', {headers: {...auth, 'Accept': 'application/json'}});
  const made = await (await fetch('/api/items', {method: 'POST', headers: {...auth, 'Content-Type': 'application/json'},
                                                  body: JSON.stringify({name: 'with a token'})})).json();
  await fetch('/api/items/' + made.id, {headers: auth});
  await fetch(other + '/beacon.json', {mode: 'no-cors'});
}"""


def chromium() -> str | None:
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return None
    return path


@contextmanager
def other_host() -> Iterator[str]:
    """A second loopback HTTP server (127.0.0.2, any free port); its URL."""
    code = ("import http.server; s = http.server.HTTPServer(('127.0.0.2', 0), "
            "http.server.SimpleHTTPRequestHandler); print(s.server_address[1], flush=True); s.serve_forever()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, cwd="/var/empty" if os.path.isdir("/var/empty") else "/")
    try:
        assert proc.stdout is not None
        yield f"http://{OTHER_HOST}:{proc.stdout.readline().strip()}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def record(base_url: str, out_dir: Path, browser_path: str) -> dict[str, Path]:
    """Record both journeys against the demo target at `base_url`; their HAR files by name."""
    from playwright.sync_api import sync_playwright

    files = {"login": out_dir / "login.har", "token": out_dir / "token.har"}
    with other_host() as other, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=browser_path, args=CHROMIUM_FLAGS, timeout=30_000)
        try:
            _journey(browser, files["login"], base_url, lambda page: _form_login(page, other))
            _journey(browser, files["token"], base_url,
                     lambda page: page.evaluate(TOKEN_FLOW, [other, TOKEN_USER, TOKEN_PASSWORD]))
        finally:
            browser.close()
    return files


def _journey(browser, har: Path, base_url: str, steps) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(record_har_path=str(har))
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(base_url + "/app")  # the page, its stylesheet, script and image
        steps(page)
    finally:
        context.close()  # writes the HAR file


def _form_login(page, other: str) -> None:  # type: ignore[no-untyped-def]
    page.fill("input[name=username]", LOGIN_USER)
    page.fill("input[name=password]", LOGIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/login")
    page.evaluate(CREATE_AND_READ, other)


if __name__ == "__main__":
    from workload.demo.launcher import start_demo_target

    browser_path = chromium()
    if browser_path is None:
        sys.exit("no Chromium or playwright here")
    target = start_demo_target()
    try:
        for name, path in record(target.http_url, Path(sys.argv[1]), browser_path).items():
            print(name, path)
    finally:
        target.stop()
