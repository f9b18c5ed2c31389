"""Secrets: what the registry holds, how `redact` masks it, and that no exit lets a secret out.

The unit tests use fresh random values (the registry is process-wide), so they neither
depend on nor disturb each other.  The slow test plants distinct secrets in real runs
against the demo target and greps every file and the console output for them.
"""

from __future__ import annotations

import html
import json
import logging
import os
import secrets as std_secrets
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

import pytest
from flask import Flask, jsonify

from tests.factories import run_data
from workload import scrub
from workload.engine import webui
from workload.errors import Problem, ScenarioError
from workload.plan.checks import CookieCapture, ParsedResponse, run_captures
from workload.plan.login import compile_login
from workload.redaction import (
    MASK,
    REGISTRY,
    redact,
    redact_data,
    register,
    register_capture,
    register_document,
    worth_registering,
)
from workload.results.ci_outputs import Suite, junit_xml, markdown
from workload.results.run import validate_run
from workload.results.thresholds import ThresholdResult, evaluate
from workload.scenario.loader import load_text
from workload.scenario.schema import Login

ROOT = Path(__file__).resolve().parent.parent


def fresh(prefix: str = "s") -> str:
    """A value no other test registers."""
    return f"{prefix}-{std_secrets.token_hex(6)}"


# -- the registry and redact ----------------------------------------------------------------------
def test_every_encoded_form_is_masked():
    secret = f"p&ss w/rd<{std_secrets.token_hex(4)}>'\""
    register(secret)
    for form in (secret, quote(secret, safe=""), quote(secret), quote_plus(secret), json.dumps(secret)[1:-1],
                 html.escape(secret), html.escape(secret, quote=False), secret.replace('"', '""')):
        assert redact(f"before {form} after") == f"before {MASK} after", form


def test_longest_secret_wins_and_overlaps_leave_no_fragment():
    short = fresh("abcd")
    register(short)
    register(short + "-longer")
    assert redact(f"x{short}-longer y {short}.") == f"x{MASK} y {MASK}."
    for _ in range(40):  # later registrations land in other pattern levels: overlaps still merge
        register(fresh("pad"))
    longest = short + "-longer-still"
    register(longest)
    assert redact(f"[{longest}]") == f"[{MASK}]"


def test_values_that_would_destroy_figures_or_text_are_not_registered():
    for value in ("", "1", "abc", "true", "False", "none", "demo", "Bearer", "8080", "1.5", "30s", "10:30",
                  "127.0.0.1", "1,000"):
        assert not worth_registering(value), value
    before = len(REGISTRY)
    for value in ("8080", "true", "30s"):
        register(value)
    assert len(REGISTRY) == before
    assert redact("8080 requests, true, 30s") == "8080 requests, true, 30s"
    assert worth_registering("hunter2") and worth_registering("s3cr")


def test_many_secrets_registered_one_by_one_are_all_masked():
    values = [std_secrets.token_urlsafe(16) for _ in range(300)]
    for value in values:
        register(value)
        assert redact(f"?t={value}&") == f"?t={MASK}&"  # compiled on demand between registrations
    assert redact(" ".join(values)) == " ".join([MASK] * len(values))


def test_redact_data_masks_nested_strings_and_keys_in_place():
    secret = fresh()
    register(secret)
    data = {"name": f"GET /items?key={secret}", secret: [1, {"error": f"url: /x?{secret}"}], "n": 3}
    assert redact_data(data) is data
    assert data == {"name": f"GET /items?key={MASK}", MASK: [1, {"error": f"url: /x?{MASK}"}], "n": 3}


