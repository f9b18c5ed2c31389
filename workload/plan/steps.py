"""Request plan: a scenario's requests compiled once into ready-to-send steps.

Templates, JMESPath expressions and regexes are compiled here, when the scenario is
compiled, so the per-request cost of a compiled user is a dict lookup for constant values.
No locust import: the plan is plain data plus rendering.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workload.plan.checks import Capturer, Expectation, compile_captures, compile_expect
from workload.scenario.schema import Request
from workload.scenario.templating import Value


@dataclass(frozen=True)
class Step:
    """One compiled request."""

    name: str
    method: str
    base_url: str  # "" means the user's default host
    path: Value
    query: Value | None
    headers: Value | None
    json: Value | None
    form: Value | None
    body: Value | None
    expect: Expectation | None
    captures: tuple[Capturer, ...]
    follow_redirects: bool = True

    @property
    def checked(self) -> bool:
        """Whether the response must be inspected (otherwise Locust's own status check is enough)."""
        return self.expect is not None or bool(self.captures)

    def render(self, context: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The URL and the keyword arguments for `session.request`."""
        url = self.base_url + str(self.path.render(context))
        kwargs: dict[str, Any] = {}
        for key, value in (("params", self.query), ("headers", self.headers), ("json", self.json),
                           ("data", self.form), ("data", self.body)):
            if value is not None:
                kwargs[key] = value.render(context)
        if not self.follow_redirects:
            kwargs["allow_redirects"] = False
        return url, kwargs


def _optional(raw: Any) -> Value | None:
    return None if raw is None or raw == {} else Value(raw)


def compile_step(request: Request, hosts: dict[str, str], default_name: str | None = None) -> Step:
    base = hosts[request.host] if request.host else ""
    name = request.name or default_name or f"{request.method} {request.path}"
    return Step(
        name=name,
        method=request.method,
        base_url=base.rstrip("/"),
        path=Value(request.path),
        query=_optional(request.query),
        headers=_optional({k: str(v) for k, v in request.headers.items()}),
        json=None if request.json_ is None else Value(request.json_),
        form=_optional(request.form),
        body=None if request.body is None else Value(request.body),
        expect=compile_expect(request.expect),
        captures=compile_captures(request.capture),
        follow_redirects=request.follow_redirects,
    )
