"""Compiled users against the real demo target: logins under every policy, captures, templating.

Tests taking the `engine` fixture run on every engine: logins, captures, cookies, expectations
and redirects must not depend on the client library.
"""

from __future__ import annotations

from locust.exception import StopUser

import pytest

from tests.helpers import harness, run_tasks

POLICIES = ["shared", "close", "fresh", "recycle"]
ENGINES = ["requests", "fast", "httpx"]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)
POLICY_BLOCK = """
    policies:
      shared: {}
      close: {}
      fresh: {}
      recycle: {every_requests: 3}
"""
CREDENTIALS = """
    credentials:
      inline:
        - {username: alice, password: alice-pw}
        - {username: bob, password: bob-pw}
        - {username: carol, password: carol-pw}
"""
ME = """
    endpoints:
      - name: me
        path: /api/me
        expect: {status: 200, json: [{path: auth, equals: %s}]}
        capture: {me: {json: user}}
"""

LOGINS = {
    "cookie": """
    login:
      form: {path: /login, fields: {username: "{{ user.username }}", password: "{{ user.password }}"}}
    """,
    "token": """
    login:
      token: {path: /api/token, json: {username: "{{ user.username }}", password: "{{ user.password }}"}}
    """,
    "basic": """
    login:
      basic: {username: "{{ user.username }}", password: "{{ user.password }}"}
    """,
}


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("kind", list(LOGINS))
def test_login_state_survives_every_policy(demo_target, kind, policy, engine):
    text = "    target: demo\n" + CREDENTIALS + LOGINS[kind] + ME % kind + POLICY_BLOCK
    h = harness(text, policy, demo_target, engine=engine)
    users = h.users(3)
    run_tasks(users, iterations=6)
    assert not h.errors(), h.errors()
    assert sorted(u.vars["me"] for u in users) == ["alice", "bob", "carol"]
    assert h.user_class.transport.engine == engine


def test_token_login_runs_again_once_on_401(demo_target, engine):
    text = ("    target: demo\n" + CREDENTIALS + """
    login:
      token:
        path: /api/token
        json: {username: "{{ user.username }}", password: "{{ user.password }}", max_uses: 3}
    """ + ME % "token" + POLICY_BLOCK)
    h = harness(text, "shared", demo_target, engine=engine)
    run_tasks(h.users(1), iterations=10)
    assert not h.errors(), h.errors()
    names = {e.name: e.num_requests for e in h.env.stats.entries.values()}
    assert names["me"] == 10
    # A token lasts 3 uses: requests 4, 7 and 10 meet an expired token and log in again.
    assert names["me [token expired]"] == 3
    assert names["login"] == 4


def test_per_user_credentials_from_csv_are_distinct(demo_target, tmp_path):
    (tmp_path / "users.csv").write_text("username,password\n" + "".join(f"u{i},u{i}-pw\n" for i in range(4)))
    text = "    target: demo\n    credentials: {csv: users.csv}\n" + LOGINS["cookie"] + ME % "cookie" + POLICY_BLOCK
    h = harness(text, "fresh", demo_target, file=str(tmp_path / "s.yaml"))
    users = h.users(4)
    run_tasks(users, iterations=2)
    assert not h.errors(), h.errors()
    assert sorted(u.vars["me"] for u in users) == ["u0", "u1", "u2", "u3"]


CAPTURE_FLOW = """
    target: {host: demo, headers: {X-Team: "{{ team }}"}}
    variables: {team: blue, greeting: "hello {{ team }}"}
    credentials: {inline: [{username: dana, password: dana-pw}]}
    login:
      form: {path: /login, fields: {username: "{{ user.username }}", password: "{{ user.password }}"}}
    flows:
      - name: crud
        steps:
          - name: create
            method: POST
            path: /api/items
            json: {name: "{{ greeting }} from {{ user.username }}"}
            expect: {status: 201}
            capture:
              item_id: {json: id}
              location: {header: Location}
              session: {cookie: session}
          - name: read
            path: /api/items/{{ item_id }}
            expect: {status: 200, json: [{path: name, equals: "hello blue from dana"}]}
            capture: {raw_id: {regex: '"id":\\s*(\\d+)'}}
          - name: echo
            method: POST
            path: /echo
            query: {id: "{{ raw_id }}"}
            headers: {X-Item: "{{ item_id }}"}
            body: "loc={{ location }}"
            capture: {echoed: {json: "headers.\\"X-Item\\""}, team: {json: "headers.\\"X-Team\\""}}
    policies: {shared: {}, fresh: {}}
"""


