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
class LoginFlow:
    kind: str
    step: Step | None = None
    token_query: jmespath.parser.ParsedResult | None = None
    token_header: str = "Authorization"
    token_scheme: str = "Bearer"
    relogin_on_401: bool = False
    basic: tuple[Value, Value] | None = None

    def run(self, user: Any) -> bool:
        """Log `user` in; False (already reported as a Locust failure) when it did not work."""
        if self.kind == "basic":
            assert self.basic is not None
            user.client.auth = (str(self.basic[0].render(user.vars)), str(self.basic[1].render(user.vars)))
            return True
        assert self.step is not None
        parsed = user.send(self.step, judge=self._judge if self.kind == "token" else None, relogin=False)
        return parsed is not None

    def _judge(self, user: Any, parsed: ParsedResponse) -> str | None:
        assert self.token_query is not None
        token = self.token_query.search(parsed.json()) if parsed.json() is not None else None
        if not isinstance(token, str) or not token:
            return f"login: no token at JSON '{self.token_query.expression}' in the response"
        redaction.register(token)  # masked in every output from now on
        user.client.headers[self.token_header] = f"{self.token_scheme} {token}".strip()
        return None


def compile_login(login: Login | None, hosts: dict[str, str]) -> LoginFlow | None:
    if login is None:
        return None
    if login.basic is not None:
        return LoginFlow("basic", basic=(Value(login.basic.username), Value(login.basic.password)))
    if login.form is not None:
        form = login.form
        # A GET (or HEAD) login sends its fields as the query string, as an HTML form would.
        as_query = form.method in QUERY_METHODS
        request = Request(method=form.method, path=form.path, host=form.host,
                          query=form.fields if as_query else {}, form=None if as_query else form.fields,
                          expect=form.expect or FORM_LOGIN_EXPECT)
        return LoginFlow("form", step=compile_step(request, hosts, "login"))
    token = login.token
    assert token is not None
    as_query = token.method in QUERY_METHODS and token.form is not None
    request = Request(method=token.method, path=token.path, host=token.host, json_=token.json_,
                      query=(token.form or {}) if as_query else {}, form=None if as_query else token.form,
                      expect=Expect(status=[200, 201]))
    return LoginFlow("token", step=compile_step(request, hosts, "login"),
                     token_query=jmespath.compile(token.token), token_header=token.header,
                     token_scheme=token.scheme, relogin_on_401=token.relogin_on_401)
