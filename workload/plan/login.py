"""Login flows: form/cookie, token and HTTP basic, run once per simulated user at start.

Login state lives on the user's Session (cookie jar, default headers, auth), which every
policy carries over, so a fresh Session per request is still logged in.  A token login
can run again once when a request gets 401 (an expired token).  Locust-free: the user
object only needs `send(step)`, `vars` and `client`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jmespath
import jmespath.parser

from workload import redaction
from workload.plan.checks import ParsedResponse
from workload.plan.steps import Step, compile_step
from workload.scenario.schema import Expect, Login, Request
from workload.scenario.templating import Value

FORM_LOGIN_EXPECT = Expect(status=[200, 201, 204, 302, 303])
QUERY_METHODS = ("GET", "HEAD")


@dataclass(frozen=True)
class BasicLogin:
    """`login.basic`: HTTP basic credentials set on the user's session; no request."""

    username: Value
    password: Value
    relogin_on_401 = False

    def run(self, user: Any) -> bool:
        user.client.auth = (str(self.username.render(user.vars)), str(self.password.render(user.vars)))
        return True


@dataclass(frozen=True)
class FormLogin:
    """`login.form`: one request whose session cookie the user's jar keeps."""

    step: Step
    relogin_on_401 = False

    def run(self, user: Any) -> bool:
        """Log `user` in; False (already reported as a Locust failure) when it did not work."""
        return user.send(self.step, judge=None, relogin=False) is not None


@dataclass(frozen=True)
class TokenLogin:
    """`login.token`: one request whose JSON holds a token, then sent as a header on every request."""

    step: Step
    token_query: jmespath.parser.ParsedResult
    token_header: str
    token_scheme: str
    relogin_on_401: bool

    def run(self, user: Any) -> bool:
        return user.send(self.step, judge=self._judge, relogin=False) is not None

    def _judge(self, user: Any, parsed: ParsedResponse) -> str | None:
        token = self.token_query.search(parsed.json()) if parsed.json() is not None else None
        if not isinstance(token, str) or not token:
            return f"login: no token at JSON '{self.token_query.expression}' in the response"
        redaction.register(token)  # masked in every output from now on
        user.client.headers[self.token_header] = f"{self.token_scheme} {token}".strip()
        return None


LoginFlow = BasicLogin | FormLogin | TokenLogin


def compile_login(login: Login | None, hosts: dict[str, str]) -> LoginFlow | None:
    if login is None:
        return None
    if login.basic is not None:
        return BasicLogin(Value(login.basic.username), Value(login.basic.password))
    if login.form is not None:
        form = login.form
        # A GET (or HEAD) login sends its fields as the query string, as an HTML form would.
        as_query = form.method in QUERY_METHODS
        request = Request(method=form.method, path=form.path, host=form.host,
                          query=form.fields if as_query else {}, form=None if as_query else form.fields,
                          expect=form.expect or FORM_LOGIN_EXPECT)
        return FormLogin(compile_step(request, hosts, "login"))
    token = login.token
    assert token is not None
    as_query = token.method in QUERY_METHODS and token.form is not None
    request = Request(method=token.method, path=token.path, host=token.host, json_=token.json_,
                      query=(token.form or {}) if as_query else {}, form=None if as_query else token.form,
                      expect=Expect(status=[200, 201]))
    return TokenLogin(compile_step(request, hosts, "login"), token_query=jmespath.compile(token.token),
                      token_header=token.header, token_scheme=token.scheme, relogin_on_401=token.relogin_on_401)
