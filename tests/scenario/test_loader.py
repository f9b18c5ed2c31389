"""Bad scenario input: one located message per problem, with the exact text a person sees."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from workload.errors import ScenarioError
from workload.scenario.loader import load_scenario, load_text

ROOT = Path(__file__).resolve().parents[2]


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
        "thresholds, engine, http2)")


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


@pytest.mark.slow
def test_validate_command_exits_2_without_traceback(tmp_path):
    (tmp_path / "s.yaml").write_text(BAD)
    done = subprocess.run([sys.executable, "-m", "workload.cli", "validate", "s.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert EXPECTED in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
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


NAME_FIX = ("    fix: use letters, digits, '-', '_' and '.', not starting with '-' or '.', at most 64 characters "
            "(e.g. 'keepalive-8')")


def test_names_that_become_paths_must_be_names():
    text = ("name: ../etc\ntarget: demo\nendpoints: [{path: /}]\npolicies:\n  ../../elsewhere: {type: shared}\n"
            "  -u: {type: close}\n  /abs/path: {type: fresh}\n  .hidden: {type: shared}\n"
            "  ok.name_1-2: {type: shared}\n")
    assert problems(text) == (
        "5 problems in scenario:\n"
        f"s.yaml:1: ==> At key: name\n    error: scenario name '../etc' cannot be used as a file name\n{NAME_FIX}\n"
        "s.yaml:5: ==> At key: policies.../../elsewhere\n"
        f"    error: policy name '../../elsewhere' cannot be used as a file name\n{NAME_FIX}\n"
        f"s.yaml:6: ==> At key: policies.-u\n    error: policy name '-u' cannot be used as a file name\n{NAME_FIX}\n"
        "s.yaml:7: ==> At key: policies./abs/path\n"
        f"    error: policy name '/abs/path' cannot be used as a file name\n{NAME_FIX}\n"
        "s.yaml:8: ==> At key: policies..hidden\n"
        f"    error: policy name '.hidden' cannot be used as a file name\n{NAME_FIX}")
    assert "cannot be used as a file name" in problems(f"target: demo\nendpoints: [{{path: /}}]\nname: {'a' * 65}\n")


def test_userinfo_url_is_rejected_without_echoing_the_password(monkeypatch):
    monkeypatch.setenv("WL_TEST_PW", "hunter2-secret")
    text = "target: {hosts: {api: 'http://bob:${WL_TEST_PW}@127.0.0.1:8080'}}\nendpoints: [{path: /, host: api}]\n"
    assert problems(text) == (
        "1 problem in scenario:\n"
        "s.yaml:1: ==> At key: target.hosts.api\n"
        "    error: the URL carries a user name or password ('user:password@')\n"
        "    fix: remove 'user:password@' and log in with 'login: {basic: {username: ..., password: ...}}' "
        "(take the password from the environment: password: ${PASSWORD})")


def test_secret_in_a_url_query_is_not_echoed(monkeypatch):
    monkeypatch.setenv("WL_TEST_KEY", "APIKEY-1234567")
    message = problems("target: 'http://127.0.0.1:8080/api?key=${WL_TEST_KEY}'\nendpoints: [{path: /}]\n")
    assert "APIKEY" not in message
    assert "error: URL 'http://127.0.0.1:8080/api' has a path or query\n" in message


def test_urls_fully_checked():
    text = ("target:\n  host: 'http://[::1'\n  hosts:\n    a: 'http://127.0.0.1:0'\n    b: 'http://my host:80'\n"
            "    c: 'http://127.0.0.1:80#top'\n    d: 'ftp://127.0.0.1'\n    f: 'http://exa$mple:80'\n"
            "    g: 'http://[::1]:8080'\nendpoints: [{path: /}]\n")
    assert problems(text) == (
        "6 problems in scenario:\n"
        "s.yaml:2: ==> At key: target.host\n"
        "    error: invalid URL 'http://[::1': Invalid IPv6 URL\n"
        "    fix: write a full URL such as 'http://127.0.0.1:8080' or 'demo'\n"
        "s.yaml:4: ==> At key: target.hosts.a\n"
        "    error: invalid port in URL 'http://127.0.0.1:0'\n"
        "    fix: use a port number between 1 and 65535\n"
        "s.yaml:5: ==> At key: target.hosts.b\n"
        "    error: URL 'http://my host:80' contains spaces or control characters\n"
        "    fix: remove them (or quote the value)\n"
        "s.yaml:6: ==> At key: target.hosts.c\n"
        "    error: URL 'http://127.0.0.1:80' has a fragment ('#...')\n"
        "    fix: remove the '#' part: a fragment is never sent\n"
        "s.yaml:7: ==> At key: target.hosts.d\n"
        "    error: invalid URL 'ftp://127.0.0.1'\n"
        "    fix: write a full URL such as 'http://127.0.0.1:8080' or 'demo'\n"
        "s.yaml:8: ==> At key: target.hosts.f\n"
        "    error: invalid host name 'exa$mple' in URL\n"
        "    fix: a host is an IP address or a name of letters, digits, '-' and '.' (write IDN names as xn--...)")


def test_request_paths_start_with_a_slash():
    assert problems("target: demo\nendpoints:\n  - path: 'http://10.0.0.1/x'\n") == (
        "1 problem in scenario:\n"
        "s.yaml:3: ==> At key: endpoints[0].path\n"
        "    error: path 'http://10.0.0.1/x' does not start with '/'\n"
        "    fix: write the path only, e.g. '/api/items': the scheme and host come from 'target:'")


def test_captures_jmespath_and_regex_compile_at_validation():
    text = ("target: demo\nendpoints:\n  - path: /\n    capture:\n      item-id: {json: id}\n"
            "      a: {json: 'items[0'}\n      b: {regex: 'id=(\\d+'}\n      c: {header: ''}\n      d: {json: ''}\n"
            "    expect:\n      json: [{path: 'a..b', exists: true}]\n")
    assert problems(text) == (
        "6 problems in scenario:\n"
        "s.yaml:5: ==> At key: endpoints[0].capture.item-id\n"
        "    error: capture name 'item-id' cannot be used in a template\n"
        "    fix: use letters, digits and '_', not starting with a digit (e.g. item_id)\n"
        "s.yaml:6: ==> At key: endpoints[0].capture.a.json\n"
        "    error: invalid JMESPath 'items[0': the expression is incomplete at column 7\n"
        "    fix: see https://jmespath.org (e.g. 'items[0].id', 'data.token')\n"
        "s.yaml:7: ==> At key: endpoints[0].capture.b.regex\n"
        "    error: invalid regular expression: missing ), unterminated subpattern at position 3\n"
        "    fix: check brackets and escapes (in YAML, single-quote the pattern)\n"
        "s.yaml:8: ==> At key: endpoints[0].capture.c.header\n"
        "    error: the header name to capture is empty\n"
        "    fix: name the response header, e.g. 'header: ETag'\n"
        "s.yaml:9: ==> At key: endpoints[0].capture.d.json\n"
        "    error: empty JMESPath expression\n"
        "    fix: write a path into the JSON, e.g. 'data.id'\n"
        "s.yaml:11: ==> At key: endpoints[0].expect.json[0].path\n"
        "    error: invalid JMESPath 'a..b': expecting: ['quoted_identifier', 'unquoted_identifier', 'lbracket', "
        "'lbrace'], got: dot at column 2\n"
        "    fix: see https://jmespath.org (e.g. 'items[0].id', 'data.token')")


def test_token_login_jmespath_and_header_checked():
    text = ("target: demo\ncredentials: {inline: [{username: a, password: b}]}\n"
            "login: {token: {path: /t, json: {u: x}, token: 'data.[', header: 'X Tok'}}\nendpoints: [{path: /}]\n")
    assert problems(text) == (
        "2 problems in scenario:\n"
        "s.yaml:3: ==> At key: login.token.header\n"
        "    error: header name 'X Tok' is not a valid HTTP header name\n"
        "    fix: leave it out for 'Authorization', or name a header\n"
        "s.yaml:3: ==> At key: login.token.token\n"
        "    error: invalid JMESPath 'data.[': the expression is incomplete at column 6\n"
        "    fix: see https://jmespath.org (e.g. 'items[0].id', 'data.token')")


def test_status_codes_are_http_status_codes():
    assert problems("target: demo\nendpoints:\n  - path: /\n    expect: {status: [2000, -1]}\n") == (
        "2 problems in scenario:\n"
        "s.yaml:4: ==> At key: endpoints[0].expect.status[0]\n"
        "    error: 2000 is not an HTTP status code\n"
        "    fix: use status codes from 100 to 599\n"
        "s.yaml:4: ==> At key: endpoints[0].expect.status[1]\n"
        "    error: -1 is not an HTTP status code\n"
        "    fix: use status codes from 100 to 599")
    assert "error: 99 is not an HTTP status code" in problems(
        "target: demo\nendpoints:\n  - path: /\n    expect: {status: 99}\n")


DUP_FIX = "    fix: give each request its own 'name:': requests with one name share their statistics and thresholds"


def test_duplicate_request_names_name_both_places():
    text = ("target: demo\ncredentials: {inline: [{username: a, password: b}]}\n"
            "login: {form: {path: /login, fields: {u: x}}}\nendpoints:\n  - {name: list, path: /a}\n"
            "  - {name: list, path: /b}\n  - {name: login, path: /c}\nflows:\n  - name: f\n    steps:\n"
            "      - {path: /s}\n      - {path: /s}\n")
    assert problems(text) == (
        "3 problems in scenario:\n"
        "s.yaml:6: ==> At key: endpoints[1]\n"
        f"    error: request name 'list' is also used by endpoints[0] (line 5)\n{DUP_FIX}\n"
        "s.yaml:7: ==> At key: endpoints[2]\n"
        f"    error: request name 'login' is also used by the login request (line 3)\n{DUP_FIX}\n"
        "s.yaml:12: ==> At key: flows[0].steps[1]\n"
        f"    error: request name 'f: GET /s' is also used by flows[0].steps[0] (line 11)\n{DUP_FIX}")


CONNECTION_FIX = ("    fix: remove it: the policy under test decides the Connection header (close sends "
                  "'Connection: close', shared keeps connections open)")


def test_a_connection_header_is_an_error_in_any_case_and_place():
    text = ("target:\n  host: demo\n  headers: {Connection: keep-alive}\nendpoints:\n  - path: /\n"
            "    headers: {connection: close, 'X Bad': '1', X-Ok: \"a\\r\\nInjected: 1\"}\n"
            "flows:\n  - name: f\n    steps:\n      - {path: /, headers: {CONNECTION: close}}\n")
    assert problems(text) == (
        "5 problems in scenario:\n"
        "s.yaml:3: ==> At key: target.headers.Connection\n"
        f"    error: a Connection header would override the connection policy\n{CONNECTION_FIX}\n"
        "s.yaml:6: ==> At key: endpoints[0].headers.X Bad\n"
        "    error: header name 'X Bad' is not a valid HTTP header name\n"
        "    fix: use letters, digits and '-' (e.g. X-Request-Id)\n"
        "s.yaml:6: ==> At key: endpoints[0].headers.X-Ok\n"
        "    error: the header value contains a line break\n"
        "    fix: write the value on one line\n"
        "s.yaml:6: ==> At key: endpoints[0].headers.connection\n"
        f"    error: a Connection header would override the connection policy\n{CONNECTION_FIX}\n"
        "s.yaml:10: ==> At key: flows[0].steps[0].headers.CONNECTION\n"
        f"    error: a Connection header would override the connection policy\n{CONNECTION_FIX}")


def test_variable_names_must_be_readable_by_templates():
    assert problems("target: demo\nvariables: {page-size: 1, ok_1: 2}\nendpoints: [{path: /}]\n") == (
        "1 problem in scenario:\n"
        "s.yaml:2: ==> At key: variables.page-size\n"
        "    error: variable name 'page-size' cannot be used in a template\n"
        "    fix: use letters, digits and '_', not starting with a digit (e.g. page_size)")


CA_FIX = ("    fix: give a PEM CA bundle ('-----BEGIN CERTIFICATE-----' blocks), a directory of hashed CA files, "
          "or 'verify: true' for the default trust store")
CERT_FIX = ("    fix: give PEM files: 'cert: both.pem' (certificate and unencrypted key in one file) or "
            "'cert: [client.crt, client.key]'; the key must belong to the certificate")


def tls_problems(tmp_path, spec: str) -> str:
    text = f"target: {{host: 'https://127.0.0.1:8443', {spec}}}\nendpoints: [{{path: /}}]\n"
    with pytest.raises(ScenarioError) as caught:
        load_text(text, str(tmp_path / "s.yaml"))
    return str(caught.value).replace(str(tmp_path), "T")


def test_tls_files_are_loaded_not_just_found(tmp_path):
    import os

    import trustme

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    client = ca.issue_cert("client@example.test")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "c.crt"))
    client.private_key_pem.write_to_path(str(tmp_path / "c.key"))
    trustme.CA().issue_cert("other").private_key_pem.write_to_path(str(tmp_path / "other.key"))
    (tmp_path / "notpem.pem").write_text("not a certificate\n")
    os.mkfifo(tmp_path / "fifo.pem")
    load_text("target: {host: 'https://127.0.0.1:8443', verify: ca.pem, cert: [c.crt, c.key]}\n"
              "endpoints: [{path: /}]\n", str(tmp_path / "s.yaml"))
    assert tls_problems(tmp_path, "verify: notpem.pem") == (
        "1 problem in scenario:\nT/s.yaml:1: ==> At key: target.verify\n"
        f"    error: cannot load 'notpem.pem' as CA certificates: no certificate or crl found\n{CA_FIX}")
    assert tls_problems(tmp_path, "verify: ca.pem, cert: [c.crt, other.key]") == (
        "1 problem in scenario:\nT/s.yaml:1: ==> At key: target.cert\n"
        f"    error: cannot load the client certificate from 'c.crt' and 'other.key': key values mismatch\n{CERT_FIX}")
    assert tls_problems(tmp_path, "verify: ca.pem, cert: notpem.pem") == (
        "1 problem in scenario:\nT/s.yaml:1: ==> At key: target.cert\n"
        "    error: cannot load the client certificate from 'notpem.pem': not PEM, or the key is missing, "
        f"encrypted or not PEM\n{CERT_FIX}")
    assert tls_problems(tmp_path, "verify: fifo.pem") == (
        "1 problem in scenario:\nT/s.yaml:1: ==> At key: target.verify\n"
        "    error: 'fifo.pem' is not a regular file\n"
        "    fix: give a PEM file (relative paths are relative to the scenario file)")


def test_a_bad_capture_name_gives_no_follow_on_about_its_parts():
    text = "target: demo\nendpoints:\n  - {path: /, capture: {item-id: {json: id}}}\n  - {path: '/{{ item-id }}'}\n"
    assert problems(text) == (
        "1 problem in scenario:\n"
        "s.yaml:3: ==> At key: endpoints[0].capture.item-id\n"
        "    error: capture name 'item-id' cannot be used in a template\n"
        "    fix: use letters, digits and '_', not starting with a digit (e.g. item_id)")


def test_hostile_expressions_are_bounded_errors():
    def capture(spec: str) -> str:
        return problems(f"target: demo\nendpoints:\n  - path: /\n    capture:\n      x: {spec}\n")

    deep = "(" * 3000 + ")" * 3000
    assert "error: invalid regular expression: nested too deeply\n" in capture(f"{{regex: '{deep}'}}")
    assert "error: invalid regular expression: a repetition count is too large\n" in capture("{regex: 'a{4294967296}'}")
    assert "error: the JMESPath expression is nested too deeply\n" in capture("{json: '" + "[" * 3000 + "'}")
    long = "a." * 6000 + "a"
    assert "error: the JMESPath expression is longer than 10000 characters\n" in capture(f"{{json: '{long}'}}")


def test_login_host_name_is_checked():
    text = ("target: {hosts: {api: 'http://127.0.0.1:8080'}}\ncredentials: {inline: [{username: a, password: b}]}\n"
            "login: {form: {path: /login, host: apj, fields: {u: x}}}\nendpoints: [{path: /, host: api}]\n")
    assert problems(text) == (
        "1 problem in scenario:\n"
        "s.yaml:3: ==> At key: login.form.host\n"
        "    error: unknown host name 'apj'\n"
        "    fix: did you mean 'api'? (allowed host names: api)")


# -- a corpus of scenarios that fit the schema but mean something wrong ----------------------------
# Each must give exactly one located problem (no follow-on messages) at the key that is wrong,
# through the library and through `workload validate` (exit 2, no traceback).
T = "target: demo\n"
E = "endpoints: [{path: /}]\n"
CREDS = "credentials: {inline: [{username: a, password: b}]}\n"

CORPUS: list[tuple[str, str, str, str]] = [
    # (id, scenario, key path, error text)
    ("userinfo", "target: 'http://u:p@127.0.0.1:8080'\n" + E, "target.host", "carries a user name or password"),
    ("userinfo-user-only", "target: 'http://u@127.0.0.1:8080'\n" + E, "target.host", "carries a user name"),
    ("ipv6-open", "target: 'http://[::1'\n" + E, "target.host", "Invalid IPv6 URL"),
    ("ipv6-junk", "target: 'http://[zz]:80'\n" + E, "target.host", "invalid URL"),
    ("port-0", "target: 'http://127.0.0.1:0'\n" + E, "target.host", "invalid port"),
    ("port-big", "target: 'http://127.0.0.1:65536'\n" + E, "target.host", "invalid port"),
    ("port-negative", "target: 'http://127.0.0.1:-1'\n" + E, "target.host", "invalid port"),
    ("port-unicode", "target: 'http://127.0.0.1:８０'\n" + E, "target.host", "invalid port"),
    ("host-space", "target: 'http://127.0.0 .1:80'\n" + E, "target.host", "contains spaces"),
    ("host-tab", "target: \"http://127.0.0.1\\t:80\"\n" + E, "target.host", "control characters"),
    ("host-newline", "target: \"http://127.0.0.1:80\\r\\nX: y\"\n" + E, "target.host", "control characters"),
    ("host-dollar", "target: 'http://exa$mple:80'\n" + E, "target.host", "invalid host name"),
    ("host-dash", "target: 'http://-x.test:80'\n" + E, "target.host", "invalid host name"),
    ("host-empty-label", "target: 'http://a..b:80'\n" + E, "target.host", "invalid host name"),
    ("fragment", "target: 'http://127.0.0.1:80#x'\n" + E, "target.host", "has a fragment"),
    ("scheme-ftp", "target: 'ftp://127.0.0.1'\n" + E, "target.host", "invalid URL"),
    ("scheme-file", "target: 'file:///etc/passwd'\n" + E, "target.host", "invalid URL"),
    ("scheme-none", "target: '127.0.0.1:8080'\n" + E, "target.host", "invalid URL"),
    ("path-in-url", "target: 'http://127.0.0.1:80/api'\n" + E, "target.host", "has a path or query"),
    ("named-host-bad", "target: {hosts: {a: 'http://[::1'}}\nendpoints: [{path: /, host: a}]\n", "target.hosts.a",
     "Invalid IPv6 URL"),
    ("policy-dotdot", T + E + "policies: {../x: {type: shared}}\n", "policies.../x", "cannot be used as a file name"),
    ("policy-dash", T + E + "policies: {-u: {type: shared}}\n", "policies.-u", "cannot be used as a file name"),
    ("policy-slash", T + E + "policies: {a/b: {type: shared}}\n", "policies.a/b", "cannot be used as a file name"),
    ("policy-space", T + E + "policies: {a b: {type: shared}}\n", "policies.a b", "cannot be used as a file name"),
    ("policy-long", T + E + f"policies: {{{'p' * 65}: {{type: shared}}}}\n", f"policies.{'p' * 65}",
     "cannot be used as a file name"),
    ("policy-nul", T + E + "policies: {\"a\\0b\": {type: shared}}\n", "policies.a\0b", "cannot be used as a file name"),
    ("scenario-name", "name: ../../x\n" + T + E, "name", "scenario name '../../x'"),
    ("status-2000", T + "endpoints: [{path: /, expect: {status: 2000}}]\n", "endpoints[0].expect.status",
     "2000 is not an HTTP status code"),
    ("status-negative", T + "endpoints: [{path: /, expect: {status: [200, -1]}}]\n",
     "endpoints[0].expect.status[1]", "-1 is not an HTTP status code"),
    ("status-login", T + CREDS + "login: {form: {path: /l, fields: {u: x}, expect: {status: 0}}}\n" + E,
     "login.form.expect.status", "0 is not an HTTP status code"),
    ("jmespath-capture", T + "endpoints: [{path: /, capture: {a: {json: 'x[?'}}}]\n", "endpoints[0].capture.a.json",
     "invalid JMESPath"),
    ("jmespath-expect", T + "endpoints: [{path: /, expect: {json: [{path: '..', exists: true}]}}]\n",
     "endpoints[0].expect.json[0].path", "invalid JMESPath"),
    ("jmespath-token", T + CREDS + "login: {token: {path: /t, json: {a: b}, token: 'a b'}}\n" + E,
     "login.token.token", "invalid JMESPath"),
    ("jmespath-empty", T + "endpoints: [{path: /, capture: {a: {json: ''}}}]\n", "endpoints[0].capture.a.json",
     "empty JMESPath expression"),
    ("regex-bad", T + "endpoints: [{path: /, capture: {a: {regex: '[z-a]'}}}]\n", "endpoints[0].capture.a.regex",
     "bad character range"),
    ("regex-empty", T + "endpoints: [{path: /, capture: {a: {regex: ''}}}]\n", "endpoints[0].capture.a.regex",
     "empty regular expression"),
    ("capture-header-empty", T + "endpoints: [{path: /, capture: {a: {header: ''}}}]\n",
     "endpoints[0].capture.a.header", "the header name to capture is empty"),
    ("capture-cookie-empty", T + "endpoints: [{path: /, capture: {a: {cookie: ''}}}]\n",
     "endpoints[0].capture.a.cookie", "the cookie name to capture is empty"),
    ("capture-name-empty", T + "endpoints: [{path: /, capture: {'': {json: id}}}]\n", "endpoints[0].capture.",
     "capture name '' cannot be used"),
    ("capture-name-digit", T + "endpoints: [{path: /, capture: {1st: {json: id}}}]\n", "endpoints[0].capture.1st",
     "capture name '1st' cannot be used"),
    ("token-header-empty", T + CREDS + "login: {token: {path: /t, json: {a: b}, header: ''}}\n" + E,
     "login.token.header", "is not a valid HTTP header name"),
    ("dup-endpoints", T + "endpoints: [{name: a, path: /x}, {name: a, path: /y}]\n", "endpoints[1]",
     "request name 'a' is also used by endpoints[0]"),
    ("dup-unnamed", T + "endpoints: [{path: /x}, {path: /x, query: {a: 1}}]\n", "endpoints[1]",
     "request name 'GET /x' is also used"),
    ("dup-flow-endpoint", T + "endpoints: [{name: a, path: /x}]\nflows: [{name: f, steps: [{name: a, path: /y}]}]\n",
     "flows[0].steps[0]", "request name 'a' is also used by endpoints[0]"),
    ("dup-login", T + CREDS + "login: {token: {path: /t, json: {a: b}}}\nendpoints: [{name: login, path: /x}]\n",
     "endpoints[0]", "is also used by the login request"),
    ("connection-target", "target: {host: demo, headers: {Connection: close}}\n" + E, "target.headers.Connection",
     "a Connection header would override the connection policy"),
    ("connection-request", T + "endpoints: [{path: /, headers: {cOnNeCtIoN: keep-alive}}]\n",
     "endpoints[0].headers.cOnNeCtIoN", "a Connection header would override"),
    ("connection-step", T + "flows: [{name: f, steps: [{path: /, headers: {connection: close}}]}]\n",
     "flows[0].steps[0].headers.connection", "a Connection header would override"),
    ("header-name-space", T + "endpoints: [{path: /, headers: {'A B': x}}]\n", "endpoints[0].headers.A B",
     "is not a valid HTTP header name"),
    ("header-name-colon", T + "endpoints: [{path: /, headers: {'A:': x}}]\n", "endpoints[0].headers.A:",
     "is not a valid HTTP header name"),
    ("header-crlf", T + "endpoints: [{path: /, headers: {A: \"x\\r\\nHost: evil\"}}]\n", "endpoints[0].headers.A",
     "line break"),
    ("path-url", T + "endpoints: [{path: 'http://127.0.0.2/'}]\n", "endpoints[0].path", "does not start with '/'"),
    ("path-at", T + "endpoints: [{path: '@127.0.0.2/x'}]\n", "endpoints[0].path", "does not start with '/'"),
    ("path-empty", T + "endpoints: [{path: ''}]\n", "endpoints[0].path", "does not start with '/'"),
    ("login-path", T + CREDS + "login: {form: {path: login, fields: {u: x}}}\n" + E, "login.form.path",
     "does not start with '/'"),
    ("login-host", T + CREDS + "login: {form: {path: /l, host: nope, fields: {u: x}}}\n" + E, "login.form.host",
     "unknown host name 'nope'"),
    ("variable-name", T + "variables: {a-b: 1}\n" + E, "variables.a-b", "variable name 'a-b' cannot be used"),
    ("user-field", T + CREDS + "endpoints: [{path: '/{{ user.usr }}'}]\n", "endpoints[0].path",
     "the credentials have no field 'usr'"),
    ("user-field-item", T + CREDS + "endpoints: [{path: \"/{{ user['pw'] }}\"}]\n", "endpoints[0].path",
     "the credentials have no field 'pw'"),
    ("user-without-creds", T + "endpoints: [{path: '/{{ user.username }}'}]\n", "endpoints[0].path",
     "template variable 'user' is not defined"),
    ("template-self", T + "endpoints: [{path: '/{{ self }}'}]\n", "endpoints[0].path", "'self' is not available"),
    ("template-dunder-key", T + "variables: {d: {a: 1}}\nendpoints: [{path: \"/{{ d['__class__'] }}\"}]\n",
     "endpoints[0].path", "private attribute '__class__'"),
    ("template-key", T + "endpoints: [{path: /, json: {'{{ x.__class__ }}': 1}}]\n",
     "endpoints[0].json.{{ x.__class__ }}", "private attribute '__class__'"),
    ("template-cookie", "target: {host: demo, cookies: [{name: a, value: '{{ lipsum.__globals__ }}', "
     "domain: 127.0.0.1}]}\n" + E, "target.cookies[0].value", "private attribute '__globals__'"),
    ("template-big-int", T + "endpoints: [{path: '/{{ 7 ** 100000 }}'}]\n", "endpoints[0].path",
     "template value too large"),
    ("template-big-list", T + "endpoints: [{path: '/{{ [0] * 999999999 }}'}]\n", "endpoints[0].path",
     "template value too large"),
    ("template-big-concat", T + "endpoints: [{path: \"/{{ ('a' * 1000000) ~ ('b' * 1000000) }}\"}]\n",
     "endpoints[0].path", "template value too large"),
    ("template-helper-arg", T + "endpoints: [{path: '/{{ uuid4(1) }}'}]\n", "endpoints[0].path",
     "uuid4() cannot take these arguments"),
    ("template-unknown-test", T + "endpoints: [{path: '/{{ 1 is callable }}'}]\n", "endpoints[0].path",
     "unknown template test 'callable'"),
    ("template-dyn-args", T + "variables: {a: [1, 2]}\nendpoints: [{path: '/{{ randint(*a) }}'}]\n",
     "endpoints[0].path", "'*' and '**' arguments are not allowed"),
]


@pytest.mark.parametrize(("text", "key", "error"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_semantic_corpus_one_located_problem_each(text: str, key: str, error: str) -> None:
    message = problems(text)
    assert message.startswith("1 problem in scenario:\ns.yaml:"), message
    assert f"==> At key: {key}\n" in message, message
    assert error in message.split("\n    error: ", 1)[1].split("\n")[0], message


@pytest.mark.slow
def test_semantic_corpus_through_the_command_line(tmp_path: Path) -> None:
    files = []
    for name, text, _, _ in CORPUS:
        files.append(f"{name}.yaml")
        (tmp_path / files[-1]).write_text(text)
    done = subprocess.run([sys.executable, "-m", "workload.cli", "validate", *files], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and " ok (" not in done.stdout
    assert done.stderr.count("1 problem in scenario:") == len(CORPUS), done.stderr