# -- what loading registers -------------------------------------------------------------------------
def test_document_secrets_are_registered_and_identities_are_not():
    header, api, cookie, pw, basic_pw, form_pw, query_key = (fresh(n) for n in
                                                           ("hdr", "api", "ck", "url", "basic", "form", "qk"))
    user = fresh("username")
    register_document({
        "target": {"host": f"http://{user}:{pw}@127.0.0.1:8080",
                   "headers": {"Authorization": f"Bearer {header}", "X-Api-Key": api, "Accept": "text/x-plain"},
                   "cookies": [{"name": "sid", "value": cookie, "domain": "127.0.0.1"}],
                   "hosts": {"auth": "http://127.0.0.1:8081"}},
        "login": {"basic": {"username": user, "password": basic_pw}},
        "endpoints": [{"path": "/q", "query": {"api_key": query_key, "page": "second"}}],
        "credentials": {"inline": [{"username": user, "password": form_pw}]},
    })
    for value in (header, api, cookie, pw, basic_pw, form_pw, query_key, f"{user}:{pw}"):
        assert value in REGISTRY, value
    for value in (user, "text/x-plain", "second", "/q", "Bearer", "http://127.0.0.1:8081"):
        assert value not in REGISTRY, value
    assert redact(f"http://{user}:{pw}@127.0.0.1:8080") == f"http://{MASK}@127.0.0.1:8080"


def test_templates_and_expressions_are_not_secrets():
    marker = fresh("tmpl")
    register_document({"target": {"headers": {"Authorization": "Bearer {{ token }}"}},
                       "login": {"token": {"path": "/api/token", "token": f"data.{marker}",
                                           "json": {"password": "{{ user.password }}"}}},
                       "endpoints": [{"path": "/x", "capture": {"token": {"json": marker}}}]})
    assert f"data.{marker}" not in REGISTRY and marker not in REGISTRY and "{{ token }}" not in REGISTRY


def test_env_values_are_registered_when_substituted_and_defaults_are_not(monkeypatch, tmp_path):
    api_key, default, url_pw, policy = fresh("APIKEY"), fresh("dflt"), fresh("urlpw"), fresh("pol")
    monkeypatch.setenv("H6_API_KEY", api_key)
    monkeypatch.setenv("H6_TARGET", f"http://u:{url_pw}@127.0.0.1:9")
    monkeypatch.setenv("H6_POLICY", policy)
    (tmp_path / "users.csv").write_text(f"username,password\nalice-{url_pw[-4:]},{url_pw}-csv\n")
    # A URL with userinfo is refused at validation; its values are registered before any message.
    with pytest.raises(ScenarioError, match="user name or password"):
        load_text(f"""
target: "${{H6_TARGET}}"
variables: {{note: "${{H6_MISSING:-{default}}}", plain: "${{H6_API_KEY}}"}}
credentials: {{csv: users.csv}}
endpoints: [{{path: /, name: "${{H6_POLICY}}-list"}}]
policies: {{"{policy}": {{type: shared}}}}
default_policy: "${{H6_POLICY}}"
""", str(tmp_path / "s.yaml"))
    assert api_key in REGISTRY and url_pw in REGISTRY and f"{url_pw}-csv" in REGISTRY
    assert policy not in REGISTRY and f"{policy}-list" not in REGISTRY  # names, not secrets
    assert default not in REGISTRY and "http://u:" not in redact(f"http://u:{url_pw}@127.0.0.1:9")
    assert f"alice-{url_pw[-4:]}" not in REGISTRY
    assert "127.0.0.1:9" in redact(f"http://u:{url_pw}@127.0.0.1:9")  # a target URL itself is not secret


def test_validation_messages_pass_through_the_registry():
    secret = fresh("echoed")
    register(secret)
    message = str(ScenarioError([Problem("s.yaml", 3, "target.host", f"invalid URL 'http://{secret}'", "fix it")]))
    assert secret not in message and f"'http://{MASK}'" in message


# -- what running registers -------------------------------------------------------------------------
class Canned:
    def __init__(self, payload: object, cookies: dict[str, str] | None = None):
        self.status_code, self.headers, self.cookies = 200, {}, cookies or {}
        self.payload, self.text = payload, json.dumps(payload)

    def json(self) -> object:
        return self.payload


