"""Tests for the embedded demo target: exact connection counts, auth flows, tools, admin.

All traffic goes to the session-wide `demo_target` fixture (tests/conftest.py) on
127.0.0.1.  Counter checks compare deltas of the target's own stats, so they stay exact
whatever ran before; nothing else talks to the target while a test runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from workload.demo.launcher import DemoTarget, start_demo_target
from workload.demo.server import main as serve_main
from workload.errors import ExitCode, TargetError


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # never let an http_proxy variable route loopback traffic elsewhere
    return s


@contextmanager
def counted(target: DemoTarget, listener: str = "http") -> Iterator[dict[str, int]]:
    """Yields a dict filled, on exit, with the listener's counter deltas."""
    before = target.stats()[listener]
    delta: dict[str, int] = {}
    yield delta
    after = target.stats()[listener]
    delta.update({key: after[key] - before[key] for key in ("connections_accepted", "requests")})


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_keep_alive_uses_exactly_one_connection(demo_target: DemoTarget) -> None:
    with session() as s, counted(demo_target) as delta:
        for _ in range(50):
            assert s.get(demo_target.http_url + "/").status_code == 200
    assert delta == {"connections_accepted": 1, "requests": 50}


def test_connection_close_opens_one_connection_per_request(demo_target: DemoTarget) -> None:
    with session() as s, counted(demo_target) as delta:
        for _ in range(20):
            response = s.get(demo_target.http_url + "/", headers={"Connection": "close"})
            assert response.status_code == 200
    assert delta == {"connections_accepted": 20, "requests": 20}


def test_a_fresh_session_per_request_opens_one_connection_each(demo_target: DemoTarget) -> None:
    with counted(demo_target) as delta:
        for _ in range(20):
            with session() as s:
                assert s.get(demo_target.http_url + "/").status_code == 200
    assert delta == {"connections_accepted": 20, "requests": 20}


def test_https_with_the_announced_ca_counts_on_the_https_listener(demo_target: DemoTarget) -> None:
    assert demo_target.https_url and demo_target.ca_path
    with session() as s, counted(demo_target, "https") as https, counted(demo_target, "http") as http:
        for _ in range(5):
            response = s.get(demo_target.https_url + "/echo", verify=demo_target.ca_path)
            assert response.status_code == 200
    assert https == {"connections_accepted": 1, "requests": 5}
    assert http == {"connections_accepted": 0, "requests": 0}


def test_open_connections_gauge_follows_the_client(demo_target: DemoTarget) -> None:
    def open_now() -> int:
        return int(demo_target.stats()["http"]["open_connections"])

    # Connections that earlier tests closed may still be draining server-side: let it settle.
    samples = [open_now(), open_now()]

    def settled() -> bool:
        samples.append(open_now())
        return samples[-1] == samples[-2] == samples[-3]

    assert wait_until(settled)
    base = samples[-1]
    s = session()
    s.get(demo_target.http_url + "/")
    assert open_now() == base + 1
    s.close()
    assert wait_until(lambda: open_now() == base)


def test_form_login_sets_a_session_cookie_for_api_me(demo_target: DemoTarget) -> None:
    url = demo_target.http_url
    before = demo_target.stats()["logins"].get("alice", 0)
    with session() as s:
        assert s.get(url + "/api/me").status_code == 401
        bad = s.post(url + "/login", data={"username": "alice", "password": "nope"})
        assert (bad.status_code, bad.json()) == (401, {"error": "bad credentials"})
        good = s.post(url + "/login", data={"username": "alice", "password": "alice-pw"})
        assert (good.status_code, good.json()) == (200, {"user": "alice"})
        assert "httponly" in good.headers["Set-Cookie"].lower()
        assert s.get(url + "/api/me").json() == {"user": "alice", "auth": "cookie"}
        assert s.get(url + "/logout").status_code == 200
        assert s.get(url + "/api/me").status_code == 401
    assert demo_target.stats()["logins"]["alice"] == before + 1


def test_token_with_max_uses_gives_401_after_n_uses(demo_target: DemoTarget) -> None:
    url = demo_target.http_url
    with session() as s:
        body = {"username": "bob", "password": "bob-pw", "max_uses": 3}
        issued = s.post(url + "/api/token", json=body).json()
        assert issued["token_type"] == "Bearer" and issued["expires_in"] == 3600
        auth = {"Authorization": f"Bearer {issued['access_token']}"}
        for _ in range(3):
            assert s.get(url + "/api/me", headers=auth).json() == {"user": "bob", "auth": "token"}
        assert s.get(url + "/api/me", headers=auth).status_code == 401
        assert s.post(url + "/api/token", json={"username": "bob", "password": "x"}).status_code == 401