@pytest.mark.parametrize("policy", ["shared", "fresh"])
def test_captures_feed_later_requests(demo_target, policy, engine):
    h = harness(CAPTURE_FLOW, policy, demo_target, engine=engine)
    [user] = h.users(1)
    run_tasks([user], iterations=2)
    assert not h.errors(), h.errors()
    assert str(user.vars["item_id"]) == user.vars["raw_id"] == user.vars["echoed"]
    assert user.vars["location"].endswith(f"/api/items/{user.vars['item_id']}")
    assert user.vars["team"] == "blue" and user.vars["session"]


def test_failed_expectation_is_a_locust_failure_with_a_message(demo_target, engine):
    text = """
    target: demo
    endpoints:
      - {name: teapot, path: /status/418, expect: {status: 200}}
      - {name: body, path: /status/200, expect: {contains: "no such text"}}
    policies: {shared: {}}
    """
    h = harness(text, "shared", demo_target, engine=engine)
    run_tasks(h.users(1), iterations=20, login=False)
    errors = " | ".join(sorted(set(h.errors())))
    assert "teapot: expected status 200, got 418" in errors
    assert "body: expected the body to contain 'no such text'" in errors


def test_a_capture_used_before_it_is_set_fails_clearly(demo_target):
    text = """
    target: demo
    endpoints:
      - {name: early, path: "/api/items/{{ later }}"}
      - {name: late, path: /status/200, weight: 0, capture: {later: {header: Content-Type}}}
    policies: {shared: {}}
    """
    h = harness(text, "shared", demo_target)
    run_tasks(h.users(1), iterations=1, login=False)
    assert h.errors() == ["early: template variable not set: 'later' is undefined"]


def test_preset_cookies_are_sent_with_templated_values(demo_target, engine):
    text = """
    target:
      host: demo
      cookies: [{name: tenant, value: "{{ team }}", domain: 127.0.0.1}]
    variables: {team: green}
    endpoints:
      - {name: echo, path: /echo, capture: {tenant: {json: cookies.tenant}}}
    policies: {shared: {}, fresh: {}}
    """
    for policy in ("shared", "fresh"):
        h = harness(text, policy, demo_target, engine=engine)
        [user] = h.users(1)
        run_tasks([user], iterations=1, login=False)
        assert not h.errors(), h.errors()
        assert user.vars["tenant"] == "green"


def test_unnamed_requests_are_named_by_their_text_not_by_secrets_or_ids(demo_target, monkeypatch):
    monkeypatch.setenv("H3_API_KEY", "k-3f9a-secret")
    text = """
    target: demo
    credentials: {inline: [{username: erin, password: erin-pw}]}
    login:
      form: {path: /login, fields: {username: "{{ user.username }}", password: "{{ user.password }}"}}
    endpoints:
      - {path: "/echo?key=${H3_API_KEY}", capture: {sent: {json: args.key}}}
    flows:
      - name: crud
        steps:
          - {method: POST, path: /api/items, json: {name: x}, capture: {item_id: {json: id}}}
          - {path: "/api/items/{{ item_id }}"}
    policies: {shared: {}}
    """
    h = harness(text, "shared", demo_target)
    [user] = h.users(1)
    user.on_start()
    for _ in range(3):
        for task in dict.fromkeys(user.tasks):  # each task, in a fixed order
            task(user)
    assert not h.errors(), h.errors()
    assert user.vars["sent"] == "k-3f9a-secret"  # the secret is sent, but is never a stats name
    assert sorted(name for name, _ in h.env.stats.entries) == [
        "GET /echo?key=${H3_API_KEY}", "crud: GET /api/items/{{ item_id }}", "crud: POST /api/items", "login"]


def test_header_expectations(demo_target, engine):
    text = """
    target: demo
    variables: {kind: json}
    endpoints:
      - name: typed
        path: /echo
        expect: {headers: {content-type: {contains: "{{ kind }}"}, X-Nope: {exists: false}}}
      - {name: xml, path: /echo, expect: {headers: {Content-Type: {contains: xml}}}}
      - {name: exact, path: /echo, expect: {headers: {Content-Type: {equals: text/plain}}}}
      - {name: missing, path: /echo, expect: {headers: {X-Request-Id: {exists: true}}}}
    policies: {shared: {}}
    """
    h = harness(text, "shared", demo_target, engine=engine)
    [user] = h.users(1)
    for task in dict.fromkeys(user.tasks):
        task(user)
    assert sorted(h.errors()) == [
        "exact: expected header 'Content-Type' == 'text/plain', got 'application/json'",
        "missing: expected header 'X-Request-Id' to exist, got None",
        "xml: expected header 'Content-Type' to contain 'xml', got 'application/json'"]


