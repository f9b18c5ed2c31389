"""Compiler: a loaded scenario plus a policy name → a Locust `User` class.

Classes are created inside `compile_user` (never by a module-level loop, whose variable
Locust would discover as an extra class) with a deterministic unique name, so a master
and its workers agree on it.  The policy's engine (`workload.engine.engines`) gives each
user its client; every request goes through a Locust session (HttpSession, FastHttpSession,
...), so it is fired as Locust's request event and lands in Locust's stats.

Imports locust: loaded only from `workload.main` and tests that import locust first.
"""

from __future__ import annotations

from locust import User, between, constant, constant_pacing, constant_throughput
from locust.exception import LocustError, StopUser

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workload.engine.engines import Engine, make_engine
from workload.engine.transport import RecycleState, make_gate
from workload.plan.checks import ParsedResponse, run_captures
from workload.plan.login import LoginFlow, compile_login
from workload.plan.pacing import rate_wait_time
from workload.plan.steps import Step, compile_step
from workload.results.faults import install_error_cap
from workload.scenario.loader import LoadedScenario
from workload.scenario.schema import Scenario, Wait
from workload.scenario.targets import ResolvedTarget
from workload.scenario.templating import TemplateRenderError, Value

Judge = Callable[[Any, ParsedResponse], str | None]


@dataclass(frozen=True)
class ScenarioPlan:
    """Everything a compiled user needs, built once per (scenario, policy)."""

    scenario: str
    policy: str
    target: ResolvedTarget
    variables: dict[str, Value]
    credentials: tuple[dict[str, str], ...]
    login: LoginFlow | None
    cookies: tuple[dict[str, Any], ...]
    headers: Value


def class_name(scenario: str, policy: str) -> str:
    slug = re.sub(r"\W+", "_", f"{scenario}_{policy}").strip("_")
    return f"W_{slug}"


def compile_user(loaded: LoadedScenario, policy_name: str, target: ResolvedTarget) -> type[WorkloadUser]:
    model = loaded.model
    policy = model.policies[loaded.check_policy(policy_name)]
    plan = ScenarioPlan(
        scenario=loaded.name, policy=policy_name, target=target,
        variables={k: Value(v) for k, v in model.variables.items()},
        credentials=loaded.credentials,
        login=compile_login(model.login, target.hosts),
        cookies=tuple({**c.model_dump(), "value": Value(c.value)} for c in model.target.cookies),
        headers=Value(target.headers),
    )
    attrs: dict[str, Any] = {
        "abstract": False,
        # A user needs a base host; with only named hosts, any of them will do.
        "host": target.default_host or next(iter(target.hosts.values()), None),
        "wait_time": rate_wait_time(model) or wait_time_of(model.wait),  # load.rps paces users
        "tasks": compile_tasks(model, target.hosts, loaded.raw),
        "plan": plan,
        "transport": make_engine(policy_name, policy, target.verify, target.cert,
                                 make_gate(target.urls(), model.target.follow_offsite_redirects)),
        "user_numbers": itertools.count(),
        "__module__": __name__,
    }
    return type(class_name(loaded.name, policy_name), (WorkloadUser,), attrs)


def wait_time_of(wait: Wait) -> Callable[..., float]:
    if wait.between is not None:
        return between(wait.between[0], wait.between[1])
    if wait.pacing is not None:
        return constant_pacing(wait.pacing)
    if wait.throughput is not None:
        return constant_throughput(wait.throughput)
    return constant(wait.constant or 0)


def compile_tasks(model: Scenario, hosts: dict[str, str],
                  raw: dict[str, Any] | None = None) -> dict[Callable[[Any], None], int]:
    tasks: dict[Callable[[Any], None], int] = {}
    for i, endpoint in enumerate(model.endpoints):
        if endpoint.weight:
            name = f"{endpoint.method} {raw_text(raw, ('endpoints', i, 'path'), endpoint.path)}"
            tasks[_single(compile_step(endpoint, hosts, name))] = endpoint.weight
    for f, flow in enumerate(model.flows):
        if flow.weight:
            steps = tuple(compile_step(s, hosts, f"{flow.name}: {s.method} "
                                       f"{raw_text(raw, ('flows', f, 'steps', i, 'path'), s.path)}")
                          for i, s in enumerate(flow.steps))
            tasks[_flow(steps)] = flow.weight
    return tasks


def raw_text(raw: Any, path: tuple[str | int, ...], resolved: str) -> str:
    """The text as written in the file (`${API_KEY}` unexpanded), so no secret becomes a stats name."""
    for key in path:
        try:
            raw = raw[key]
        except (KeyError, IndexError, TypeError):
            return resolved
    return raw if isinstance(raw, str) else resolved


def _single(step: Step) -> Callable[[Any], None]:
    def run(user: WorkloadUser) -> None:
        user.send(step)

    run.__name__ = step.name
    return run


def _flow(steps: tuple[Step, ...]) -> Callable[[Any], None]:
    def run(user: WorkloadUser) -> None:
        for step in steps:
            # Later steps usually depend on earlier captures: stop the flow at the first failure.
            if user.send(step) is None and step.checked:
                return

    return run


