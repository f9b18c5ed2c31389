"""`workload import-har` on real Chromium recordings of the demo target (tests/authoring/har/,
made by `tests.authoring.har_recording`; and recorded afresh when Chromium is here).

The scenarios it writes must load, run against the demo target without a failure, and never
contain a secret of the recording (passwords, cookies, tokens, Authorization values)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import yaml

from tests.authoring import har_recording
from tests.helpers import harness, run_tasks
from workload.authoring.harimport import import_har
from workload.cli import main
from workload.errors import ExitCode

FIXTURES = Path(__file__).parent / "har"
CREDENTIALS = {"login": (har_recording.LOGIN_USER, har_recording.LOGIN_PASSWORD),
               "token": (har_recording.TOKEN_USER, har_recording.TOKEN_PASSWORD)}


def _recorded_host(har: Path) -> str:
    first = json.loads(har.read_text())["log"]["entries"][0]["request"]["url"]
    return f"http://{urlsplit(first).netloc}"


def secrets_in(har: Path) -> set[str]:
    """Every secret value the recording holds: credentials sent, cookies, tokens, Authorization."""
    found: set[str] = set()
    for entry in json.loads(har.read_text())["log"]["entries"]:
        request, response = entry["request"], entry["response"]
        for header in request["headers"]:
            if header["name"].lower() == "authorization":
                found |= {header["value"], header["value"].split(" ", 1)[1]}
            if header["name"].lower() == "cookie":
                found |= {part.split("=", 1)[1] for part in header["value"].split("; ")}
        post = request.get("postData", {}).get("text", "")
        pairs = dict(parse_qsl(post)) if "=" in post and not post.startswith("{") else json.loads(post or "{}")
        found |= {v for k, v in pairs.items() if k in ("username", "password")}
        found |= {c["value"] for c in response.get("cookies", [])}
        body = response.get("content", {}).get("text", "")
        if "access_token" in body:
            found.add(json.loads(body)["access_token"])
    return {value for value in found if value}


def _scenario(har: Path) -> dict[str, Any]:
    return yaml.safe_load(import_har(str(har)).text)


def test_a_form_login_recording_becomes_login_and_a_flow_with_a_capture():
    imported = import_har(str(FIXTURES / "login.har"))
    scenario = yaml.safe_load(imported.text)
    assert scenario["login"] == {"form": {"path": "/login", "expect": {"status": 200}, "fields": {
        "username": "${LOGIN_USERNAME}", "password": "${LOGIN_PASSWORD}"}}}
    steps = scenario["flows"][0]["steps"]
    assert [(s.get("method", "GET"), s["path"]) for s in steps] == [
        ("GET", "/app"), ("GET", "/api/me"), ("POST", "/api/items"), ("GET", "/api/items/{{ item_id }}")]
    assert steps[2]["capture"] == {"item_id": {"json": "id"}} and steps[2]["json"] == {"name": "from the browser"}
    assert [s["expect"]["status"] for s in steps] == [200, 200, 201, 200]
    assert scenario["target"] == {"host": _recorded_host(FIXTURES / "login.har")}
    assert imported.env == ["LOGIN_USERNAME", "LOGIN_PASSWORD"]
    other = dict(imported.selection.other_hosts)
    assert list(other) == [n for n in other if n.startswith("127.0.0.2:")] and sum(other.values()) == 1
    assert imported.selection.static == [f"{_recorded_host(FIXTURES / 'login.har')}/static/{name}"
                                         for name in ("app.css", "app.js", "logo.svg")]
    assert 0.1 <= scenario["wait"]["constant"] <= 60  # the recording's pauses, one pass


def test_a_token_recording_becomes_a_token_login_and_drops_its_authorization_header():
    scenario = _scenario(FIXTURES / "token.har")
    assert scenario["login"] == {"token": {"method": "POST", "path": "/api/token", "token": "access_token", "json": {
        "username": "${LOGIN_USERNAME}", "password": "${LOGIN_PASSWORD}"}}}
    steps = scenario["flows"][0]["steps"]
    assert [s["path"] for s in steps] == ["/app", "/api/me", "/api/items", "/api/items", "/api/items/{{ item_id }}"]
    assert steps[2]["query"] == {"limit": "3"} and steps[2]["headers"] == {"Accept": "application/json"}
    assert all("Authorization" not in s.get("headers", {}) for s in steps)


@pytest.mark.parametrize("name", ["login", "token"])
def test_no_secret_of_the_recording_is_written(name):
    har = FIXTURES / f"{name}.har"
    secrets = secrets_in(har)
    assert len(secrets) >= 3  # credentials and at least a cookie or token: the check has something to find
    text = import_har(str(har)).text
    assert [s for s in secrets if s in text] == []


@pytest.mark.parametrize("name", ["login", "token"])
def test_the_imported_scenario_runs_against_the_demo_target(name, demo_target, monkeypatch):
    har = FIXTURES / f"{name}.har"
    user, password = CREDENTIALS[name]
    monkeypatch.setenv("LOGIN_USERNAME", user)
    monkeypatch.setenv("LOGIN_PASSWORD", password)
    # The recording's demo target is gone: the same scenario, pointed at the running one.
    text = import_har(str(har), target=demo_target.http_url).text
    assert yaml.safe_load(text)["target"] == {"host": demo_target.http_url}
    run = harness(text, "shared", demo_target)
    run_tasks(run.users(2), iterations=2)
    assert run.failures() == {} and run.errors() == []
    assert run.requests() == 2 * (1 + 2 * len(yaml.safe_load(text)["flows"][0]["steps"]))  # login + 2 passes


def test_more_hosts_with_host_filter_become_named_hosts():
    har = FIXTURES / "login.har"
    first = urlsplit(_recorded_host(har)).netloc
    other = next(iter(import_har(str(har)).selection.other_hosts))
    scenario = yaml.safe_load(import_har(str(har), host_filter=[first, other]).text)
    name = "127_0_0_2_" + other.rsplit(":", 1)[1]
    assert scenario["target"]["hosts"] == {name: f"http://{other}"}
    beacon = scenario["flows"][0]["steps"][-1]
    assert beacon == {"host": name, "path": "/beacon.json", "query": {"page": "items"}, "expect": {"status": 404}}


def test_keep_static_keeps_the_assets():
    steps = _scenario_steps(import_har(str(FIXTURES / "login.har"), keep_static=True).text)
    assert [p for p in steps if p.startswith("/static/")] == ["/static/app.css", "/static/app.js", "/static/logo.svg"]


def _scenario_steps(text: str) -> list[str]:
    return [s["path"] for s in yaml.safe_load(text)["flows"][0]["steps"]]


def test_the_command_writes_next_to_the_caller_and_never_overwrites(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    har = str(FIXTURES / "login.har")
    assert main(["import-har", har]) == ExitCode.OK
    err = capsys.readouterr().err
    assert err.startswith("wrote login.yaml: 4 steps in one flow; login: form (POST /login); captures: item_id\n"
                          "  dropped: requests to hosts not declared (--host-filter): 127.0.0.2:")
    assert err.endswith("  dropped: 3 static assets (--keep-static keeps them)\n"
                        "  set before running: LOGIN_USERNAME=... LOGIN_PASSWORD=...\n")
    before = (tmp_path / "login.yaml").read_text()
    assert main(["import-har", har, "--keep-static"]) == ExitCode.BAD_INPUT
    assert capsys.readouterr().err == ("workload: login.yaml: error: the file already exists; it was left as it is\n"
                                       "    fix: give another file with -o FILE, or delete it first\n")
    assert (tmp_path / "login.yaml").read_text() == before
    assert main(["import-har", har, "--keep-static", "--force"]) == ExitCode.OK
    assert "/static/app.css" in (tmp_path / "login.yaml").read_text()


def test_the_written_file_passes_workload_check(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGIN_USERNAME", "alice")
    monkeypatch.setenv("LOGIN_PASSWORD", "alice-pw")
    out = tmp_path / "token.yaml"
    assert main(["import-har", str(FIXTURES / "token.har"), "-o", str(out)]) == ExitCode.OK
    assert main(["check", "--strict", str(out)]) == ExitCode.OK


@pytest.mark.slow
def test_a_fresh_chromium_recording_imports_and_runs(tmp_path, demo_target, monkeypatch):
    browser = har_recording.chromium()
    if browser is None:
        pytest.skip("no Chromium or no playwright package: apt-get install chromium (done by .ci/run)")
    files = har_recording.record(demo_target.http_url, tmp_path, browser)
    for name, har in files.items():
        imported = import_har(str(har))
        assert [s for s in secrets_in(har) if s in imported.text] == []
        assert sum(imported.selection.other_hosts.values()) == 1 and len(imported.selection.static) == 3
        user, password = CREDENTIALS[name]
        monkeypatch.setenv("LOGIN_USERNAME", user)
        monkeypatch.setenv("LOGIN_PASSWORD", password)
        run = harness(imported.text, "close", demo_target, file=str(tmp_path / f"{name}.yaml"))
        run_tasks(run.users(2), iterations=1)
        assert run.failures() == {} and run.errors() == [] and run.requests() == 2 * (1 + imported.steps)


def test_recorded_text_is_sent_as_written_and_every_secret_kind_becomes_env(monkeypatch):
    """A hand-written HAR (tests/authoring/har/handwritten.har): template and `${...}` text in
    recorded values, an API key in the query and in a header, cookies the browser already had,
    and a CSRF token one response returns and the next request sends back."""
    from workload.scenario.loader import load_text
    from workload.scenario.templating import Value

    imported = import_har(str(FIXTURES / "handwritten.har"))
    assert imported.env == ["QUERY_API_KEY", "HEADER_X_API_KEY", "COOKIE_PREF", "COOKIE_SID"]
    for secret in ("sk-live-123456", "abcdef123", "zz99xx"):
        assert secret not in imported.text
    for name in imported.env:
        monkeypatch.setenv(name, "x")
    first, second = load_text(imported.text).model.flows[0].steps
    assert Value(first.query["q"]).render({}) == "{{7*7}}" and Value(first.query["h"]).render({}) == "${HOME}"
    assert first.capture["echo_csrf"].json_ == "csrf"
    assert second.headers == {"X-CSRF": "{{ echo_csrf }}"}
    assert second.form == {"a": "{{ '{%' }} x %}", "csrf": "{{ echo_csrf }}"}


def test_a_redirecting_login_preflights_and_logouts_are_handled(tmp_path):
    """Hand-written: a form login answered 302 (its followed GET dropped, no status expected),
    a CORS preflight, a logout, and `time: -1` as some tools write it."""
    def entry(second: int, method: str, path: str, status: int, **extra: Any) -> dict[str, Any]:
        request = {"method": method, "url": f"http://127.0.0.1:8080{path}", "headers": extra.get("headers", [])}
        if "form" in extra:
            request["postData"] = {"mimeType": "application/x-www-form-urlencoded", "text": extra["form"]}
        return {"startedDateTime": f"2026-01-31T12:00:0{second}.000Z", "time": -1, "request": request,
                "response": {"status": status, "headers": extra.get("response_headers", [])}}

    har = tmp_path / "redirect.har"
    har.write_text(json.dumps({"log": {"entries": [
        entry(0, "POST", "/login", 302, form="username=carol&password=carol-pw",
              response_headers=[{"name": "Location", "value": "/home"},
                                {"name": "Set-Cookie", "value": "session=s3cr3t-value; HttpOnly"}]),
        entry(1, "GET", "/home", 200),
        entry(2, "OPTIONS", "/api/me", 204, headers=[{"name": "Access-Control-Request-Method", "value": "GET"}]),
        entry(3, "GET", "/api/me", 200, headers=[{"name": "Cookie", "value": "session=s3cr3t-value"}]),
        entry(4, "GET", "/logout", 200)]}}))
    imported = import_har(str(har))
    scenario = yaml.safe_load(imported.text)
    assert scenario["login"] == {"form": {"path": "/login", "fields": {
        "username": "${LOGIN_USERNAME}", "password": "${LOGIN_PASSWORD}"}}}
    assert scenario["flows"][0]["steps"] == [{"path": "/api/me", "expect": {"status": 200}}]
    assert "cookies" not in scenario["target"]  # the server set it: the session's cookie jar carries it
    assert imported.selection.dropped == [
        "GET http://127.0.0.1:8080/home: the browser followed a redirect (a step follows redirects itself)",
        "OPTIONS http://127.0.0.1:8080/api/me: a CORS preflight (the browser sends it by itself)",
        "GET http://127.0.0.1:8080/logout: a logout would end the session for every later iteration"]
    assert "s3cr3t-value" not in imported.text and "carol" not in imported.text
    assert scenario["wait"] == {"constant": 0.0}


def test_a_target_that_is_not_a_url_is_refused(tmp_path, capsys):
    out = tmp_path / "x.yaml"
    assert main(["import-har", str(FIXTURES / "login.har"), "-o", str(out), "--target", "ftp://x"]) == 2
    assert capsys.readouterr().err == ("workload: --target: error: invalid URL 'ftp://x'\n"
                                       "    fix: write a full URL such as 'http://127.0.0.1:8080' or 'demo'\n")
    assert not out.exists()
