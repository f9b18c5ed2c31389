"""Findings about HTTP/2: multiplexing at a glance, and a policy that asked for h2 and did not get it."""

from __future__ import annotations

from tests.factories import make_run
from workload.report.findings import build_findings, http2
from workload.report.summary import policy_entry

H2 = {"type": "shared", "scope": "process", "engine": "httpx", "http2": True}


def h2_run(**connections: object):
    overrides = {f"connections__{k}": v for k, v in connections.items()}
    return make_run(policy__name="shared-h2", policy__settings=H2, **overrides)


def test_one_http2_connection_for_ten_users_is_said_with_its_streams():
    row = policy_entry(h2_run(tcp_connects=1, protocols={"h2": 1}, http2_connections=1, http2_streams=900,
                              streams_per_connection=900.0))
    assert (row["engine"], row["protocols"], row["http2_connections"]) == ("httpx h2", {"h2": 1}, 1)
    assert http2(row) == "shared-h2: 1 HTTP/2 connection for 10 users (900 streams on each)"
    assert "shared-h2: 1 HTTP/2 connection for 10 users (900 streams on each)" in build_findings([row], ["demo"])


def test_http11_fallback_under_an_http2_policy_is_a_finding():
    row = policy_entry(h2_run(tcp_connects=10, protocols={"http/1.1": 10}, http2_connections=0, http2_streams=0))
    assert http2(row) == ("shared-h2 asked for HTTP/2 but 10 connections spoke HTTP/1.1 "
                          "(the server did not offer h2 by ALPN)")


def test_runs_without_http2_say_nothing_about_it():
    row = policy_entry(make_run())  # engine requests, recorded before protocol counters existed
    assert (row["protocols"], row["http2_connections"], http2(row)) == (None, None, None)