def test_token_login_registers_the_token_it_receives():
    token = std_secrets.token_urlsafe(24)
    flow = compile_login(Login.model_validate({"token": {"path": "/api/token", "json": {"u": "x"}}}), {})
    user = SimpleNamespace(client=SimpleNamespace(headers={}))
    assert flow is not None and flow._judge(user, ParsedResponse(Canned({"access_token": token}))) is None
    assert user.client.headers["Authorization"] == f"Bearer {token}"
    assert redact(f"Authorization: Bearer {token}") == f"Authorization: Bearer {MASK}"


def test_captures_named_like_secrets_are_registered_and_ids_are_not():
    session, item = fresh("sess"), fresh("item")
    captures = (CookieCapture("session_id", "sid"), CookieCapture("item_ref", "ref"))
    into: dict[str, object] = {}
    assert run_captures(captures, ParsedResponse(Canned({}, {"sid": session, "ref": item})), {}, into) is None
    assert into == {"session_id": session, "item_ref": item}
    assert session in REGISTRY and item not in REGISTRY
    csrf = fresh("csrf")
    register_capture("form_value", "csrf_token", csrf)  # the source's name counts too
    assert csrf in REGISTRY


# -- exits -----------------------------------------------------------------------------------------
def test_scrub_file_rewrites_only_what_changed_and_keeps_other_bytes(tmp_path):
    secret = fresh()
    register(secret)
    dirty, clean = tmp_path / "report.html", tmp_path / "clean.csv"
    dirty.write_bytes(b"\xff\xfe binary " + f"host: http://u:{secret}@h".encode() + b"\n")
    clean.write_text("nothing here\n")
    before = clean.stat().st_mtime_ns
    outside = tmp_path.parent / f"outside-{secret[-6:]}.txt"
    outside.write_text(secret)
    (tmp_path / "link").symlink_to(outside)
    assert scrub.scrub_tree(tmp_path) == 1
    assert dirty.read_bytes() == b"\xff\xfe binary " + f"host: http://u:{MASK}@h".encode() + b"\n"
    assert clean.stat().st_mtime_ns == before and outside.read_text() == secret  # links are not followed
    outside.unlink()


def test_locust_outputs_named_by_options_are_scrubbed_with_the_run_folder(tmp_path):
    secret = fresh()
    register(secret)
    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    run.mkdir()
    elsewhere.mkdir()
    files = [run / "run.json", elsewhere / "report.html", elsewhere / "t_stats.csv",
             elsewhere / "t_failures.csv", elsewhere / "stats.json", elsewhere / "locust.log"]
    for path in files:
        path.write_text(f"GET /x?key={quote_plus(secret)}\n")
    options = SimpleNamespace(html_file=str(files[1]), csv_prefix=str(elsewhere / "t"),
                              json_file=str(elsewhere / "stats"), logfile=str(files[5]))
    scrub.scrub_run(run, options)
    assert [p.read_text() for p in files] == [f"GET /x?key={MASK}\n"] * len(files)


def test_logging_filter_masks_messages_arguments_and_tracebacks(tmp_path):
    secret = fresh()
    register(secret)
    out = tmp_path / "log.txt"
    handler = logging.FileHandler(out)
    handler.addFilter(scrub.RedactingFilter())
    logger = logging.getLogger(f"h6.{secret}")
    logger.addHandler(handler)
    logger.warning("Retrying after connection broken: %s", f"/items?api_key={quote_plus(secret)}")
    try:
        raise ValueError(f"bad {secret}")
    except ValueError:
        logger.exception("failed")
    handler.close()
    text = out.read_text()
    assert secret not in text and text.count(MASK) == 2, text  # the message and the exception line


def test_redacting_stream_masks_what_is_printed(capsys):
    secret = fresh()
    register(secret)
    stream = scrub.RedactingStream(sys.stdout)
    print(f"error: {secret}", file=stream)  # type: ignore[arg-type]
    assert capsys.readouterr().out == f"error: {MASK}\n"