class WorkloadUser(User):
    """Base of compiled users: applies the policy, logs in, sends compiled steps."""

    abstract = True
    plan: ScenarioPlan
    transport: Engine  # the policy on its engine (the name predates engines)
    user_numbers: itertools.count[int]
    client: Any  # the engine's client (engines.py: requests-like identity, Locust-like request())

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        if self.host is None:
            raise LocustError("no base host: set the scenario's target or pass --host")
        install_error_cap(environment.stats)  # normalised, bounded error rows (workload.results.faults)
        self.client = self.transport.new_client(self)
        self.index = next(self.user_numbers)
        self.recycle = RecycleState()
        self.setup_error: TemplateRenderError | None = None
        try:
            self.vars: dict[str, Any] = self._initial_vars()
            self._prepare_session()
        except TemplateRenderError as exc:
            # Only data seen at run time (a credentials value) can get here: validation checked the
            # templates.  One failure for this user, not a crash of the spawning greenlet.
            self.vars = {"user_index": self.index}
            self.setup_error = exc

    def _initial_vars(self) -> dict[str, Any]:
        plan = self.plan
        context: dict[str, Any] = {"user_index": self.index}
        if plan.credentials:
            context["user"] = plan.credentials[_credential_slot(self)]
        for name, value in plan.variables.items():
            context[name] = value.render(context)
        return context

    def _prepare_session(self) -> None:
        target = self.plan.target
        self.client.headers.update(self.plan.headers.render(self.vars))
        self.client.verify = target.verify
        self.client.cert = target.cert
        for cookie in self.plan.cookies:
            self.client.cookies.set(cookie["name"], str(cookie["value"].render(self.vars)), domain=cookie["domain"],
                                    path=cookie["path"], secure=cookie["secure"])

    def on_start(self) -> None:
        if self.setup_error is not None:
            self.environment.events.request.fire(
                request_type="SETUP", name="user setup", response_time=0, response_length=0, response=None,
                context={}, exception=self.setup_error, url=None)
            raise StopUser
        if self.plan.login is not None:
            self.plan.login.run(self)

    def send(self, step: Step, judge: Judge | None = None, relogin: bool = True) -> ParsedResponse | None:
        """Send one step under the policy; the parsed response when it passed its checks.

        `relogin=False` for the login request itself, so a 401 there cannot recurse."""
        try:
            url, kwargs = step.render(self.vars)
        except TemplateRenderError as exc:
            self._report_unsent(step, exc)
            return None
        session = self.transport.session_for(self)
        try:
            relogin = relogin and self._relogin_enabled()
            if not step.checked and judge is None and not relogin:
                # Fast path: Locust's own status check, no response inspection.
                session.request(step.method, url, name=step.name, **self.transport.request_options, **kwargs)
                return None
            return self._send_checked(session, step, url, kwargs, judge, retried=not relogin)
        finally:
            self.transport.after_request(self, session, self.recycle)

    def _send_checked(self, session: Any, step: Step, url: str, kwargs: dict[str, Any],
                      judge: Judge | None, retried: bool = False) -> ParsedResponse | None:
        with session.request(step.method, url, name=step.name, catch_response=True,
                             **self.transport.request_options, **kwargs) as resp:
            if resp.status_code == 0:
                return None  # connection error: Locust reports the original exception
            if resp.status_code == 401 and not retried:
                # An expired token is routine, not a failure of the target; it stays visible by name.
                resp.request_meta["name"] = f"{step.name} [token expired]"
                resp.success()
                relogin = True
            else:
                relogin = False
                return self._judge(step, resp, judge)
        if relogin and self.plan.login is not None and self.plan.login.run(self):
            url, kwargs = step.render(self.vars)
            return self._send_checked(session, step, url, kwargs, judge, retried=True)
        return None

    def _judge(self, step: Step, resp: Any, judge: Judge | None) -> ParsedResponse | None:
        parsed = ParsedResponse(self.transport.judgeable(resp))
        problem = step.expect.problem(parsed, self.vars) if step.expect else _default_problem(resp)
        if problem is None and step.captures:
            problem = run_captures(step.captures, parsed, self.client.cookies, self.vars)
        if problem is None and judge is not None:
            problem = judge(self, parsed)
        if problem is not None:
            resp.failure(problem)
            return None
        resp.success()
        return parsed

    def _relogin_enabled(self) -> bool:
        login = self.plan.login
        return login is not None and login.relogin_on_401

    def _report_unsent(self, step: Step, exc: Exception) -> None:
        self.environment.events.request.fire(
            request_type=step.method, name=step.name, response_time=0, response_length=0,
            response=None, context={}, exception=exc, url=None)


def _default_problem(resp: Any) -> str | None:
    return f"HTTP {resp.status_code}" if resp.status_code >= 400 else None


def _credential_slot(user: WorkloadUser) -> int:
    """Distinct accounts across workers: worker i takes slots i, i+n, i+2n, ..."""
    runner = user.environment.runner
    worker = getattr(runner, "worker_index", 0) or 0
    options = user.environment.parsed_options
    workers = max(1, int(getattr(options, "expect_workers", 1) or 1)) if getattr(runner, "worker_index", None) \
        is not None else 1
    return (worker + user.index * workers) % len(user.plan.credentials)
