"""Lint rules: one function per silent failure, each returning warnings with a fix.

Every rule takes a `LintContext` and returns `Problem`s of severity "warning".  The facts
the rules rest on (checked against requests 2.x, which Locust's HttpSession is):

* a preset cookie goes into the session's jar and is sent only where the jar's cookie
  policy matches the request's host (an IP matches only itself; `localhost` is treated as
  `localhost.local`), path and scheme (`secure` cookies: https only);
* a request's own headers override the session's headers of the same name, they do not add;
  an explicit `Cookie` header stops requests from sending the jar at all; and the session's
  basic auth (`login.basic`) is applied after the headers, overwriting `Authorization`;
* Locust runs one greenlet per user, so a per-user pool never has more than one request
  in flight per host, while a process-wide pool (`scope: process`) has up to `users`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from requests import Request as HttpRequest
from requests.cookies import RequestsCookieJar, get_cookie_header

from workload.errors import Problem, TelemetryError
from workload.plan.reqrate import describe_load, requested_rps
from workload.scenario.loader import DEMO_HOST, LoadedScenario
from workload.scenario.schema import Policy, PresetCookie, Request, Scenario, TimeoutSpec
from workload.scenario.source import Path, Source, key_path
from workload.telemetry import DEFAULT_TIME_WAIT_SECONDS, forecast, port_headroom

WARNING = "warning"
DEMO_LOOPBACK = "127.0.0.1"  # the embedded demo target listens here
DEFAULT_MAX_PORT_SHARE = 1.0  # TIME_WAIT sockets per ephemeral port: at 1.0 connects start to fail
AUTH_HEADERS = ("authorization", "proxy-authorization")
POOLED_TYPES = ("shared", "recycle")  # fresh builds a session per request; close never reuses


@dataclass(frozen=True)
class LintContext:
    """What the rules look at: the scenario, where its keys are, and the load it will get."""

    loaded: LoadedScenario
    source: Source
    users: int
    duration_s: float
    policies: tuple[str, ...]

    @property
    def model(self) -> Scenario:
        return self.loaded.model

    def warn(self, path: Path, what: str, fix: str) -> Problem:
        return Problem(self.source.file, self.source.line_of(path), key_path(path), what, fix, severity=WARNING)

    def checked_policies(self) -> Iterator[tuple[str, Policy]]:
        for name in self.policies:
            if name in self.model.policies:
                yield name, self.model.policies[name]


# -- hosts ------------------------------------------------------------------------------------
def requests_of(model: Scenario) -> Iterator[tuple[Path, Request]]:
    for i, endpoint in enumerate(model.endpoints):
        yield ("endpoints", i), endpoint
    for f, flow in enumerate(model.flows):
        for s, step in enumerate(flow.steps):
            yield ("flows", f, "steps", s), step


def host_urls(model: Scenario) -> list[str]:
    """The URLs requests go to (`demo` as the loopback address it listens on), in first-use order."""
    target = model.target
    names = [request.host for _, request in requests_of(model)]
    login = (model.login.form or model.login.token) if model.login is not None else None
    if login is not None:
        names.append(login.host)
    urls = [target.hosts.get(name) if name else target.host for name in names]
    return list(dict.fromkeys(_concrete(url) for url in urls if url))


def _concrete(url: str) -> str:
    parts = urlsplit(url)
    if url == DEMO_HOST or parts.hostname == DEMO_HOST and parts.port is None:
        return f"{parts.scheme or 'http'}://{DEMO_LOOPBACK}"
    return url.rstrip("/")


# -- rules ------------------------------------------------------------------------------------
def cookie_domains(ctx: LintContext) -> list[Problem]:
    """A preset cookie whose domain, path or `secure` flag matches none of the target hosts."""
    urls = host_urls(ctx.model)
    found = []
    for i, cookie in enumerate(ctx.model.target.cookies):
        if urls and not any(cookie_is_sent(cookie, url) for url in urls):
            hosts = ", ".join(dict.fromkeys(urlsplit(u).hostname or u for u in urls))
            what = f"preset cookie '{cookie.name}' (domain '{cookie.domain}') is never sent: " \
                   f"it matches none of the hosts the requests go to ({hosts})"
            found.append(ctx.warn(("target", "cookies", i, "domain"), what, _cookie_fix(cookie, urls)))
    return found


def cookie_is_sent(cookie: PresetCookie, url: str) -> bool:
    """Whether requests would send `cookie` (set as the compiler sets it) to `url` + its path."""
    jar = RequestsCookieJar()
    jar.set(cookie.name, cookie.value, domain=cookie.domain, path=cookie.path, secure=cookie.secure)
    prepared = HttpRequest("GET", url + cookie.path).prepare()
    return get_cookie_header(jar, prepared) is not None


def _cookie_fix(cookie: PresetCookie, urls: list[str]) -> str:
    host = _meant_host(cookie.domain, [urlsplit(u).hostname or "" for u in urls])
    if cookie.secure and all(urlsplit(u).scheme == "http" for u in urls):
        return "secure cookies are only sent over https: set 'secure: false' or use an https:// host"
    if "." not in host and ":" not in host:
        return f"requests treats the dotless host '{host}' as '{host}.local': set 'domain: {host}.local'"
    if host.replace(".", "").isdigit() or ":" in host:
        return f"an IP address matches only itself: set 'domain: {host}'"
    return f"set 'domain: {host}' (or a parent domain of it, such as '.{host.split('.', 1)[-1]}')"


def _meant_host(domain: str, hosts: list[str]) -> str:
    """The host a cookie was most likely meant for: one its domain names, else the first."""
    bare = domain.lstrip(".").lower()
    return next((h for h in hosts if bare and (h.endswith(bare) or bare.startswith(h))), hosts[0])


def header_overrides(ctx: LintContext) -> list[Problem]:
    """Request (and target) headers that replace the session's auth header or cookie jar."""
    model = ctx.model
    jar = _jar_sources(model)
    found = []
    target_headers = {k.lower(): k for k in model.target.headers}
    if "cookie" in target_headers and jar:
        what = f"target.headers.{target_headers['cookie']} replaces the cookie jar on every request: " \
               f"the jar, with {jar}, is never sent (requests adds the jar only when no Cookie header is set)"
        fix = "remove the Cookie header; put fixed cookies under 'target.cookies' (they join the jar)"
        found.append(ctx.warn(("target", "headers", target_headers["cookie"]), what, fix))
    for path, request in requests_of(model):
        for header in request.headers:
            hit = _override(model, header.lower(), jar, target_headers)
            if hit is not None:
                found.append(ctx.warn((*path, "headers", header), f"header '{header}' {hit[0]}", hit[1]))
    return found


