"""The web UI in a real browser: pick a scenario and a policy in Locust's start form (both
shown without opening a panel, the policy among the scenario's own), run, read the
Connections tab and watch its charts grow, stop, and find the run's results.

Drives Debian's Chromium (/usr/bin/chromium, installed by `.ci/run`) through the Python
`playwright` package; nothing is downloaded at test time (never `playwright install`).  Skipped,
with the reason, only when that binary or the package is missing.  Loopback traffic only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port, stop_process, wait_until_up

ROOT = Path(__file__).resolve().parents[2]
MAIN = str(ROOT / "workload" / "main.py")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCENARIO, POLICY = "scenarios/https.yaml", "close"
UI_TIMEOUT_MS = 10_000  # any single wait for the page


def _chromium() -> str:
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if not path:
        pytest.skip("no Chromium: apt-get install chromium (done by .ci/run)")
    return path


def _poll(what: str, read: Callable[[], Any], ok: Callable[[Any], bool], timeout: float = 15.0) -> Any:
    """Read until `ok(value)`, at most `timeout` seconds; the last value in the failure message."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = read()
        if ok(value):
            return value
        time.sleep(0.25)
    raise AssertionError(f"{what}: still {value!r} after {timeout:.0f} s")


def _number(text: str | None) -> float:
    cleaned = re.sub(r"[^\d.]", "", text or "")
    return float(cleaned) if cleaned else 0.0


def _column(page: Any, header: str, row_label: str) -> str:
    """The cell under `header` in the visible table's row whose first cell is `row_label`."""
    table = page.locator("table:visible").first
    headers = [h.strip() for h in table.locator("thead th").all_inner_texts()]
    if header not in headers:
        return ""
    row = table.locator("tbody tr").filter(has=page.locator("td", has_text=re.compile(rf"^{row_label}$")))
    if row.count() == 0:
        return ""
    return row.first.locator("td").nth(headers.index(header)).inner_text().strip()


def _table_rows(page: Any) -> dict[str, str]:
    """The visible table's first two columns (Metric, Measured) as a dict."""
    rows = {}
    for tr in page.locator("table:visible tbody tr").all():
        cells = [c.strip() for c in tr.locator("td").all_inner_texts()]
        if len(cells) >= 2:
            rows[cells[0]] = cells[1]
    return rows


@pytest.mark.slow
def test_web_ui_in_chromium_runs_the_chosen_scenario_and_policy(tmp_path, demo_target):
    chromium = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not importable: pip install -e '.[test]'")

    port = free_port()
    ui = f"http://127.0.0.1:{port}"
    results = tmp_path / "results"
    log = (tmp_path / "locust.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", MAIN, "--web-host", "127.0.0.1", "--web-port", str(port),
         "--results-dir", str(results)],
        cwd=ROOT, env={**os.environ, "WORKLOAD_DEMO_TARGET": demo_target.to_env()},
        stdout=log, stderr=subprocess.STDOUT, text=True)
    page = None
    try:
        wait_until_up(ui, proc)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, timeout=30_000)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(UI_TIMEOUT_MS)
                _drive(page, ui, results)
            except BaseException:
                if page is not None:
                    page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                    print(f"screenshot: {tmp_path / 'failure.png'}; locust log: {tmp_path / 'locust.log'}")
                raise
            finally:
                browser.close()
    finally:
        stop_process(proc)
        log.close()


def _enabled_options(page: Any, name: str) -> list[str]:
    return page.locator(f"select[name={name}] option:not([disabled])").evaluate_all("els => els.map(e => e.value)")


def _chart_points(page: Any, series: str) -> int:
    """How many points the Connections tab's chart draws for `series` (0 when not drawn yet)."""
    line = page.locator(f"#workload-charts polyline[data-series={series}]")
    return int(line.first.get_attribute("data-count") or 0) if line.count() else 0


def _drive(page: Any, ui: str, results: Path) -> None:
    page.goto(ui)

    # The start form: users and spawn rate, a run time as a safety bound (the test stops the run
    # itself), then our fields, visible without opening a panel: a <select name=scenario>, and a
    # <select name=policy> offering the chosen scenario's policies only, its default chosen.
    page.locator("input[name=userCount]").fill("2")
    page.locator("input[name=spawnRate]").fill("2")
    page.get_by_role("button", name="Advanced options").click()
    page.locator("input[name=runTime]").fill("60s")
    scenario, policy = page.locator("select[name=scenario]"), page.locator("select[name=policy]")
    scenario.wait_for(state="visible")
    policy.wait_for(state="visible")
    assert scenario.bounding_box()["y"] < policy.bounding_box()["y"]  # the scenario first, then its policy
    assert scenario.input_value() == "scenarios/demo.yaml"
    assert _enabled_options(page, "policy") == ["shared", "close", "fresh", "recycle"]  # demo.yaml's
    assert policy.input_value() == "shared"
    scenario.select_option(SCENARIO)
    https_policies = ["shared", "close", "fresh", "close-untuned", "close-resume"]
    assert _enabled_options(page, "policy") == https_policies  # https.yaml's
    assert policy.input_value() == "shared"  # its default
    policy.select_option(POLICY)
    page.get_by_role("button", name=re.compile("^start$", re.I)).click()

    # Running: the statistics table counts requests (Aggregated row, "# Requests" column).
    page.get_by_role("tab", name="Statistics").click()
    requests_done = _poll("aggregated # Requests in the statistics table",
                          lambda: _number(_column(page, "# Requests", "Aggregated")), lambda n: n > 0)
    assert requests_done > 0

    # The Connections tab, in words: the chosen policy, its expected vs measured connections,
    # connections and TLS handshakes counted; under the table, charts that grow while it runs.
    page.get_by_role("tab", name="Connections").click()
    rows = _poll("Connections tab figures", lambda: _table_rows(page),
                 lambda r: _number(r.get("TCP connects")) > 0 and _number(r.get("TLS handshakes completed")) > 0)
    assert rows["Policy"] == POLICY, rows
    assert rows["Connections: expected vs measured"].startswith(
        "close: expected 1 connection per request (closed after it) — measured "), rows
    assert rows["TCP connects"].endswith(" connections"), rows
    first = _poll("connects/s chart points", lambda: _chart_points(page, "connects_per_s"), lambda n: n >= 2)
    _poll("connects/s chart points growing", lambda: _chart_points(page, "connects_per_s"), lambda n: n > first)
    assert _chart_points(page, "time_wait_client") > 0 and _chart_points(page, "time_wait_server") > 0

    # Stop the run from the UI; it writes results/<run-id>/run.json for what was chosen.
    page.get_by_role("button", name=re.compile("^stop$", re.I)).click()
    page.get_by_text(re.compile("^stopped$", re.I)).first.wait_for(timeout=UI_TIMEOUT_MS)  # header status
    [run_file] = _poll("run.json in the results dir", lambda: list(results.glob("*/run.json")), bool)
    run = json.loads(run_file.read_text())
    assert run["scenario"]["name"] == "https" and run["scenario"]["path"] == SCENARIO, run["scenario"]
    assert run["policy"]["name"] == POLICY and run["policy"]["type"] == "close", run["policy"]
    # The form's host field was auto-filled for the previous scenario (the demo's http URL):
    # it must not send the https scenario to the plain-HTTP listener.
    assert run["target"]["urls"][0].startswith("https://"), run["target"]
    assert run["stats"]["total"]["requests"] > 0
    assert run["connections"]["tls_handshakes"] > 0
