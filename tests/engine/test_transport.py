"""Connection policies on the wire, checked against the demo target's accepted-connection counter.

The policy tests run on every engine that supports the policy (`engine` fixture): the same
scenario, the same expected connections.
"""

from __future__ import annotations

import ssl

import pytest

from tests.helpers import accepted, harness, run_tasks
from workload.errors import ScenarioError
from workload.scenario.loader import load_text
from workload.telemetry.connections import STATS

SCENARIO = """
    target: {host: "%(host)s", verify: false}
    endpoints:
      - {name: status, path: /status/200}
    policies:
      shared: {pool_maxsize: 2, engine: %(engine)s}
      close: {engine: %(engine)s}
      fresh: {engine: %(engine)s}
      recycle: {every_requests: 10, engine: %(engine)s}
      process: {type: shared, scope: process, pool_maxsize: 2, pool_block: true, engine: %(engine)s}
      untuned: {type: close, ssl_context: per_connection}
"""
ENGINES = ("requests", "fast", "httpx")


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _scenario(host: str = "demo", engine: str = "requests") -> str:
    return SCENARIO % {"host": host, "engine": engine}


def test_shared_reuses_connections_up_to_users_times_pool_size(demo_target, engine):
    h = harness(_scenario(engine=engine), "shared", demo_target)
    before = accepted(demo_target)
    run_tasks(h.users(3), iterations=100)
    opened = accepted(demo_target) - before
    assert h.requests() == 300 and not h.errors()
    assert 1 <= opened <= 3 * 2
    assert STATS.tcp_connects == opened


@pytest.mark.parametrize("policy", ["close", "fresh"])
def test_close_and_fresh_open_one_connection_per_request(demo_target, policy, engine):
    h = harness(_scenario(engine=engine), policy, demo_target)
    before = accepted(demo_target)
    run_tasks(h.users(1), iterations=40)
    assert h.requests() == 40 and not h.errors()
    assert accepted(demo_target) - before == 40
    assert STATS.tcp_connects == 40


def test_recycle_opens_one_connection_per_n_requests(demo_target, engine):
    h = harness(_scenario(engine=engine), "recycle", demo_target)
    before = accepted(demo_target)
    run_tasks(h.users(1), iterations=50)
    assert h.requests() == 50 and not h.errors()
    assert accepted(demo_target) - before == 5


def test_process_scope_shares_one_pool_across_users(demo_target, engine):
    h = harness(_scenario(engine=engine), "process", demo_target)
    before = accepted(demo_target)
    run_tasks(h.users(5), iterations=40)
    assert h.requests() == 200 and not h.errors()
    # Five concurrent users, one blocking pool of two connections for the whole process.
    assert 1 <= accepted(demo_target) - before <= 2
    assert STATS.pool_waits >= 1  # five users, two connections: some request waited


def test_https_close_uses_one_shared_ssl_context(demo_target, engine):
    h = harness(_scenario("https://demo", engine), "close", demo_target)
    users = h.users(1)
    run_tasks(users, iterations=10)
    assert h.requests() == 10 and not h.errors()
    assert STATS.tls_handshakes == 10 and STATS.tcp_connects == 10
    if engine == "fast":
        pools = [c._connection_pool for c in users[0].client.client.clientpool.clients.values()]
        assert pools and all(p.ssl_context is h.user_class.transport.ssl_context for p in pools)
        return
    if engine == "httpx":
        pool = users[0].client.get_adapter("https://").pool
        assert pool.transports["https"]._pool._ssl_context is h.user_class.transport.ssl_context
        return
    adapter = users[0].client.get_adapter("https://")
    pools = [adapter.poolmanager.pools[key] for key in adapter.poolmanager.pools.keys()]  # noqa: SIM118 (not a dict)
    assert pools and all(p.conn_kw["ssl_context"] is h.user_class.transport.ssl_context for p in pools)


def test_per_connection_policy_has_no_shared_context(demo_target):
    h = harness(_scenario("https://demo"), "untuned", demo_target)
    users = h.users(1)
    run_tasks(users, iterations=3)
    assert h.requests() == 3 and not h.errors()
    assert h.user_class.transport.ssl_context is None
    adapter = users[0].client.get_adapter("https://")
    pools = [adapter.poolmanager.pools[key] for key in adapter.poolmanager.pools.keys()]  # noqa: SIM118 (not a dict)
    assert pools and all("ssl_context" not in p.conn_kw for p in pools)


def test_verify_true_trusts_the_demo_ca(demo_target, engine):
    h = harness(_scenario("https://demo", engine).replace("verify: false", "verify: true"), "shared", demo_target)
    run_tasks(h.users(1), iterations=5)
    assert h.requests() == 5 and not h.errors()


def test_every_request_is_timed_out_by_default(demo_target):
    h = harness(_scenario(), "shared", demo_target)
    assert h.user_class.transport.timeout == (5.0, 10.0)


def test_ca_bundle_and_client_certificate_relative_to_the_scenario(demo_target, tmp_path):
    import shutil

    import trustme

    shutil.copy(demo_target.ca_path, tmp_path / "ca.pem")
    client = trustme.CA().issue_cert("client@example.test")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "client.crt"))
    client.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    text = """
    target: {host: "https://demo", verify: ca.pem, cert: [client.crt, client.key]}
    endpoints: [{name: status, path: /status/200}]
    policies: {close: {}}
    """
    h = harness(text, "close", demo_target, file=str(tmp_path / "s.yaml"))
    run_tasks(h.users(1), iterations=3, login=False)
    assert h.requests() == 3 and not h.errors()
    assert h.user_class.transport.ssl_context.verify_mode == ssl.CERT_REQUIRED