def _jar_sources(model: Scenario) -> str:
    sources = []
    if model.login is not None and model.login.form is not None:
        sources.append("the login.form session cookie")
    if model.target.cookies:
        sources.append("the target.cookies")
    return " and ".join(sources)


def _override(model: Scenario, header: str, jar: str,
              target_headers: dict[str, str]) -> tuple[str, str] | None:
    login = model.login
    if header == "cookie" and jar:
        return (f"replaces the session's cookie jar for this request: the jar, with {jar}, is not sent "
                "(requests adds the jar only when no Cookie header is set)",
                "remove the header; put fixed cookies under 'target.cookies' (they join the jar)")
    if header == "authorization" and login is not None and login.basic is not None:
        return ("is overwritten by login.basic: requests applies the session's basic auth after the "
                "request's headers, so this value is never sent",
                "remove the header, or drop login.basic if requests need their own Authorization")
    if login is not None and login.token is not None and header == login.token.header.lower():
        return ("replaces the token that login.token sets on the session: this request is sent without "
                "the login token (per-request headers override session headers, they do not add to them)",
                "remove the header to send the login token; use another header name to send both")
    if header in AUTH_HEADERS and header in target_headers:
        return (f"replaces target.headers.{target_headers[header]} for this request "
                "(per-request headers override session headers, they do not add to them)",
                "remove it here, or remove it from target.headers if every request sets its own")
    return None


def pool_sizes(ctx: LintContext) -> list[Problem]:
    """Process-wide pools smaller than the users sharing them; fewer pools than hosts."""
    hosts = host_urls(ctx.model)
    found = []
    for name, policy in ctx.checked_policies():
        if policy.scope == "process" and policy.pool_maxsize < ctx.users:
            found.append(ctx.warn(("policies", name, "pool_maxsize"), _maxsize_what(policy, ctx.users),
                                  f"set 'pool_maxsize: {ctx.users}' (or more), or 'scope: user'"))
        if policy.type in POOLED_TYPES and policy.pool_connections < len(hosts):
            what = (f"pool_connections {policy.pool_connections} is below the {len(hosts)} hosts the requests "
                    "go to: the least recently used host's pool is evicted and its connections closed, "
                    "so connections are opened again instead of reused")
            found.append(ctx.warn(("policies", name, "pool_connections"), what,
                                  f"set 'pool_connections: {len(hosts)}' (or more)"))
    return found