def test_expected_values_are_templates_rendered_per_user(demo_target):
    text = "    target: demo\n" + CREDENTIALS + LOGINS["cookie"] + """
    endpoints:
      - {name: mine, path: /api/me, expect: {json: [{path: user, equals: "{{ user.username }}"}],
                                              contains: '"{{ user.username }}"'}}
      - {name: wrong, path: /api/me, expect: {json: [{path: user, equals: "{{ user.password }}"}]}}
    policies: {shared: {}}
    """
    h = harness(text, "shared", demo_target)
    users = h.users(3)
    for user in users:
        user.on_start()
        for task in dict.fromkeys(user.tasks):
            task(user)
    expected = [f"wrong: expected JSON 'user' == '{u}-pw', got '{u}'" for u in ("alice", "bob", "carol")]
    assert sorted(h.errors()) == expected
    assert h.env.stats.get("mine", "GET").num_requests == 3


def test_follow_redirects_false_checks_the_redirect_itself(demo_target, engine):
    text = """
    target: demo
    flows:
      - name: hop
        steps:
          - name: redirect
            path: "/redirect?to=/echo"
            follow_redirects: false
            expect: {status: 302, headers: {Location: {equals: /echo}}}
            capture: {where: {header: Location}, flag: {cookie: redirected}}
          - {name: followed, path: "/redirect?to=/echo", expect: {status: 200, json: [{path: path, equals: /echo}]}}
    policies: {shared: {}, fresh: {}}
    """
    for policy in ("shared", "fresh"):
        h = harness(text, policy, demo_target, engine=engine)
        [user] = h.users(1)
        run_tasks([user], iterations=2, login=False)
        assert not h.errors(), h.errors()
        assert (user.vars["where"], user.vars["flag"]) == ("/echo", "yes")
        assert h.env.stats.get("redirect", "GET").num_requests == 2


@pytest.mark.parametrize(("login", "how"), [
    ("form: {method: get, path: /login, fields: {username: '{{ user.username }}', password: '{{ user.password }}'}}",
     "cookie"),
    ("token: {method: PUT, path: /api/token, json: {username: '{{ user.username }}', password: '{{ user.password }}'}}",
     "token"),
])
def test_login_by_another_method_than_post(demo_target, login, how, engine):
    text = "    target: demo\n" + CREDENTIALS + f"    login:\n      {login}\n" + ME % how + POLICY_BLOCK
    h = harness(text, "shared", demo_target, engine=engine)
    users = h.users(2)
    run_tasks(users, iterations=2)
    assert not h.errors(), h.errors()
    assert sorted(u.vars["me"] for u in users) == ["alice", "bob"]
    method = "GET" if how == "cookie" else "PUT"
    assert h.env.stats.get("login", method).num_requests == 2


def test_an_undefined_name_in_an_expected_value_is_a_validation_error():
    from workload.errors import ScenarioError
    from workload.scenario.loader import load_text

    text = ("target: demo\nvariables: {kind: json}\nendpoints:\n  - path: /echo\n"
            "    expect: {json: [{path: user, equals: '{{ knd }}'}]}\n")
    with pytest.raises(ScenarioError) as caught:
        load_text(text, "s.yaml")
    assert str(caught.value) == (
        "1 problem in scenario:\ns.yaml:5: ==> At key: endpoints[0].expect.json[0].equals\n"
        "    error: template variable 'knd' is not defined\n"
        "    fix: define it under 'variables:' or capture it from an earlier response; did you mean 'kind'? "
        "(allowed names: choice, kind, now, randint, user_index, uuid4)")


def test_a_variable_that_cannot_render_for_one_user_fails_that_user_not_the_run(demo_target):
    # Valid as written; only alice's value makes the rendered text exceed the sandbox's output limit.
    text = """
    target: demo
    credentials:
      inline:
        - {username: alice, copies: "2000000"}
        - {username: bob, copies: "3"}
    variables: {pad: "{{ 'x' * (user.copies | int) }}"}
    endpoints:
      - {name: echo, path: /echo, headers: {X-Pad: "{{ pad }}"}}
    policies: {shared: {}}
    """
    h = harness(text, "shared", demo_target)
    alice, bob = h.users(2)
    with pytest.raises(StopUser):
        alice.on_start()
    run_tasks([bob], iterations=2)
    entries = {name: entry for (name, _method), entry in h.env.stats.entries.items()}
    assert entries["user setup"].num_failures == 1 and entries["echo"].num_requests == 2
    assert entries["echo"].num_failures == 0
    [error] = h.env.stats.errors.values()
    assert error.name == "user setup"
    assert str(error.error).startswith("template not allowed: '*' would make a value over")
