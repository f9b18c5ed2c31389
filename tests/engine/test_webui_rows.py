"""Connections-tab rows: figures in words with units, unknown keys readable, and each policy's
expected connection behaviour next to the measured one (pure functions on canned snapshots)."""

from __future__ import annotations

from workload.engine.webui_rows import connection_rows, expectation, figure_rows, words
from workload.scenario.schema import Policy

LIVE = {
    "policy": "close",
    "connections": {"tcp_connects": 300, "tls_handshakes": 300, "requests_per_connection": 1.0,
                    "setup_ms": {"count": 300, "avg": 1.5, "p50": 1.0, "p95": 3.25, "max": 9.0},
                    "tls_resumed": 12, "http2_streams": 7, "tcp_fast_opens": 2},  # the last: no words entry
    "sockets": {"time_wait_client": {"peak": 290, "end": 280}, "time_wait_server": {"peak": None, "end": None},
                "t": 12.5, "current": {"tw_client": 280}, "running": True},
    "open_model": {"offered_rps": 200.0, "dropped": 3},
}


def _by_metric(rows):
    return {row["metric"]: row for row in rows}


def test_figures_are_worded_with_units_and_unknown_keys_stay_readable():
    rows = _by_metric(figure_rows(LIVE))
    assert rows["TCP connects"]["value"] == "300 connections"
    assert rows["TLS handshakes completed"]["value"] == "300 handshakes"
    assert rows["Requests per connection"]["value"] == "1.00"
    assert rows["Connection setup time"]["value"] == "count 300, avg 1.50 ms, p50 1.00 ms, p95 3.25 ms, max 9.00 ms"
    assert rows["TIME_WAIT sockets, client side"]["value"] == "now 280, peak 290 sockets"
    assert rows["TIME_WAIT sockets, server side"]["value"] == "not observable (remote target)"
    assert rows["TLS handshakes resumed"]["value"] == "12 handshakes"
    assert rows["HTTP/2 streams (requests)"]["value"] == "7 streams"
    assert rows["TCP fast opens"]["value"] == "2"  # an unknown key, humanised
    assert rows["Open model: offered req/s"]["value"] == "200.00"  # an unknown section names itself
    assert rows["Open model: dropped"]["value"] == "3"
    assert not any("tcp_connects" in m or m in ("T", "Current", "Running") for m in rows)  # no raw keys, no bookkeeping


def test_words_humanise_acronyms():
    assert words("connections.http2_streams_per_connection") == ("HTTP/2 streams per connection", "")
    assert words("tls_full_handshakes") == ("TLS full handshakes", "")
    assert words("engine") == ("HTTP engine", "")


def test_each_policy_states_its_expected_behaviour_next_to_the_measured():
    close, fresh = Policy(type="close"), Policy(type="fresh")
    assert expectation(close, 300, 300, 2).text == "1 connection per request (closed after it)"
    assert expectation(close, 300, 300, 2).measured == "1.00 connections per request"
    assert expectation(fresh, 150, 300, 2).measured == "0.50 connections per request"
    recycle = Policy(type="recycle", every_requests=50)
    assert expectation(recycle, 6, 300, 2).text == "~1 connection per 50 requests (~0.02 per request)"
    timed = Policy(type="recycle", every_seconds=5)
    assert expectation(timed, 8, 300, 2).text == "~1 connection per user every 5 s"
    shared = Policy(type="shared", pool_maxsize=4)
    seen = expectation(shared, 6, 300, 3)
    assert seen.text == "at most 4 connections per user (pool size), then reuse"
    assert seen.measured == "2.00 connections per user (6 for 3 users)"
    process = Policy(type="shared", scope="process", pool_maxsize=8)
    assert expectation(process, 5, 300, 3).text.startswith("at most 8 connections for the whole process")
    assert expectation(close, 0, 0, 0).measured == "no requests yet"
    assert expectation(shared, 0, 0, 0).measured == "no users yet"


def test_rows_put_the_policy_and_its_sentence_first():
    rows = connection_rows(LIVE, Policy(type="close"), requests=300, users=2)
    assert rows[0] == {"metric": "Policy", "value": "close", "expected": ""}
    assert rows[1]["metric"] == "Connections: expected vs measured"
    assert rows[1]["value"] == ("close: expected 1 connection per request (closed after it) — "
                                "measured 1.00 connections per request")
    assert _by_metric(rows)["TLS resumed share"]["value"] == "4% (12 of 300 handshakes)"  # DERIVED
    assert _by_metric(connection_rows({"connections": {"tcp_connects": 1}}))["TLS resumed share"]["value"] == "-"
    assert connection_rows(None) == [{"metric": "Status", "value": "no run yet", "expected": ""}]


def test_the_generators_health_is_shown_in_words_without_its_bookkeeping():
    from workload.telemetry.generator import GeneratorHealth

    health = GeneratorHealth()
    health.start()
    for lag in [0.5] * 98 + [40.0] * 2:
        health.record_lag(lag)
    health.stop()
    summary = health.summary()
    p99 = summary["loop_lag_p99_ms"]
    assert 40 <= p99 < 40.1  # HDR: 3 significant digits
    rows = _by_metric(figure_rows({"policy": "shared", "generator": summary}))
    assert rows["Load generator: event-loop lag p99"]["value"] == f"{p99:.2f} ms"
    assert rows["Load generator: the bottleneck (latency figures are its own)"]["value"] == "yes"
    assert rows["Load generator: saturated because"]["value"] == f"event-loop lag p99 {p99:g} ms >= 25 ms"
    assert rows["Load generator: processes measured"]["value"] == "1"
    assert not any("samples" in m or "interval" in m for m in rows)