def test_missing_tls_files_are_reported_before_any_request(tmp_path):
    text = "target: {host: 'https://127.0.0.1:8443', verify: nope.pem, cert: [a.crt, b.key]}\nendpoints: [{path: /}]\n"
    with pytest.raises(ScenarioError) as caught:
        load_text(text, str(tmp_path / "s.yaml"))
    where = tmp_path / "s.yaml"
    fix = ("    fix: give an existing PEM file (relative paths are relative to the scenario file), "
           "or 'verify: true' for the system trust store")
    assert str(caught.value) == (
        f"3 problems in scenario:\n"
        f"{where}:1: ==> At key: target.cert[0]\n    error: file not found: 'a.crt'\n{fix}\n"
        f"{where}:1: ==> At key: target.cert[1]\n    error: file not found: 'b.key'\n{fix}\n"
        f"{where}:1: ==> At key: target.verify\n    error: file not found: 'nope.pem'\n{fix}")


def _with_headers(step, headers):
    import dataclasses

    from workload.scenario.templating import Value

    # Built past validation on purpose: whatever reaches the session, the policy must win.
    return dataclasses.replace(step, headers=Value(headers))


@pytest.mark.parametrize(("policy", "sent", "expected_connections"), [
    ("close", "keep-alive", 30),  # close: one connection per request although keep-alive was asked
    ("shared", "close", 1),  # shared: one kept connection although close was asked
])
def test_the_policy_owns_the_connection_header(demo_target, policy, sent, expected_connections, engine):
    h = harness(_scenario(engine=engine), policy, demo_target)
    [user] = h.users(1)
    user.client.headers["Connection"] = sent  # as target.headers would put it on the session
    plain = user.tasks[0]
    echo = _with_headers(_echo_step(h), {"Connection": sent})
    before = accepted(demo_target)
    for _ in range(10):
        plain(user)
        parsed = user.send(echo)
        assert parsed is not None
        assert parsed.json()["headers"]["Connection"].lower() == ("close" if policy == "close" else "keep-alive")
        plain(user)
    assert h.requests() == 30 and not h.errors()
    assert accepted(demo_target) - before == expected_connections


def _echo_step(h):
    from workload.plan.steps import compile_step
    from workload.scenario.schema import Request

    return compile_step(Request(name="echo", path="/echo", capture={"seen": {"json": "headers"}}),
                        h.user_class.plan.target.hosts)


OFFSITE = """
    target:
      host: demo
      headers: {X-Api-Key: key-not-for-strangers}
      follow_offsite_redirects: %(follow)s
    credentials: {inline: [{username: olga, password: olga-pw}]}
    login:
      form: {path: /login, fields: {username: "{{ user.username }}", password: "{{ user.password }}"}}
    endpoints:
      - {name: away, path: "/redirect?to=%(url)s/landing"}
    policies: {shared: {engine: %(engine)s}, fresh: {engine: %(engine)s}}
"""


@pytest.mark.parametrize("policy", ["shared", "fresh"])
def test_a_redirect_to_an_undeclared_host_is_not_followed(demo_target, policy, engine):
    from tests.rawserver import http_response, raw_server
    from workload.engine.recorder import stats_section

    with raw_server(lambda n: http_response(b"landed"), host="127.0.0.2") as other:
        h = harness(OFFSITE % {"follow": "false", "url": other.url, "engine": engine}, policy, demo_target)
        run_tasks(h.users(1), iterations=5)
    assert other.connections == 0
    [row] = stats_section(h.env.stats, [])["errors"]
    assert row["cause"] == "redirect_offsite" and row["occurrences"] == 5
    port = other.url.rsplit(":", 1)[1]
    assert row["error"] == (f"redirect_offsite: not following a redirect to 127.0.0.2:{port}, a host the scenario "
                            "does not declare (declare it in target.hosts, or set target.follow_offsite_redirects: "
                            "true)")


@pytest.mark.parametrize("other_host", ["127.0.0.2", "127.0.0.1"])  # same IP, other port: cookies would match
def test_an_allowed_offsite_redirect_carries_none_of_the_scenarios_headers(demo_target, other_host, engine):
    from tests.rawserver import http_response, raw_server
    from workload.plan.steps import compile_step
    from workload.scenario.schema import Request

    with raw_server(lambda n: http_response(b"landed"), host=other_host) as other:
        h = harness(OFFSITE % {"follow": "true", "url": other.url, "engine": engine}, "shared", demo_target)
        [user] = h.users(1)
        run_tasks([user], iterations=3)
        home = compile_step(Request(name="home", path="/redirect?to=/echo",
                                    capture={"key": {"json": 'headers."X-Api-Key"'}}), {})
        assert user.send(home) is not None  # an on-site redirect keeps them
    assert other.connections == 3 and not h.errors(), h.errors()
    seen = other.headers_seen()
    assert "get /landing http/1.1" in seen
    for secret in ("key-not-for-strangers", "x-api-key", "cookie", "session=", "authorization"):
        assert secret not in seen
    assert user.vars["key"] == "key-not-for-strangers"



def test_a_tls_file_that_went_bad_after_validation_is_a_tls_file_error(tmp_path):
    # Validation loads the file first (scenario.tls_files); here it changed before the run started.
    from workload.engine.transport import PolicyTransport
    from workload.errors import TlsFileError
    from workload.scenario.schema import Policy

    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(TlsFileError) as raised:
        PolicyTransport("shared", Policy(type="shared"), str(bad), None)
    text = str(raised.value)
    assert text.startswith(f"error: policy 'shared': cannot load the TLS files (verify='{bad}', cert=None)")
    assert text.endswith("\n    fix: give PEM files (a CA bundle for verify, certificate and key for cert)")