def test_ci_outputs_are_masked():
    secret = fresh()
    register(secret)
    result = ThresholdResult(policy="shared", scope=f"GET /x?key={secret}", metric="p95_ms", limit=1.0,
                             actual=2.0, passed=False, message=f"GET /x?key={secret} too slow")
    suites = [Suite("s", "shared", [result])]
    assert secret not in junit_xml(suites) and secret not in markdown(suites, "t")
    ET.fromstring(junit_xml(suites).split("\n", 1)[1])  # still well-formed XML


def test_web_ui_answers_are_masked(tmp_path):
    secret = fresh()
    register(secret)
    app = Flask("h6")
    app.add_url_rule("/stats/requests", "stats", lambda: jsonify(stats=[{"name": f"GET /x?k={secret}"}]))
    app.add_url_rule("/logs", "logs", lambda: jsonify(logs=[f"Retrying ... /x?k={secret}"]))
    app.add_url_rule("/report", "report", lambda: (f"<p>http://u:{secret}@h</p>", 200, {
        "Content-Type": "text/html", "Content-Disposition": f"attachment;filename=Locust_http://u:{secret}@h.html"}))
    environment = SimpleNamespace(web_ui=SimpleNamespace(app=app, template_args={}), host=None, parsed_options=None)
    webui.install(environment, lambda: None, lambda *a: None, webui.ScenarioField(tmp_path, ""))
    client = app.test_client()
    typed = fresh("typedpw")
    client.post("/swarm", data={"host": f"http://u:{typed}@127.0.0.1:9"})  # the form's host field
    assert typed in REGISTRY
    for path in ("/stats/requests", "/logs", "/report"):
        answer = client.get(path)
        body = answer.get_data(as_text=True)
        assert secret not in body and MASK in body, body
        assert secret not in str(answer.headers)


# -- end to end: plant secrets, run, grep everything ---------------------------------------------------
class Sink(BaseHTTPRequestHandler):
    """A second local server that records what the scenario sent it (so the test knows the tokens)."""

    seen: list[dict[str, object]] = []

    def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
        Sink.seen.append({"query": parse_qs(urlsplit(self.path).query), "headers": dict(self.headers.items())})
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def sink() -> Iterator[ThreadingHTTPServer]:
    Sink.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens here once the socket is closed


TOKEN_SCENARIO = """
name: planted
target:
  host: demo
  hosts: {sink: "http://127.0.0.1:%(sink)d", dead: "http://127.0.0.1:%(dead)d"}
  headers: {X-Api-Key: "${H6_API_KEY}"}
  cookies: [{name: pref, value: "%(cookie)s", domain: 127.0.0.1}]
credentials: {csv: users.csv}
login:
  token:
    path: /api/token
    json: {username: "{{ user.username }}", password: "{{ user.password }}"}
flows:
  - name: leak
    steps:
      - {name: echo, path: /echo, capture: {echoed: {json: headers.Authorization}}}
      - {name: sink, host: sink, path: /collect, query: {t: "{{ echoed }}", p: "{{ user.password }}"}}
      - host: dead
        path: "/x?k=${H6_API_KEY}&c=%(cookie)s"
        query: {t: "{{ echoed }}", p: "{{ user.password }}", key: "${H6_API_KEY}"}
        thresholds: {max_failure_ratio: 0}
wait: {constant: 0.3}
load: {stages: [{duration: 3s, users: 2, spawn_rate: 2}]}  # a shape times itself (not -t: see issue 9)
policies:
  retrying: {type: shared, retries: {total: 2}, timeout: {connect: 1, read: 2}}
"""

