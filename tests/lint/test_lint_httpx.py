"""Lint for engine httpx: its pools wait (never discard), and HTTP/2 multiplexes whatever the pool size."""

from __future__ import annotations

from tests.lint.test_lint import BASE, warnings


def test_httpx_process_pool_smaller_than_the_users_makes_them_queue(tmp_path):
    text = BASE.replace("shared: {timeout: 5}", "shared: {timeout: 5, scope: process, pool_maxsize: 4, engine: httpx}")
    found = warnings(tmp_path, text)
    assert "users queue for a free connection and the wait is counted as latency" in found
    assert "discarded" not in found


def test_http2_process_pool_needs_no_connection_per_user(tmp_path):
    text = BASE.replace("shared: {timeout: 5}",
                        "shared: {timeout: 5, scope: process, pool_maxsize: 1, engine: httpx, http2: true}")
    assert warnings(tmp_path, text) == ""
