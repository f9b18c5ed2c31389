"""Templates: the documented surface works, and template injection (SSTI) never runs.

Each payload is tried in every place a template is rendered (headers, variables, paths,
bodies, login fields, target headers): validation must reject it with a located message
(exit 2, nothing sent), and the sandbox must refuse it even when validation is bypassed.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import jinja2
import pytest
from jinja2.exceptions import SecurityError

from workload.errors import ScenarioError
from workload.scenario import templating
from workload.scenario.loader import load_text
from workload.scenario.template_sandbox import MAX_RENDERED_CHARS, SANDBOX
from workload.scenario.templating import TemplateRenderError, TemplateSecurityError, Value

ROOT = Path(__file__).resolve().parents[2]
SSTI = [
    "{{ cycler.__init__.__globals__.os.system('touch pwned') }}",
    "{{ randint.__globals__['_os'].system('touch pwned') }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ self.__dict__ }}",
    "{{ self }}",
    "{{ lipsum.__globals__ }}",
    "{{ namespace.__init__ }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ config }}",
    "{{ request }}",
    "{{ range(10) }}",
    "{{ dict(a=1) }}",
    "{{ page|attr('__class__') }}",
    "{{ (page|attr('__class__')).__base__ }}",
    "{{ page|map(attribute='__class__')|list }}",
    "{{ colors|sort(attribute='__class__') }}",
    "{{ colors|selectattr('__class__') }}",
    "{{ page['__class__'] }}",
    "{{ page.__class__ }}",
    "{{ randint.__self__ }}",
    "{{ randint['x'] }}",
    "{{ choice.x }}",
    "{{ randint }}",
    "{{ now|string }}",
    "{{ '{0.__class__}'.format(page) }}",
    "{{ 'a{}'.format(page) }}",
    "{{ '%s' % page }}",
    "{{ '%(a)999999999s' % {'a': 1} }}",
    "{{ page|format('x') }}",
    "{{ 'x'.upper() }}",
    "{{ colors.append(1) }}",
    "{{ range(10**9)|list }}",
    "{{ 'a' * 10**9 }}",
    "{{ ['a'] * 10**9 }}",
    "{{ 9 ** 999999 }}",
    "{{ randint(*colors) }}",
    "{% for i in colors %}{{ i }}{% endfor %}",
    "{% set x = 1 %}{{ x }}",
    "{% include 'x' %}{{ page }}",
    "{% import 'x' as y %}{{ page }}",
    "{% macro m() %}{% endmacro %}{{ page }}",
    "{% if page %}{{ page }}{% endif %}",
    "{% with a = 1 %}{{ a }}{% endwith %}",
    "{% filter upper %}{{ page }}{% endfilter %}",
    "{{ page['__cl' ~ 'ass__'] }}",
    "{{ colors|tojson(indent=999999999) }}",
    "{{ randint(1) }}",
    "{{ " + "(" * 500 + "1" + ")" * 500 + " }}",
]

PLACES = {
    "header": ("endpoints:\n  - path: /\n    headers: {{X-A: {q}}}\n", "endpoints[0].headers.X-A"),
    "variable": ("endpoints: [{{path: /}}]\n", "variables.v"),
    "path": ("endpoints:\n  - path: {q}\n", "endpoints[0].path"),
    "body": ("endpoints:\n  - path: /\n    method: POST\n    body: {q}\n", "endpoints[0].body"),
    "json": ("endpoints:\n  - path: /\n    method: POST\n    json: {{a: [{q}]}}\n", "endpoints[0].json.a[0]"),
    "login": ("login:\n  form: {{path: /login, fields: {{u: {q}}}}}\nendpoints: [{{path: /}}]\n",
              "login.form.fields.u"),
    "basic": ("login:\n  basic: {{username: {q}, password: x}}\nendpoints: [{{path: /}}]\n",
              "login.basic.username"),
    "target header": ("endpoints: [{{path: /}}]\n", "target.headers.X-A"),
    "flow step": ("flows:\n  - name: f\n    steps:\n      - path: /\n        query: {{a: {q}}}\n",
                  "flows[0].steps[0].query.a"),
}
HEAD = "target:\n  host: demo\n  headers: {{X-A: {t}}}\nvariables:\n  page: 1\n  colors: [a, b]\n  v: {v}\n"


def scenario(place: str, payload: str) -> str:
    quoted = "'" + payload.replace("'", "''") + "'"
    body, _ = PLACES[place]
    head = HEAD.format(t=quoted if place == "target header" else "plain", v=quoted if place == "variable" else "x")
    return head + body.format(q=quoted)


def problems(text: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        load_text(text, "s.yaml")
    return str(caught.value)


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize("payload", SSTI)
def test_every_payload_is_a_located_validation_error_in_every_place(payload: str, place: str) -> None:
    message = problems(scenario(place, payload))
    assert message.startswith("1 problem in scenario:\ns.yaml:"), message
    assert f"==> At key: {PLACES[place][1]}\n" in message


@pytest.mark.parametrize("payload", SSTI)
def test_the_sandbox_refuses_every_payload_even_without_validation(payload: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    context = {"page": 1, "colors": ["a", "b"]}
    with pytest.raises(TemplateRenderError):  # compiling a Value checks the surface again
        Value(payload).render(context)
    try:
        rendered = SANDBOX.from_string(payload).render(context)  # the bare sandbox, no AST check
    except (SecurityError, jinja2.UndefinedError, jinja2.TemplateError, TypeError, RecursionError):
        rendered = None
    assert rendered is None or "class" not in rendered and "function" not in rendered, rendered
    assert not (tmp_path / "pwned").exists()


@pytest.mark.slow
def test_validate_command_exits_2_and_runs_nothing(tmp_path: Path) -> None:
    files = []
    for place in PLACES:
        files.append(f"{place.replace(' ', '_')}.yaml")
        (tmp_path / files[-1]).write_text(scenario(place, SSTI[0]))
    for number, payload in enumerate(SSTI):
        files.append(f"payload{number}.yaml")
        (tmp_path / files[-1]).write_text(scenario("header", payload))
    done = subprocess.run([sys.executable, "-m", "workload.cli", "validate", *files], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and " ok (" not in done.stdout
    # SSTI[0] in every place, plus SSTI[0] and SSTI[1] (both end in .system(...)) as payload files
    assert done.stderr.count("error: template calls the method 'system', which is not a helper") == len(PLACES) + 2
    assert done.stderr.count("1 problem in scenario:") == len(files)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.slow
def test_a_run_with_an_injected_template_sends_nothing(tmp_path: Path) -> None:
    with socket.socket() as listener:  # the target: a loopback listener that must see no connection
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        text = scenario("header", SSTI[0]).replace("host: demo", f"host: 'http://127.0.0.1:{port}'")
        (tmp_path / "s.yaml").write_text(text)
        done = subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "workload" / "main.py"), "--headless",
                               "--scenario", "s.yaml", "-t", "2s", "-u", "1"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 2, done.stderr[-2000:]
        assert "error: template calls the method 'system', which is not a helper" in done.stderr
        assert "Traceback" not in done.stderr
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert not (tmp_path / "pwned").exists()


def test_exact_messages() -> None:
    head = "target: demo\nvariables: {page: 1}\nendpoints:\n  - path: /\n    headers: {X-A: "
    assert problems(head + "\"{{ cycler.__init__.__globals__.os.system('id') }}\"}\n") == (
        "1 problem in scenario:\n"
        "s.yaml:5: ==> At key: endpoints[0].headers.X-A\n"
        "    error: template calls the method 'system', which is not a helper\n"
        "    fix: templates may use variables, captures, user.<field>, user_index, the helpers uuid4(), "
        "randint(a, b), choice(list), now() and the filters listed in docs/scenario-format.md")
    assert problems(head + "'{{ page.__class__ }}'}\n") == (
        "1 problem in scenario:\n"
        "s.yaml:5: ==> At key: endpoints[0].headers.X-A\n"
        "    error: template reaches the private attribute '__class__'\n"
        "    fix: use data fields only: names starting with '_' are not available in templates")
    assert problems(head + "'{{ randint.x }}'}\n") == (
        "1 problem in scenario:\n"
        "s.yaml:5: ==> At key: endpoints[0].headers.X-A\n"
        "    error: 'randint' is a helper function: its attributes are not available\n"
        "    fix: call it, e.g. '{{ randint(1, 10) }}'")
    assert problems(head + "'{% for i in page %}{{ i }}{% endfor %}'}\n") == (
        "1 problem in scenario:\n"
        "s.yaml:5: ==> At key: endpoints[0].headers.X-A\n"
        "    error: template statement '{% for %}' is not allowed\n"
        "    fix: a template is expressions only: write '{{ a if flag else b }}' instead of {% if %}, and "
        "define values under 'variables:' instead of {% set %}")
    assert problems(head + "'{{ page | uper }}'}\n") == (
        "1 problem in scenario:\n"
        "s.yaml:5: ==> At key: endpoints[0].headers.X-A\n"
        "    error: unknown template filter 'uper'\n"
        "    fix: did you mean 'upper'? (allowed filters: abs, capitalize, count, d, default, first, float, int, "
        "items, join, last, length, list, lower, max, min, replace, reverse, round, sort, string, sum, title, "
        "tojson, trim, truncate, unique, upper, urlencode, wordcount)")
    assert problems(head + "\"{{ 'ab' * 10**9 }}\"}\n") == (
        "1 problem in scenario:\n"
        "s.yaml:5: ==> At key: endpoints[0].headers.X-A\n"
        "    error: template value too large: '*' would make a value over 1048576 characters\n"
        "    fix: use smaller numbers (a template renders at most 1 MiB)")
    assert problems(head + "\"{{ '%s' % page }}\"}\n") == (
        "1 problem in scenario:\n"
        "s.yaml:5: ==> At key: endpoints[0].headers.X-A\n"
        "    error: '%' text formatting is not allowed in templates\n"
        "    fix: join text with '~', e.g. '{{ \"id-\" ~ n }}'")


def test_arguments_and_nesting_are_checked_before_a_run() -> None:
    head = "target: demo\nvariables: {page: 1}\nendpoints:\n  - path: /\n    headers: {X-A: "
    assert problems(head + "'{{ randint(1) }}'}\n") == (
        "1 problem in scenario:\n"
        "s.yaml:5: ==> At key: endpoints[0].headers.X-A\n"
        "    error: randint() cannot take these arguments: missing a required argument: 'b'\n"
        "    fix: see the template language in docs/scenario-format.md")
    assert "error: the filter 'tojson' cannot take these arguments: got an unexpected keyword argument " \
           "'indent'" in problems(head + "'{{ page|tojson(indent=4) }}'}\n")
    deep = "(" * 500 + "page" + ")" * 500
    assert problems(head + f"'{{{{ {deep} }}}}'}}\n") == (
        "1 problem in scenario:\n"
        "s.yaml:5: ==> At key: endpoints[0].headers.X-A\n"
        "    error: template is nested too deeply\n"
        "    fix: split it into several variables")


def test_join_is_bounded() -> None:
    with pytest.raises(TemplateSecurityError, match="'join' would make a value over"):
        Value("{{ items | join(sep) }}").render({"items": list(range(100_000)), "sep": "x" * 1000})
    assert Value("{{ items | join(', ') }}").render({"items": [1, 2]}) == "1, 2"


def test_one_message_per_template_no_follow_on() -> None:
    # An escape attempt through an undefined name reports the escape, not also 'lipsum is not defined'.
    text = "target: demo\nendpoints:\n  - path: '/{{ lipsum.__globals__ }}'\n"
    assert problems(text) == (
        "1 problem in scenario:\n"
        "s.yaml:3: ==> At key: endpoints[0].path\n"
        "    error: template reaches the private attribute '__globals__'\n"
        "    fix: use data fields only: names starting with '_' are not available in templates")


def test_templates_outside_rendered_sections_are_checked_too() -> None:
    text = "target: demo\nendpoints:\n  - path: /\n    expect: {contains: '{{ x.__class__ }}'}\n"
    assert "error: template reaches the private attribute '__class__'" in problems(text)


def test_documented_surface_renders() -> None:
    context = {"page": 3, "name": "Ada Lovelace", "colors": ["red", "green"], "order": {"items": [1, 2]},
               "user": {"username": "al"}, "user_index": 0}
    cases = {
        "{{ page * 2 }}": "6", "{{ name | upper }}": "ADA LOVELACE", "{{ name | lower | replace(' ', '-') }}":
        "ada-lovelace", "{{ colors | join(',') }}": "red,green", "{{ colors | length }}": "2",
        "{{ 'x' if page > 2 else 'y' }}": "x", "{{ page is even }}": "False", "{{ order.items | sum }}": "3",
        "{{ user.username ~ '-' ~ user_index }}": "al-0", "{{ colors[0] | title }}": "Red",
        "{{ order | tojson }}": '{"items": [1, 2]}', "{{ 'a b' | urlencode }}": "a%20b",
        "{{ missing | default('d') }}": "d", "{{ 7 % 3 }}": "1", "{{ 2 ** 10 }}": "1024",
        "{{ 'ab' * 2 }}": "abab", "{{ name | truncate(5, True, '') }}": "Ada L",
    }
    for text, expected in cases.items():
        assert templating.template_problem(text) is None, text
        assert Value(text).render(context) == expected, text
    assert len(Value("{{ uuid4() }}").render({})) == 36
    assert 1 <= int(Value("{{ randint(1, 3) }}").render({})) <= 3
    assert Value("{{ choice(colors) }}").render(context) in context["colors"]
    assert float(Value("{{ now() }}").render({})) > 1e9


def test_output_is_bounded_at_render_time() -> None:
    half = "a" * (MAX_RENDERED_CHARS // 2 + 1)
    with pytest.raises(TemplateSecurityError, match="over 1048576 characters"):
        Value("{{ v ~ v }}").render({"v": half})
    with pytest.raises(TemplateSecurityError, match="'\\*' would make a value over"):
        Value("{{ v * n }}").render({"v": "ab", "n": 10**9})
    with pytest.raises(TemplateSecurityError, match="'replace' would make a value over"):
        Value("{{ v | replace('a', w) }}").render({"v": "a" * 2000, "w": "b" * 1000})
    with pytest.raises(TemplateSecurityError, match="over 4096 bits"):
        Value("{{ (v | int) ** n }}").render({"v": "99", "n": 100000})
    with pytest.raises(TemplateSecurityError, match="'%' text formatting"):
        Value("{{ v % 1 }}").render({"v": "%0999999999d"})


def test_mapping_fields_win_over_methods() -> None:
    # JSON {"items": [...]} read as order.items is the field, not dict.items.
    assert Value("{{ order.items | length }}").render({"order": {"items": [1, 2, 3]}}) == "3"
    with pytest.raises(TemplateSecurityError):
        Value("{{ order.keys }}").render({"order": {"a": 1}})


def test_user_fields_are_checked_against_the_credentials() -> None:
    text = textwrap.dedent("""\
        target: demo
        credentials:
          inline:
            - {username: a, password: x, tenant: '1'}
            - {username: b, password: y}
        login:
          basic: {username: '{{ user.usrname }}', password: '{{ user.password }}'}
        endpoints:
          - path: "/t/{{ user.tenant }}"
        """)
    assert problems(text) == (
        "2 problems in scenario:\n"
        "s.yaml:7: ==> At key: login.basic.username\n"
        "    error: the credentials have no field 'usrname'\n"
        "    fix: did you mean 'username'? (allowed fields: username, password) (a field must be in every "
        "inline row, or be a CSV column)\n"
        "s.yaml:9: ==> At key: endpoints[0].path\n"
        "    error: the credentials have no field 'tenant'\n"
        "    fix: use one of the allowed fields: username, password (a field must be in every inline row, "
        "or be a CSV column)")


def test_csv_header_gives_the_fields(tmp_path: Path) -> None:
    (tmp_path / "users.csv").write_text("username,password\nann,pw\n")
    text = "target: demo\ncredentials: {csv: users.csv}\nendpoints:\n  - path: '/{{ user.name }}'\n"
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_text(text, str(path))
    assert "error: the credentials have no field 'name'\n" in str(caught.value)
    assert "did you mean 'username'?" in str(caught.value)


def test_a_missing_csv_gives_one_message_not_a_follow_on_about_user() -> None:
    text = "target: demo\ncredentials: {csv: nope.csv}\nendpoints:\n  - path: '/{{ user.username }}'\n"
    message = problems(text)
    assert message.startswith("1 problem in scenario:\n") and "nope.csv" in message