def test_basic_auth(demo_target: DemoTarget) -> None:
    url = demo_target.http_url
    with session() as s:
        missing = s.get(url + "/basic")
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"] == 'Basic realm="demo"'
        assert s.get(url + "/basic", auth=("carol", "wrong")).status_code == 401
        assert s.get(url + "/basic", auth=("carol", "carol-pw")).json() == {"user": "carol"}
        assert s.get(url + "/api/me", auth=("carol", "carol-pw")).json() == {"user": "carol", "auth": "basic"}


def test_items_list_get_and_create(demo_target: DemoTarget) -> None:
    url, creds = demo_target.http_url + "/api/items", ("dave", "dave-pw")
    with session() as s:
        assert s.get(url).status_code == 401
        listed = s.get(url, params={"limit": 5}, auth=creds).json()
        assert listed["count"] == 5 and [item["id"] for item in listed["items"]] == [1, 2, 3, 4, 5]
        assert s.get(url + "/2", auth=creds).json() == {"id": 2, "name": "item-2"}
        assert s.get(url + "/999999", auth=creds).status_code == 404
        created = s.post(url, json={"name": "widget"}, auth=creds)
        assert created.status_code == 201
        item = created.json()
        assert item["name"] == "widget" and created.headers["Location"] == f"/api/items/{item['id']}"
        assert s.get(url + f"/{item['id']}", auth=creds).json() == item
        assert s.post(url, json={}, auth=creds).status_code == 400


def test_status_and_echo(demo_target: DemoTarget) -> None:
    url = demo_target.http_url
    with session() as s:
        failed = s.get(url + "/status/503")
        assert (failed.status_code, failed.json()) == (503, {"status": 503})
        assert s.post(url + "/status/201").status_code == 201
        echoed = s.put(url + "/echo?x=1", json={"a": 1}, headers={"X-Test": "yes"}, cookies={"c": "v"}).json()
        assert echoed["method"] == "PUT" and echoed["path"] == "/echo" and echoed["args"] == {"x": "1"}
        assert echoed["headers"]["X-Test"] == "yes" and echoed["cookies"] == {"c": "v"}
        assert echoed["json"] == {"a": 1} and echoed["body"] == '{"a": 1}'
        assert s.get(url + "/").text == "workload demo target\n"


def test_slow_sleeps_at_least_the_asked_time(demo_target: DemoTarget) -> None:
    started = time.perf_counter()
    response = requests.get(demo_target.http_url + "/slow", params={"ms": 150}, timeout=10)
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert response.json() == {"slept_ms": 150}
    assert 145 <= elapsed_ms < 2000


def test_reset_aborts_the_connection(demo_target: DemoTarget) -> None:
    with session() as s:
        with pytest.raises(requests.exceptions.ConnectionError):
            s.get(demo_target.http_url + "/reset", timeout=5)
        # The target itself is unharmed and the session recovers on a new connection.
        assert s.get(demo_target.http_url + "/", timeout=5).status_code == 200


def test_admin_stats_do_not_count_themselves(demo_target: DemoTarget) -> None:
    first = demo_target.stats()
    for _ in range(5):
        demo_target.stats()
    last = demo_target.stats()
    for key in ("connections_accepted", "requests"):
        assert last[key] == first[key]
    with session() as s:
        assert s.get(demo_target.http_url + "/__stats").status_code == 404  # not on the public port


def test_reset_stats_zeroes_cumulative_counters(demo_target: DemoTarget) -> None:
    requests.get(demo_target.http_url + "/", timeout=5)
    after = demo_target.reset_stats()
    assert after["connections_accepted"] == 0 and after["requests"] == 0 and after["logins"] == {}
    assert after["http"]["connections_accepted"] == 0 and after["https"]["requests"] == 0


def test_non_loopback_host_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert serve_main(["--host", "10.0.0.1", "--port", "0"]) == ExitCode.BAD_INPUT
    assert "not a loopback address" in capsys.readouterr().err


def test_env_round_trip(demo_target: DemoTarget) -> None:
    again = DemoTarget.from_env(demo_target.to_env())
    assert again == demo_target
    assert again.stats()["requests"] >= 0
    with pytest.raises(TargetError):
        DemoTarget.from_env("not json")


def test_from_env_accepts_the_startup_line() -> None:
    line: dict[str, Any] = {"http": "http://127.0.0.1:1", "https": None, "admin": "http://127.0.0.1:2"}
    line.update(ca=None, pid=7)
    target = DemoTarget.from_env(json.dumps(line))
    assert (target.http_url, target.admin_url, target.pid) == ("http://127.0.0.1:1", "http://127.0.0.1:2", 7)


def test_a_target_that_cannot_start_raises_target_error_with_its_stderr() -> None:
    # The child refuses a non-loopback host before binding anything, then exits 2.
    with pytest.raises(TargetError) as caught:
        start_demo_target(host="10.0.0.1", timeout=10)
    assert "not a loopback address" in str(caught.value) and "exit code: 2" in str(caught.value)
