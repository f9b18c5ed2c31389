"""The demo target's HTTP/2: ALPN h2 on https (HTTP/1.1 fallback), prior-knowledge h2c with --h2c.

Every connection is counted on accept whatever protocol it then speaks; `http2_connections`
counts those that spoke HTTP/2.  Clients are httpx (the HTTP/2 client the httpx engine uses).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import gevent
import pytest
import requests

from workload.demo.launcher import DemoTarget, start_demo_target
from workload.engine.httpxengine import httpx

KEYS = ("connections_accepted", "requests", "http2_connections")


def delta(target: DemoTarget, listener: str, before: dict[str, int]) -> dict[str, int]:
    after = target.stats()[listener]
    return {key: after[key] - before[key] for key in KEYS}


def client(target: DemoTarget, **kwargs: object) -> httpx.Client:
    context = ssl.create_default_context(cafile=target.ca_path)
    return httpx.Client(verify=context, trust_env=False, **kwargs)  # type: ignore[arg-type]


def test_alpn_negotiates_h2_and_one_connection_carries_concurrent_streams(demo_target: DemoTarget) -> None:
    before = demo_target.stats()["https"]
    with client(demo_target, http2=True) as c:
        jobs = [gevent.spawn(c.get, demo_target.https_url + "/slow?ms=300") for _ in range(20)]
        gevent.joinall(jobs, timeout=20, raise_error=True)
        answers = [job.value for job in jobs]
        echoed = c.post(demo_target.https_url + "/echo?x=1", json={"a": 1}, headers={"X-Test": "yes"})
    assert {(a.http_version, a.status_code) for a in answers} == {("HTTP/2", 200)}
    assert echoed.http_version == "HTTP/2"
    body = echoed.json()
    assert (body["method"], body["args"], body["json"], body["headers"]["X-Test"]) == ("POST", {"x": "1"}, {"a": 1},
                                                                                      "yes")
    assert delta(demo_target, "https", before) == {"connections_accepted": 1, "requests": 21, "http2_connections": 1}


def test_large_bodies_cross_the_flow_control_windows(demo_target: DemoTarget) -> None:
    payload = "x" * 300_000  # larger than HTTP/2's initial 65,535-byte windows, both ways
    with client(demo_target, http2=True) as c:
        answer = c.post(demo_target.https_url + "/echo", content=payload.encode())
    assert (answer.http_version, len(answer.json()["body"])) == ("HTTP/2", len(payload))


def test_http11_clients_fall_back_to_http11(demo_target: DemoTarget) -> None:
    before = demo_target.stats()["https"]
    with client(demo_target, http2=False) as c:
        assert [c.get(demo_target.https_url + "/").http_version for _ in range(3)] == ["HTTP/1.1"] * 3
    with requests.Session() as s:  # urllib3 offers only http/1.1 by ALPN
        s.trust_env = False
        assert s.get(demo_target.https_url + "/", verify=demo_target.ca_path).status_code == 200
    assert delta(demo_target, "https", before) == {"connections_accepted": 2, "requests": 4, "http2_connections": 0}


def test_cleartext_listener_does_not_speak_h2c_by_default(demo_target: DemoTarget) -> None:
    with httpx.Client(http1=False, http2=True, trust_env=False) as c, pytest.raises(httpx.TransportError):
        c.get(demo_target.http_url + "/", timeout=5)


@pytest.fixture(scope="module")
def h2c_target() -> Iterator[DemoTarget]:
    target = start_demo_target(h2c=True)
    try:
        yield target
    finally:
        target.stop()


def test_h2c_flag_serves_prior_knowledge_http2_and_http11(h2c_target: DemoTarget) -> None:
    before = h2c_target.stats()["http"]
    with httpx.Client(http1=False, http2=True, trust_env=False) as c:
        versions = [c.get(h2c_target.http_url + "/").http_version for _ in range(5)]
    with httpx.Client(trust_env=False) as c:
        versions.append(c.get(h2c_target.http_url + "/").http_version)
    assert versions == ["HTTP/2"] * 5 + ["HTTP/1.1"]
    assert delta(h2c_target, "http", before) == {"connections_accepted": 2, "requests": 6, "http2_connections": 1}
