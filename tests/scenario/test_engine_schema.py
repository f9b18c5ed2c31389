"""The `engine` / `http2` policy keys: defaults, and what an engine cannot honour is a located error."""

from __future__ import annotations

import pytest

from workload.errors import ScenarioError
from workload.scenario.loader import load_text
from workload.scenario.schema import DEFAULT_ENGINE

HEAD = "target: http://127.0.0.1:8080\nendpoints: [{path: /}]\npolicies:\n  shared: "


def _error(policy: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        load_text(HEAD + policy + "\n", "/tmp/s.yaml")
    return str(caught.value)


def test_engine_defaults_to_requests_without_http2():
    policy = load_text(HEAD + "{}\n", "/tmp/s.yaml").model.policies["shared"]
    assert (policy.engine, policy.http2, DEFAULT_ENGINE) == ("requests", False, "requests")


@pytest.mark.parametrize("policy", ["{engine: fast}", "{engine: fast, pool_block: true, retries: 2, pool_maxsize: 3}",
                                    "{engine: fast, retries: {total: 1}}", "{engine: requests, pool_connections: 2}"])
def test_settings_an_engine_honours_load(policy):
    load_text(HEAD + policy + "\n", "/tmp/s.yaml")


def test_http2_needs_the_httpx_engine():
    assert _error("{engine: fast, http2: true}") == (
        "1 problem in scenario:\n/tmp/s.yaml:4: ==> At key: policies.shared.http2\n"
        "    error: http2 needs engine 'httpx', not 'fast'\n"
        "    fix: add 'engine: httpx' or remove 'http2'")


@pytest.mark.parametrize(("policy", "key", "fix"), [
    ("{engine: fast, ssl_context: per_connection}", "ssl_context",
     "remove 'ssl_context' (fast shares one context per policy) or use engine: requests"),
    ("{engine: fast, pool_block: false}", "pool_block",
     "remove 'pool_block' (or use engine: requests to measure pool discards)"),
    ("{engine: fast, pool_connections: 4}", "pool_connections",
     "remove 'pool_connections' (pool_maxsize is each host's pool size)"),
    ("{engine: fast, retries: {total: 2, status_forcelist: [503]}}", "retries",
     "give 'retries' as a number, or use engine: requests"),
])
def test_what_fast_cannot_honour_is_located(policy, key, fix):
    text = _error(policy)
    assert text.startswith(f"1 problem in scenario:\n/tmp/s.yaml:4: ==> At key: policies.shared.{key}\n"
                           f"    error: engine 'fast' cannot honour '{key}': ")
    assert text.endswith(f"\n    fix: {fix}")


def test_an_unknown_engine_is_named_with_the_choices():
    assert _error("{engine: fastt}").endswith(
        "At key: policies.shared.engine\n    error: unknown value 'fastt'\n"
        "    fix: did you mean 'fast'? (allowed values: requests, fast, httpx)")
