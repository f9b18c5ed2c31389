"""Targets: a `--host` override is checked like a scenario's own target URL."""

from __future__ import annotations

import pytest

from workload.errors import ScenarioError
from workload.scenario import targets
from workload.scenario.loader import load_text


def test_host_override_is_validated_and_never_echoes_a_password():
    loaded = load_text("target: 'http://127.0.0.1:8080'\nendpoints: [{path: /}]\n", "s.yaml")
    assert targets.resolve(loaded, None, "http://127.0.0.1:9/").default_host == "http://127.0.0.1:9"
    with pytest.raises(ScenarioError) as caught:
        targets.resolve(loaded, None, "http://bob:hunter2@127.0.0.1:9")
    assert str(caught.value) == (
        "1 problem in scenario:\n"
        "s.yaml: ==> At key: --host\n"
        "    error: the URL carries a user name or password ('user:password@')\n"
        "    fix: remove 'user:password@' and log in with 'login: {basic: {username: ..., password: ...}}' "
        "(take the password from the environment: password: ${PASSWORD})")
    with pytest.raises(ScenarioError, match="invalid port in URL 'http://127.0.0.1:0'"):
        targets.resolve(loaded, None, "http://127.0.0.1:0")