def _maxsize_what(policy: Policy, users: int) -> str:
    head = (f"pool_maxsize {policy.pool_maxsize} is below the {users} users sharing this process-wide pool "
            f"(up to {users} requests per host in flight at once): ")
    if policy.pool_block:
        return head + "users queue for a free connection and the wait is counted as latency"
    return head + "the extra connections are opened and then discarded (pool discards, extra client TIME_WAIT)"


def read_timeouts(ctx: LintContext) -> list[Problem]:
    """A read timeout longer than the run: a hung request would never become a failure."""
    found = []
    for name, policy in ctx.checked_policies():
        timeout = policy.timeout
        spec = timeout if isinstance(timeout, TimeoutSpec) else None
        read = timeout.read if isinstance(timeout, TimeoutSpec) else float(timeout)
        if read > ctx.duration_s:
            suggest = max(1, int(ctx.duration_s / 3))
            connect = spec.connect if spec else min(read, suggest)
            written = "timeout" in policy.model_fields_set
            what = (f"{'' if written else 'the default '}read timeout {read:g} s is longer than the run "
                    f"({ctx.duration_s:g} s): a request that hangs is never timed out, so it is neither a failure "
                    "nor a latency sample")
            fix = f"{'set' if written else 'add'} 'timeout: {{connect: {connect:g}, read: {suggest}}}' " \
                  "(shorter than the run)"
            found.append(ctx.warn(("policies", name, "timeout"), what, fix))
    return found


def time_wait_forecast(ctx: LintContext) -> list[Problem]:
    """close/fresh/recycle: TIME_WAIT at the requested rate against the ephemeral port range."""
    try:
        size = int(port_headroom()["size"])
    except (TelemetryError, KeyError, ValueError):
        return []  # not Linux: there is no port range to compare with
    rps = requested_rps(ctx.model, ctx.users)
    found = []
    for name, policy in ctx.checked_policies():
        rate = new_connections_per_s(policy, rps, ctx.users)
        if rate <= 0:
            continue
        predicted = forecast(rate, size)
        if predicted["forecast_share"] >= DEFAULT_MAX_PORT_SHARE:
            load = f"about {rps:,.0f} requests/s ({describe_load(ctx.model, ctx.users)})"
            what = _time_wait_what(policy, load, rate, predicted["forecast_time_wait"], size)
            found.append(ctx.warn(("policies", name), what, _time_wait_fix(policy)))
    return found


def new_connections_per_s(policy: Policy, rps: float, users: int) -> float:
    if policy.type in ("close", "fresh"):
        return rps  # one connection per request
    if policy.type == "recycle":
        by_count = rps / policy.every_requests if policy.every_requests else 0.0
        by_age = users / policy.every_seconds if policy.every_seconds else 0.0
        return max(by_count, by_age)  # whichever bound comes first drops the connection
    return 0.0


def _time_wait_what(policy: Policy, load: str, rate: float, in_time_wait: int, size: int) -> str:
    head = f"at {load} this policy opens about {rate:,.0f} connections/s; "
    if policy.type == "close":
        return head + (f"the server closes first and holds about {in_time_wait:,} sockets in TIME_WAIT for "
                       f"{DEFAULT_TIME_WAIT_SECONDS} s, more than the client's {size:,} ephemeral ports: new "
                       "connections reuse client ports the server still holds (connect stalls or resets)")
    return head + (f"each ends in client TIME_WAIT for {DEFAULT_TIME_WAIT_SECONDS} s, about {in_time_wait:,} "
                   f"sockets, more than the {size:,} ephemeral ports: connects then fail with "
                   "'Cannot assign requested address'")


def _time_wait_fix(policy: Policy) -> str:
    if policy.type == "recycle":
        return "raise every_requests/every_seconds, or lower the rate (fewer users, a longer wait)"
    return "lower the rate (fewer users, a longer wait), or reuse connections with type shared or recycle"


RULES: tuple[Callable[[LintContext], list[Problem]], ...] = (
    cookie_domains, header_overrides, pool_sizes, read_timeouts, time_wait_forecast,
)