BASIC_SCENARIO = """
name: planted-basic
target:
  host: demo
  hosts: {dead: "http://127.0.0.1:%(dead)d"}
  headers: {X-Api-Key: "${H6_API_KEY}"}
login: {basic: {username: %(user)s, password: "%(password)s"}}
endpoints:
  - {name: me, path: /api/me, expect: {status: 200, json: [{path: auth, equals: basic}]}}
  - {host: dead, path: "/y?b=%(password)s", query: {key: "${H6_API_KEY}"}, weight: 2}
wait: {constant: 0.3}
policies:
  retrying: {type: shared, retries: {total: 2}, timeout: {connect: 1, read: 2}}
  closing: {type: close, retries: {total: 1}, timeout: {connect: 1, read: 2}}
"""


def _forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}


def _leaks(folder: Path, outputs: dict[str, str], planted: dict[str, str]) -> list[str]:
    """Every (secret, place) where a planted secret, raw or URL-encoded, can be read."""
    texts = {str(p): p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file()}
    texts.update(outputs)
    return [f"{name} in {place}" for name, secret in planted.items() for place, text in texts.items()
            if any(form in text for form in _forms(secret))]


def _locust(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.slow
def test_no_planted_secret_reaches_any_file_or_the_console(tmp_path, demo_target, sink):
    api_key, cookie = f"Ak/9+z={std_secrets.token_hex(6)}", fresh("cookieval")
    user = f"h6u{std_secrets.token_hex(4)}"
    password = f"{user}-pw"  # the demo target's rule for a valid login
    (tmp_path / "users.csv").write_text(f"username,password\n{user},{password}\n")
    scenario = tmp_path / "planted.yaml"
    scenario.write_text(TOKEN_SCENARIO % {"sink": sink.server_address[1], "dead": _closed_port(), "cookie": cookie})
    env = {**os.environ, "H6_API_KEY": api_key, "WORKLOAD_DEMO_TARGET": demo_target.to_env(),
           "GITHUB_STEP_SUMMARY": str(tmp_path / "results" / "step-summary.md"), "PYTHONPATH": str(ROOT)}
    (tmp_path / "results" / "csv").mkdir(parents=True)  # Locust's own CSVs, beside the run folder
    run = _locust(["locust", "-f", str(ROOT / "workload" / "main.py"), "--headless", "--scenario", str(scenario),
                   "--results-dir", str(tmp_path / "results"), "--run-id", "r",
                   "--csv", str(tmp_path / "results" / "csv" / "locust"), "--stop-timeout", "2"], env, tmp_path)
    assert (tmp_path / "results" / "r" / "run.json").exists(), run.stderr[-3000:]

    # The secrets really went over the wire (so the grep below could find them).
    sent = Sink.seen
    tokens = {t.split(" ", 1)[1] for hit in sent for t in hit["query"].get("t", [])}  # type: ignore[union-attr]
    assert tokens and all(hit["headers"].get("X-Api-Key") == api_key for hit in sent)  # type: ignore[union-attr]
    assert f"pref={cookie}" in str(sent[0]["headers"]) and [password] == sent[0]["query"]["p"]  # type: ignore[index]
    # ...and reached the places that used to leak them, masked: urllib3's retry warnings, error rows.
    assert "Retrying" in run.stderr and f"{MASK}" in run.stderr
    assert MASK in (tmp_path / "results" / "r" / "run.json").read_text()

    planted = {"api key": api_key, "cookie": cookie, "password": password,
               **{f"token {i}": token for i, token in enumerate(sorted(tokens))}}
    outputs = {"headless stdout": run.stdout, "headless stderr": run.stderr}
    assert _leaks(tmp_path / "results", outputs, planted) == []

    # A comparison of two policies with a basic login: reports, summaries, child logs.
    basic_user = f"h6b{std_secrets.token_hex(4)}"
    basic = tmp_path / "basic.yaml"
    basic.write_text(BASIC_SCENARIO % {"dead": _closed_port(), "user": basic_user, "password": f"{basic_user}-pw"})
    # 6 s: Locust's -t can fire seconds early on a busy machine (issue 9); the runs must send requests.
    compare = _locust(["workload.cli", "compare", str(basic), "--users", "2", "--duration", "6s",
                       "--out", str(tmp_path / "compare")], env, tmp_path)
    logs = sorted((tmp_path / "compare" / "runs").glob("*.log"))
    assert [p.name for p in logs] == ["closing.log", "retrying.log"], compare.stderr[-3000:]
    child_output = "".join(p.read_text() for p in logs)
    assert "Retrying" in child_output and MASK in child_output
    runs = [json.loads(p.read_text()) for p in sorted((tmp_path / "compare" / "runs").glob("*/run.json"))]
    me = [e for run in runs for e in run["stats"]["endpoints"] if e["name"] == "me"]
    assert sum(e["requests"] for e in me) > 0 and sum(e["failures"] for e in me) == 0  # basic login worked
    planted = {"api key": api_key, "basic password": f"{basic_user}-pw"}
    outputs = {"compare stdout": compare.stdout, "compare stderr": compare.stderr}
    assert _leaks(tmp_path / "compare", outputs, planted) == []


def test_a_full_registry_warns_once_through_filtered_logging(monkeypatch, caplog):
    monkeypatch.setattr("workload.redaction.MAX_SECRET_FORMS", len(REGISTRY) + 3)
    monkeypatch.setattr(REGISTRY, "_full", False)
    caplog.handler.addFilter(scrub.RedactingFilter())  # the warning passes through redact: no deadlock
    values = [fresh("tok") for _ in range(5)]
    for value in values:
        register(value)
    assert [v in REGISTRY for v in values] == [True, True, True, False, False]
    assert caplog.text.count("not masked") == 1


def test_thresholds_still_find_an_endpoint_whose_name_was_redacted(monkeypatch):
    key = fresh("qkey")
    monkeypatch.setenv("H6_PATH_KEY", key)
    loaded = load_text('target: http://127.0.0.1:9\nendpoints:\n'
                       '  - {path: "/x?k=${H6_PATH_KEY}", thresholds: {max_failure_ratio: 0.1}}\n')
    row = {"requests": 10, "failures": 0, "rps": 5.0, "p50_ms": 1, "p95_ms": 2, "p99_ms": 2}
    data = redact_data(run_data(stats__total=row, stats__endpoints=[
        {"name": f"GET /x?k={key}", "method": "GET", **row}]))
    assert data["stats"]["endpoints"][0]["name"] == f"GET /x?k={MASK}"
    (result,) = evaluate(loaded.model, validate_run(data))
    assert result.passed and result.actual == 0.0


def test_a_worker_report_to_the_master_is_masked(monkeypatch):
    from locust.env import Environment
    from locust.stats import StatsEntry, setup_distributed_stats_event_listeners

    token = std_secrets.token_urlsafe(18)
    register(token)
    for name in ("stdout", "stderr"):  # install() wraps them: restored after the test
        monkeypatch.setattr(sys, name, getattr(sys, name))
    host_pw = fresh("hostpw")
    environment = Environment(user_classes=[], host=f"http://u:{host_pw}@127.0.0.1:9")
    setup_distributed_stats_event_listeners(environment.events, environment.stats)  # as a WorkerRunner does
    scrub.install(environment)  # at `init`, after the runner's listeners
    environment.stats.log_request("GET", f"/x?t={token}", 5, 10)
    environment.stats.log_error("GET", f"/x?t={token}", f"ConnectionError: url: /x?t={token}")
    data: dict[str, object] = {}
    environment.events.report_to_master.fire(client_id="w1", data=data)
    assert token not in json.dumps(data) and MASK in json.dumps(data)
    assert StatsEntry.unserialize(data["stats"][0], environment.stats).name == f"/x?t={MASK}"  # type: ignore[index]
    assert host_pw in REGISTRY  # -H with user:password@ (Locust's report.html shows the host)
