"""Bad scenario input: one located message per problem, with the exact text a person sees."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from workload.errors import ScenarioError
from workload.loader import load_scenario, load_text

ROOT = Path(__file__).resolve().parent.parent


def problems(text: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        load_text(textwrap.dedent(text), "s.yaml")
    return str(caught.value)


def test_yaml_syntax_error_names_the_line():
    assert problems("target: demo\nendpoints:\n  - path: /x\n   method: GET\n") == (
        "1 problem in scenario:\n"
        "s.yaml:4: ==> At key: (top level)\n"
        "    error: invalid YAML: did not find expected '-' indicator (while parsing a block collection)\n"
        "    fix: check indentation, colons and quoting near this line")


def test_unknown_key_suggests_the_right_one():
    assert problems("target: demo\nendpoints: [{path: /}]\npolicies:\n  shared: {pool_maxsise: 4}\n") == (
        "1 problem in scenario:\n"
        "s.yaml:4: ==> At key: policies.shared.pool_maxsise\n"
        "    error: unknown key 'pool_maxsise'\n"
        "    fix: did you mean 'pool_maxsize'? (allowed keys: type, description, scope, pool_connections, "
        "pool_maxsize, pool_block, retries, timeout, ssl_context, every_requests, every_seconds, "
        "thresholds)")


def test_wrong_type():
    assert problems("target: demo\nendpoints: [{path: /, weight: lots}]\n") == (
        "1 problem in scenario:\n"
        "s.yaml:2: ==> At key: endpoints[0].weight\n"
        "    error: expected a whole number, got 'lots'\n"
        "    fix: write a whole number such as 10")


def test_zero_and_negative_pool_sizes_are_each_reported():
    text = "target: demo\nendpoints: [{path: /}]\npolicies:\n  shared:\n    pool_maxsize: 0\n    pool_connections: -2\n"
    assert problems(text) == (
        "2 problems in scenario:\n"
        "s.yaml:5: ==> At key: policies.shared.pool_maxsize\n"
        "    error: must be greater than 0, got 0\n"
        "    fix: use a number greater than 0\n"
        "s.yaml:6: ==> At key: policies.shared.pool_connections\n"
        "    error: must be greater than 0, got -2\n"
        "    fix: use a number greater than 0")


def test_unknown_policy_type_and_default_policy():
    assert problems("target: demo\nendpoints: [{path: /}]\npolicies:\n  mine: {type: fresher}\n") == (
        "1 problem in scenario:\n"
        "s.yaml:4: ==> At key: policies.mine.type\n"
        "    error: unknown value 'fresher'\n"
        "    fix: did you mean 'fresh'? (allowed values: shared, close, fresh, recycle)")
    assert problems("target: demo\nendpoints: [{path: /}]\npolicies: {shared: {}}\ndefault_policy: fresh\n") == (
        "1 problem in scenario:\n"
        "s.yaml:4: ==> At key: default_policy\n"
        "    error: unknown policy 'fresh'\n"
        "    fix: use one of the allowed policies: shared")


def test_unknown_policy_name_on_the_command_line():
    loaded = load_text("target: demo\nendpoints: [{path: /}]\n", "s.yaml")
    with pytest.raises(ScenarioError) as caught:
        loaded.check_policy("shraed")
    assert str(caught.value) == (
        "1 problem in scenario:\n"
        "s.yaml: ==> At key: policies\n"
        "    error: unknown policy 'shraed'\n"
        "    fix: did you mean 'shared'? (allowed policies: shared, close, fresh)")


def test_undefined_template_variable():
    assert problems("target: demo\nvariables: {page: 1}\nendpoints:\n  - path: /items?p={{ pgae }}\n") == (
        "1 problem in scenario:\n"
        "s.yaml:4: ==> At key: endpoints[0].path\n"
        "    error: template variable 'pgae' is not defined\n"
        "    fix: define it under 'variables:' or capture it from an earlier response; did you mean 'page'? "
        "(allowed names: choice, now, page, randint, user_index, uuid4)")


def test_missing_environment_variable(monkeypatch):
    monkeypatch.delenv("WL_TEST_TOKEN", raising=False)
    text = "target: demo\nendpoints:\n  - path: /\n    headers: {Authorization: 'Bearer ${WL_TEST_TOKEN}'}\n"
    assert problems(text) == (
        "1 problem in scenario:\n"
        "s.yaml:4: ==> At key: endpoints[0].headers.Authorization\n"
        "    error: environment variable 'WL_TEST_TOKEN' is not set\n"
        "    fix: export WL_TEST_TOKEN=... before running, or write '${WL_TEST_TOKEN:-default}'")
    monkeypatch.setenv("WL_TEST_TOKEN", "s3cret")
    loaded = load_text(text, "s.yaml")
    assert loaded.model.endpoints[0].headers == {"Authorization": "Bearer s3cret"}


def test_missing_csv_file():
    assert problems("target: demo\ncredentials: {csv: nope.csv}\nendpoints: [{path: /}]\n") == (
        "1 problem in scenario:\n"
        "s.yaml:2: ==> At key: credentials.csv\n"
        "    error: cannot read the credentials CSV 'nope.csv': No such file or directory\n"
        "    fix: create it (a header line such as 'username,password', then one row per user); "
        "the path is relative to the scenario file")


def test_invalid_urls():
    assert problems("target: {host: 'htp://127.0.0.1:80'}\nendpoints: [{path: /}]\n") == (
        "1 problem in scenario:\n"
        "s.yaml:1: ==> At key: target.host\n"
        "    error: invalid URL 'htp://127.0.0.1:80'\n"
        "    fix: write a full URL such as 'http://127.0.0.1:8080' or 'demo'")
    assert problems("target: {hosts: {api: 'http://127.0.0.1:99999'}}\nendpoints: [{path: /, host: api}]\n") == (
        "1 problem in scenario:\n"
        "s.yaml:1: ==> At key: target.hosts.api\n"
        "    error: invalid port in URL 'http://127.0.0.1:99999'\n"
        "    fix: use a port number between 1 and 65535")


def test_unknown_host_name():
    text = "target: {hosts: {api: 'http://127.0.0.1:8080'}}\nendpoints: [{path: /, host: apj}]\n"
    assert problems(text) == (
        "1 problem in scenario:\n"
        "s.yaml:2: ==> At key: endpoints[0].host\n"
        "    error: unknown host name 'apj'\n"
        "    fix: did you mean 'api'? (allowed host names: api)")


def test_missing_file():
    with pytest.raises(ScenarioError) as caught:
        load_scenario("/nonexistent/s.yaml")
    assert str(caught.value) == (
        "1 problem in scenario:\n"
        "/nonexistent/s.yaml: ==> At key: (top level)\n"
        "    error: cannot read the scenario file: No such file or directory\n"
        "    fix: check the path (see scenarios/*.yaml)")


def test_every_shipped_scenario_validates():
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        load_scenario(path)


BAD = "target: demo\nendpoints: [{path: /}]\npolicies:\n  shared: {pool_maxsise: 4}\n"
EXPECTED = "s.yaml:4: ==> At key: policies.shared.pool_maxsise\n    error: unknown key 'pool_maxsise'\n"


def test_validate_command_exits_2_without_traceback(tmp_path):
    (tmp_path / "s.yaml").write_text(BAD)
    done = subprocess.run([sys.executable, "-m", "workload.cli", "validate", "s.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert EXPECTED in done.stderr and "Traceback" not in done.stderr


def test_locustfile_gives_the_same_message(tmp_path):
    (tmp_path / "s.yaml").write_text(BAD)
    done = subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "workload" / "main.py"), "--headless",
                           "--scenario", "s.yaml", "-t", "1s"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert EXPECTED in done.stderr and "Traceback" not in done.stderr


def test_a_union_reports_only_the_branch_the_author_meant():
    text = "target: demo\nendpoints: [{path: /}]\npolicies:\n  shared:\n    retries: {totl: 2}\n"
    assert problems(text) == (
        "1 problem in scenario:\n"
        "s.yaml:5: ==> At key: policies.shared.retries.totl\n"
        "    error: unknown key 'totl'\n"
        "    fix: did you mean 'total'? (allowed keys: total, backoff_factor, status_forcelist)")
