"""`workload check`: one case per silent failure, with the exact warning a person reads."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest

from workload import cli
from workload.lint.checker import lint, lint_file, log_warnings
from workload.scenario.loader import load_scenario
from workload.telemetry import port_headroom

ROOT = Path(__file__).resolve().parents[2]
BASE = """\
target:
  host: http://127.0.0.1:8080
endpoints:
  - path: /a
policies:
  shared: {timeout: 5}
load: {users: 10, duration: 10s}
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def warnings(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    return "\n".join(p.render() for p in lint_file(path)).replace(path, "s.yaml")


def test_a_clean_scenario_has_no_warnings(tmp_path):
    assert warnings(tmp_path, BASE) == ""


def test_cookie_for_another_domain_is_never_sent(tmp_path):
    text = BASE.replace("  host: http://127.0.0.1:8080\n", "  host: http://127.0.0.1:8080\n  cookies:\n"
                        "    - {name: sid, value: x, domain: .example.com}\n")
    assert warnings(tmp_path, text) == (
        "s.yaml:4: ==> At key: target.cookies[0].domain\n"
        "    warning: preset cookie 'sid' (domain '.example.com') is never sent: it matches none of the hosts "
        "the requests go to (127.0.0.1)\n"
        "    fix: an IP address matches only itself: set 'domain: 127.0.0.1'")


def test_cookie_for_localhost_needs_the_local_suffix(tmp_path):
    text = BASE.replace("http://127.0.0.1:8080", "http://localhost:8080") \
        .replace("endpoints:", "  cookies: [{name: s, value: x, domain: localhost}]\nendpoints:", 1)
    assert warnings(tmp_path, text) == (
        "s.yaml:3: ==> At key: target.cookies[0].domain\n"
        "    warning: preset cookie 's' (domain 'localhost') is never sent: it matches none of the hosts "
        "the requests go to (localhost)\n"
        "    fix: requests treats the dotless host 'localhost' as 'localhost.local': set 'domain: localhost.local'")


def test_secure_cookie_over_http_and_a_matching_cookie(tmp_path):
    text = BASE.replace("endpoints:", "  cookies:\n    - {name: s, value: x, domain: 127.0.0.1, secure: true}\n"
                        "    - {name: ok, value: y, domain: 127.0.0.1}\nendpoints:", 1)
    assert warnings(tmp_path, text) == (
        "s.yaml:4: ==> At key: target.cookies[0].domain\n"
        "    warning: preset cookie 's' (domain '127.0.0.1') is never sent: it matches none of the hosts "
        "the requests go to (127.0.0.1)\n"
        "    fix: secure cookies are only sent over https: set 'secure: false' or use an https:// host")


def test_cookie_for_the_demo_target_matches_its_loopback_address(tmp_path):
    text = "target:\n  host: demo\n  cookies: [{name: s, value: x, domain: 127.0.0.1}]\n" + BASE.split("\n", 2)[2]
    assert warnings(tmp_path, text) == ""


def test_endpoint_authorization_replaces_the_token_login(tmp_path):
    text = BASE.replace("  - path: /a\n", "  - path: /a\n    headers: {Authorization: Bearer fixed}\n") + \
        "login:\n  token: {path: /token, json: {u: a}}\n"
    assert warnings(tmp_path, text) == (
        "s.yaml:5: ==> At key: endpoints[0].headers.Authorization\n"
        "    warning: header 'Authorization' replaces the token that login.token sets on the session: this "
        "request is sent without the login token (per-request headers override session headers, they do not "
        "add to them)\n"
        "    fix: remove the header to send the login token; use another header name to send both")


def test_endpoint_authorization_is_overwritten_by_basic_login(tmp_path):
    text = BASE.replace("  - path: /a\n", "  - path: /a\n    headers: {authorization: Bearer fixed}\n") + \
        "login:\n  basic: {username: u, password: p}\n"
    assert warnings(tmp_path, text) == (
        "s.yaml:5: ==> At key: endpoints[0].headers.authorization\n"
        "    warning: header 'authorization' is overwritten by login.basic: requests applies the session's basic "
        "auth after the request's headers, so this value is never sent\n"
        "    fix: remove the header, or drop login.basic if requests need their own Authorization")


def test_flow_step_cookie_header_drops_the_form_login_cookie(tmp_path):
    text = BASE.replace("  - path: /a\n", "  - path: /a\nflows:\n  - name: f\n    steps:\n"
                        "      - {path: /b, headers: {Cookie: a=b}}\n") + \
        "login:\n  form: {path: /login, fields: {u: a}}\n"
    assert warnings(tmp_path, text) == (
        "s.yaml:8: ==> At key: flows[0].steps[0].headers.Cookie\n"
        "    warning: header 'Cookie' replaces the session's cookie jar for this request: the jar, with the "
        "login.form session cookie, is not sent (requests adds the jar only when no Cookie header is set)\n"
        "    fix: remove the header; put fixed cookies under 'target.cookies' (they join the jar)")


def test_target_cookie_header_drops_the_jar_on_every_request(tmp_path):
    text = BASE.replace("endpoints:", "  headers: {Cookie: a=b}\n  cookies: [{name: s, value: x, "
                        "domain: 127.0.0.1}]\nendpoints:", 1)
    assert warnings(tmp_path, text) == (
        "s.yaml:3: ==> At key: target.headers.Cookie\n"
        "    warning: target.headers.Cookie replaces the cookie jar on every request: the jar, with the "
        "target.cookies, is never sent (requests adds the jar only when no Cookie header is set)\n"
        "    fix: remove the Cookie header; put fixed cookies under 'target.cookies' (they join the jar)")


def test_endpoint_authorization_replaces_the_target_header(tmp_path):
    text = BASE.replace("endpoints:", "  headers: {Authorization: Bearer t}\nendpoints:", 1) \
        .replace("  - path: /a\n", "  - path: /a\n    headers: {Authorization: Bearer other}\n")
    assert warnings(tmp_path, text) == (
        "s.yaml:6: ==> At key: endpoints[0].headers.Authorization\n"
        "    warning: header 'Authorization' replaces target.headers.Authorization for this request (per-request "
        "headers override session headers, they do not add to them)\n"
        "    fix: remove it here, or remove it from target.headers if every request sets its own")


def test_process_pool_smaller_than_the_users(tmp_path):
    text = BASE.replace("shared: {timeout: 5}", "shared: {timeout: 5, scope: process, pool_maxsize: 4}")
    assert warnings(tmp_path, text) == (
        "s.yaml:6: ==> At key: policies.shared.pool_maxsize\n"
        "    warning: pool_maxsize 4 is below the 10 users sharing this process-wide pool (up to 10 requests per "
        "host in flight at once): the extra connections are opened and then discarded (pool discards, extra "
        "client TIME_WAIT)\n"
        "    fix: set 'pool_maxsize: 10' (or more), or 'scope: user'")


def test_blocking_process_pool_makes_users_queue(tmp_path):
    text = BASE.replace("shared: {timeout: 5}", "shared: {timeout: 5, scope: process, pool_maxsize: 4, "
                        "pool_block: true}")
    assert "users queue for a free connection and the wait is counted as latency" in warnings(tmp_path, text)


def test_per_user_pool_of_one_is_enough(tmp_path):
    # One greenlet per user sends one request at a time: its own pool never needs two connections.
    assert warnings(tmp_path, BASE.replace("shared: {timeout: 5}", "shared: {timeout: 5, pool_maxsize: 1}")) == ""


def test_fewer_pools_than_hosts(tmp_path):
    text = BASE.replace("endpoints:", "  hosts: {b: 'http://127.0.0.2:8080'}\nendpoints:", 1) \
        .replace("  - path: /a\n", "  - path: /a\n  - {path: /b, host: b}\n") \
        .replace("shared: {timeout: 5}", "shared: {timeout: 5, pool_connections: 1}")
    assert warnings(tmp_path, text) == (
        "s.yaml:8: ==> At key: policies.shared.pool_connections\n"
        "    warning: pool_connections 1 is below the 2 hosts the requests go to: the least recently used host's "
        "pool is evicted and its connections closed, so connections are opened again instead of reused\n"
        "    fix: set 'pool_connections: 2' (or more)")


def test_read_timeout_longer_than_the_run(tmp_path):
    text = BASE.replace("shared: {timeout: 5}", "shared: {timeout: {connect: 2, read: 30}}")
    assert warnings(tmp_path, text) == (
        "s.yaml:6: ==> At key: policies.shared.timeout\n"
        "    warning: read timeout 30 s is longer than the run (10 s): a request that hangs is never timed out, "
        "so it is neither a failure nor a latency sample\n"
        "    fix: set 'timeout: {connect: 2, read: 3}' (shorter than the run)")


def test_command_line_load_replaces_the_scenarios(tmp_path):
    loaded = load_scenario(write(tmp_path, BASE))
    assert [p.what[:31] for p in lint(loaded, users=10, duration_s=4)] == ["read timeout 5 s is longer than"]


def test_time_wait_forecast_beyond_the_port_range(tmp_path):
    size = port_headroom()["size"]
    text = BASE.replace("shared: {timeout: 5}", "fresh: {timeout: 5}\n  close: {timeout: 5}\n"
                        "  recycle: {timeout: 5, every_requests: 2}\n  shared: {timeout: 5}") \
        .replace("users: 10", "users: 100").replace("duration: 10s", "duration: 2m") + "wait: {constant: 0}\n"
    assert warnings(tmp_path, text) == (
        "s.yaml:6: ==> At key: policies.fresh\n"
        "    warning: at about 10,000 requests/s (100 users, constant wait 0 s) this policy opens about 10,000 "
        f"connections/s; each ends in client TIME_WAIT for 60 s, about 600,000 sockets, more than the {size:,} "
        "ephemeral ports: connects then fail with 'Cannot assign requested address'\n"
        "    fix: lower the rate (fewer users, a longer wait), or reuse connections with type shared or recycle\n"
        "s.yaml:7: ==> At key: policies.close\n"
        "    warning: at about 10,000 requests/s (100 users, constant wait 0 s) this policy opens about 10,000 "
        "connections/s; the server closes first and holds about 600,000 sockets in TIME_WAIT for 60 s, more "
        f"than the client's {size:,} ephemeral ports: new connections reuse client ports the server still "
        "holds (connect stalls or resets)\n"
        "    fix: lower the rate (fewer users, a longer wait), or reuse connections with type shared or recycle\n"
        "s.yaml:8: ==> At key: policies.recycle\n"
        "    warning: at about 10,000 requests/s (100 users, constant wait 0 s) this policy opens about 5,000 "
        f"connections/s; each ends in client TIME_WAIT for 60 s, about 300,000 sockets, more than the {size:,} "
        "ephemeral ports: connects then fail with 'Cannot assign requested address'\n"
        "    fix: raise every_requests/every_seconds, or lower the rate (fewer users, a longer wait)")


def test_a_modest_rate_fits_the_port_range(tmp_path):
    text = BASE.replace("shared: {timeout: 5}", "fresh: {timeout: 5}") + "wait: {between: [0.5, 1.5]}\n"
    assert warnings(tmp_path, text) == ""


def test_check_exits_0_with_warnings_and_2_when_strict(tmp_path, capsys):
    path = write(tmp_path, BASE.replace("shared: {timeout: 5}", "shared: {timeout: 60}"))
    assert cli.main(["check", path]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: 1 warning:\n{path}:6: ==> At key: policies.shared.timeout\n    warning: ")
    assert cli.main(["check", "--strict", path]) == 2


def test_check_reports_invalid_files_and_passes_clean_ones(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("target: demo\nendpoints: [{path: /}]\nthresholds: {p96_ms: 1}\n")
    assert cli.main(["check", str(bad)]) == 2
    assert "error: unknown key 'p96_ms'" in capsys.readouterr().err
    assert cli.main(["check", "--strict", str(ROOT / "scenarios" / "ci.yaml")]) == 0
    assert capsys.readouterr().out.endswith("ci.yaml: ok (no warnings)\n")


def test_log_warnings_before_a_run_is_never_fatal(tmp_path, caplog):
    loaded = load_scenario(write(tmp_path, BASE.replace("shared: {timeout: 5}", "shared: {timeout: 60}")))
    with caplog.at_level(logging.WARNING, logger="workload"):
        assert log_warnings(loaded, users=None, duration_s=None) == 1
    assert "read timeout 60 s is longer than the run (10 s)" in caplog.text


@pytest.mark.parametrize("name", ["ci.yaml"])
def test_shipped_ci_scenario_is_lint_clean(name):
    assert lint_file(str(ROOT / "scenarios" / name)) == []


def test_the_default_read_timeout_counts_too(tmp_path):
    text = BASE.replace("shared: {timeout: 5}", "shared: {pool_maxsize: 2}").replace("duration: 10s", "duration: 8s")
    assert warnings(tmp_path, text) == (
        "s.yaml:6: ==> At key: policies.shared.timeout\n"
        "    warning: the default read timeout 10 s is longer than the run (8 s): a request that hangs is never "
        "timed out, so it is neither a failure nor a latency sample\n"
        "    fix: add 'timeout: {connect: 2, read: 2}' (shorter than the run)")


def test_a_run_shorter_than_time_wait_counts_only_its_own_seconds(tmp_path):
    size = port_headroom()["size"]
    text = BASE.replace("shared: {timeout: 5}", "fresh: {timeout: 0.5}").replace("users: 10", "users: 100") \
        + "wait: {constant: 0}\n"
    rate_fits = size // 10_000  # seconds of 10,000 connects/s the port range holds
    short = text.replace("duration: 10s", f"duration: {max(rate_fits - 1, 1)}s")
    assert warnings(tmp_path, short) == ""  # the run ends before its TIME_WAIT sockets fill the range
    long = text.replace("duration: 10s", f"duration: {rate_fits + 2}s")
    assert f"sockets (within this {rate_fits + 2} s run), more than the {size:,}" in warnings(tmp_path, long)


def test_one_warning_per_cause_names_every_policy(tmp_path):
    text = BASE.replace("shared: {timeout: 5}", "shared: {}\n  close: {}\n  fresh: {timeout: 3}") \
        .replace("duration: 10s", "duration: 4s")
    assert warnings(tmp_path, text) == (
        "s.yaml:6: ==> At key: policies.shared.timeout, policies.close.timeout\n"
        "    warning: the default read timeout 10 s is longer than the run (4 s): a request that hangs is never "
        "timed out, so it is neither a failure nor a latency sample\n"
        "    fix: add 'timeout: {connect: 1, read: 1}' (shorter than the run)")


def test_quiet_check_prints_one_line_per_warning_and_nothing_when_clean(tmp_path, capsys):
    path = write(tmp_path, BASE.replace("shared: {timeout: 5}", "shared: {timeout: 60}"))
    assert cli.main(["check", "--quiet", path, str(ROOT / "scenarios" / "ci.yaml")]) == 0
    assert capsys.readouterr().out == (
        f"{path}:6: warning: read timeout 60 s is longer than the run (10 s): a request that hangs is never "
        "timed out, so it is neither a failure nor a latency sample [policies.shared.timeout]\n")
    assert cli.main(["check", "-q", "--strict", path]) == 2


def test_a_stop_timeout_that_covers_the_read_timeout_makes_it_moot(tmp_path):
    loaded = load_scenario(write(tmp_path, BASE.replace("duration: 10s", "duration: 4s")))
    assert [p.what for p in lint(loaded, grace_s=0.5)] == [
        "read timeout 5 s is longer than the run (4 s + 0.5 s stop timeout): a request that hangs is never timed "
        "out, so it is neither a failure nor a latency sample"]
    assert lint(loaded, grace_s=1) == []  # a request that hangs from the start still times out, and counts


def test_tls_resumption_on_a_plain_http_target(tmp_path):
    text = BASE.replace("shared: {timeout: 5}", "shared: {timeout: 5, tls_resumption: true}")
    assert warnings(tmp_path, text) == (
        "s.yaml:6: ==> At key: policies.shared.tls_resumption\n"
        "    warning: tls_resumption has no effect: every request goes to an http:// host (no TLS handshakes)\n"
        "    fix: remove 'tls_resumption', or send the requests to an https:// host")
    assert warnings(tmp_path, text.replace("http://127.0.0.1:8080", "https://127.0.0.1:8443")) == ""
