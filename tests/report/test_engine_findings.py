"""Findings across engines: runs of one policy on different engines are compared by throughput."""

from __future__ import annotations

from typing import Any

from workload.report.findings import engines
from workload.report.summary import engine_fields

SHARED = {"type": "shared", "pool_maxsize": 2, "timeout": {"connect": 5.0, "read": 10.0}}


def row(label: str, rps: float, settings: dict[str, Any]) -> dict[str, Any]:
    return {"label": label, "rps": rps, **engine_fields(settings)}


def test_engine_fields_name_the_engine_and_digest_the_rest_of_the_policy():
    requests, fast = engine_fields(SHARED), engine_fields({**SHARED, "engine": "fast", "description": "x"})
    assert (requests["engine"], fast["engine"]) == ("requests", "fast")
    assert requests["policy_digest"] == fast["policy_digest"]
    assert engine_fields({**SHARED, "engine": "httpx", "http2": True})["engine"] == "httpx h2"
    assert engine_fields({**SHARED, "pool_maxsize": 3})["policy_digest"] != requests["policy_digest"]


def test_one_policy_on_two_engines_gets_a_ratio():
    rows = [row("shared", 2100.0, SHARED), row("shared-fast", 10080.0, {**SHARED, "engine": "fast"}),
            row("close", 900.0, {**SHARED, "type": "close"})]
    assert engines(rows) == ["fast: 4.8× the throughput of requests at the same policy (shared-fast vs shared)"]


def test_policies_that_differ_beyond_the_engine_are_not_paired():
    rows = [row("shared", 2100.0, SHARED), row("shared-fast", 10080.0, {**SHARED, "engine": "fast", "pool_maxsize": 9})]
    assert engines(rows) == []


def test_about_the_same_and_no_throughput_are_said_so():
    fast = {**SHARED, "engine": "fast"}
    assert engines([row("a", 100.0, SHARED), row("b", 105.0, fast)]) == [
        "fast and requests had about the same throughput at the same policy (b vs a)"]
    assert engines([row("a", 0.0, SHARED), row("b", 50.0, fast)]) == [
        "requests completed no requests per second at the same policy as fast (b vs a)"]
