"""Scenario schema: the YAML-facing models, frozen and strict about unknown keys.

A scenario file is validated against `Scenario` before any request is sent.  The models
only describe and check the document; compiling it into Locust users happens in
`workload.engine.user` and connection mechanics in `workload.engine.transport`.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from workload.scenario.timespan import seconds

DEFAULT_POOL_CONNECTIONS = 10
DEFAULT_POOL_MAXSIZE = 10
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 10.0  # like Artillery; shorter than most runs, so a hung request fails
DEFAULT_USERS = 10
DEFAULT_SPAWN_RATE = 10.0
DEFAULT_DURATION = "30s"
DEFAULT_TOKEN_QUERY = "access_token"
DEFAULT_TOKEN_SCHEME = "Bearer"
DEFAULT_TLS_RESUMPTION = False  # every TLS connection pays a full handshake unless a policy opts in
DEFAULT_MAX_IN_FLIGHT = 100  # open model: concurrent iterations at most (like k6's maxVUs)
POLICY_TYPES = ("shared", "close", "fresh", "recycle")
DEFAULT_ENGINE: Literal["requests"] = "requests"
ENGINES = ("requests", "fast", "httpx")

PolicyType = Literal["shared", "close", "fresh", "recycle"]
EngineName = Literal["requests", "fast", "httpx"]
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
NonNegFloat = Annotated[float, Field(ge=0)]


def problem(what: str, fix: str, at: tuple[str, ...] = ()) -> PydanticCustomError:
    """A validation error that carries its own fix hint (rendered by `workload.scenario.messages`).

    `at` is the key (under the model) the error is located at, e.g. `("policies",)`."""
    return PydanticCustomError("workload", what, {"fix": fix, "at": at})


def exactly_one(model: BaseModel, keys: tuple[str, ...], where: str) -> None:
    fields = type(model).model_fields
    # `json` is stored as `json_` (pydantic reserves `json`): look the attribute up by alias.
    given = [k for k in keys if getattr(model, f"{k}_" if f"{k}_" in fields else k) is not None]
    if len(given) != 1:
        names = ", ".join(keys)
        raise problem(f"{where} needs exactly one of {names}; got {len(given)}", f"keep one of: {names}")


def as_bool_word(value: Any) -> bool:
    """Whether `value` is the text true or false (any case): a boolean, where a field takes one."""
    return isinstance(value, str) and value.strip().lower() in ("true", "false")


def _scalar(value: Any, key: str, low: float, kind: str, whole: bool = False) -> bool:
    """Whether `value` is a policy shorthand number (True), a mapping to validate as such
    (False); anything else is an error worded for the shorthand."""
    if isinstance(value, dict | BaseModel):
        return False
    text = value.strip() if isinstance(value, str) else value  # `${TIMEOUT:-5}` arrives as text
    try:
        number = float(text) if not isinstance(text, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    bad = not math.isfinite(number) or (number <= low if not whole else number < low or number != int(number))
    if bad:
        noun = "number of retries (0: none)" if whole else "number of seconds"
        raise problem(f"{key} must be {kind} {noun} or a mapping, got {json.dumps(value, default=str)}",
                      f"write e.g. '{key}: {3 if whole else 5}'")
    return True


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TimeoutSpec(Model):
    connect: PositiveFloat = DEFAULT_CONNECT_TIMEOUT
    read: PositiveFloat = DEFAULT_READ_TIMEOUT


class RetrySpec(Model):
    total: Annotated[int, Field(ge=0)] = 0
    backoff_factor: NonNegFloat = 0.0
    status_forcelist: list[Annotated[int, Field(ge=100, le=599)]] = []


RUN_LEVEL_THRESHOLDS = {"max_time_wait_client", "min_requests_per_connection", "max_pool_discards", "max_pool_waits",
                        "min_tls_resumed_ratio",
                        "response_p99_ms", "service_p99_ms", "max_dropped_ratio", "max_late_ratio"}
OPEN_MODEL_THRESHOLDS = ("response_p99_ms", "service_p99_ms", "max_dropped_ratio", "max_late_ratio")
RUN_LEVEL_THRESHOLDS |= {"max_generator_lag_ms"}  # the generator's health is one per run


class EndpointThresholds(Model):
    """Pass/fail limits on one endpoint's figures (run.json `stats.endpoints`).

    Latency keys are upper limits (`p95_ms: 200`: at most 200 ms); every other key says its
    direction in its name (`max_failure_ratio`, `min_rps`).  Evaluated by `workload.results.thresholds`.
    """

    p50_ms: PositiveFloat | None = None
    p95_ms: PositiveFloat | None = None
    p99_ms: PositiveFloat | None = None
    max_failure_ratio: Annotated[float, Field(ge=0, le=1)] | None = None
    min_rps: NonNegFloat | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_run_level_keys(cls, data: Any) -> Any:
        # Connection and socket figures exist only for the whole run: say where they belong.
        misplaced = sorted(set(data) & RUN_LEVEL_THRESHOLDS) if isinstance(data, dict) and \
            cls is EndpointThresholds else []
        if misplaced:
            raise problem(f"{', '.join(misplaced)}: a whole-run threshold, not a per-request one",
                          "move it to the top-level 'thresholds:' (or a policy's 'thresholds:')")
        return data


class Thresholds(EndpointThresholds):
    """Pass/fail limits on the whole run: the endpoint metrics plus connection figures."""

    max_time_wait_client: Annotated[int, Field(ge=0)] | None = None
    min_requests_per_connection: PositiveFloat | None = None
    max_pool_discards: Annotated[int, Field(ge=0)] | None = None
    max_pool_waits: Annotated[int, Field(ge=0)] | None = None  # requests that waited for a pooled connection
    min_tls_resumed_ratio: Annotated[float, Field(ge=0, le=1)] | None = None  # resumed / completed handshakes

    # Open model (`load.arrival`): response time from the intended start, service time from the send.
    response_p99_ms: PositiveFloat | None = None
    service_p99_ms: PositiveFloat | None = None
    max_dropped_ratio: Annotated[float, Field(ge=0, le=1)] | None = None
    max_late_ratio: Annotated[float, Field(ge=0, le=1)] | None = None
    max_generator_lag_ms: PositiveFloat | None = None  # run.json generator.loop_lag_p99_ms


# Per engine: the policy keys it cannot honour as written (what is wrong, how to fix it).
# `_limited` says which values of a key are the problem.
ENGINE_LIMITS: dict[str, dict[str, tuple[str, str]]] = {
    "fast": {
        "pool_connections": ("geventhttpclient keeps one pool per host without a limit on hosts, "
                             "so there is no number of host pools to set",
                             "remove 'pool_connections' (pool_maxsize is each host's pool size)"),
        "pool_block": ("geventhttpclient's pool always waits for a free connection and never "
                       "discards one, so 'pool_block: false' cannot hold",
                       "remove 'pool_block' (or use engine: requests to measure pool discards)"),
        "ssl_context": ("geventhttpclient builds its context per client, not per connection, "
                        "so the stock per-connection cost cannot be reproduced",
                        "remove 'ssl_context' (fast shares one context per policy) or use engine: requests"),
        "retries": ("geventhttpclient retries timeouts and broken connections of idempotent methods "
                    "with a fixed delay: no backoff_factor or status_forcelist",
                    "give 'retries' as a number, or use engine: requests"),
    },
    "httpx": {
        "pool_connections": ("httpx limits the whole pool (pool_maxsize x declared hosts), "
                             "so there is no number of host pools to set",
                             "remove 'pool_connections' (pool_maxsize is each host's pool size)"),
        "pool_block": ("httpx's pool always waits for a free connection and never opens one to "
                       "discard it, so 'pool_block: false' cannot hold",
                       "remove 'pool_block' (or use engine: requests to measure pool discards)"),
        "ssl_context": ("httpx takes one SSL context per pool, so the stock per-connection cost "
                        "cannot be reproduced",
                        "remove 'ssl_context' (httpx shares one context per policy) or use engine: requests"),
        "retries": ("httpx retries failed connects only: no backoff_factor or status_forcelist",
                    "give 'retries' as a number, or use engine: requests"),
    },
}


def _limited(key: str, value: Any) -> bool:
    if key == "pool_block":
        return value is False
    if key == "ssl_context":
        return value != "shared"
    if key == "retries":
        return bool(value.backoff_factor or value.status_forcelist)
    return True


class Policy(Model):
    """A named connection policy.  `type` defaults to the policy's name when that is a type."""

    type: PolicyType | None = None
    description: str | None = None
    scope: Literal["user", "process"] = "user"
    pool_connections: PositiveInt = DEFAULT_POOL_CONNECTIONS
    pool_maxsize: PositiveInt = DEFAULT_POOL_MAXSIZE
    pool_block: bool = False
    retries: RetrySpec = RetrySpec()  # `retries: 3` is read as {total: 3}
    timeout: TimeoutSpec = TimeoutSpec()  # `timeout: 5` is read as {connect: 5, read: 5}
    ssl_context: Literal["shared", "per_connection"] = "shared"
    tls_resumption: bool = DEFAULT_TLS_RESUMPTION  # offer the last TLS session of the same origin
    every_requests: PositiveInt | None = None
    every_seconds: PositiveFloat | None = None
    thresholds: Thresholds | None = None  # this policy's own limits, over the scenario's
    engine: EngineName = DEFAULT_ENGINE  # the HTTP client the policy runs on (workload.engine.engines)
    http2: bool = False  # HTTP/2 (ALPN h2); only the httpx engine speaks it

    @model_validator(mode="after")
    def _engine_supports_the_settings(self) -> Policy:
        # A setting the chosen engine cannot honour is an error where it is written, never a
        # silent difference between engines (docs/scenario-format.md, "Engines").
        if self.http2 and self.engine != "httpx":
            raise problem(f"http2 needs engine 'httpx', not '{self.engine}'",
                          "add 'engine: httpx' or remove 'http2'", at=("http2",))
        if self.http2 and self.type == "close":
            raise problem("type 'close' needs HTTP/1.1's 'Connection: close', which HTTP/2 does not have",
                          "use type 'fresh' for one connection per request, or remove 'http2'", at=("http2",))
        for key, (what, fix) in ENGINE_LIMITS.get(self.engine, {}).items():
            if key in self.model_fields_set and _limited(key, getattr(self, key)):
                raise problem(f"engine '{self.engine}' cannot honour '{key}': {what}", fix, at=(key,))
        return self

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout_shorthand(cls, value: Any) -> Any:
        # The shorthand is expanded here, once: everything downstream sees a TimeoutSpec.
        return {"connect": value, "read": value} if _scalar(value, "timeout", 0, "a positive") else value

    @field_validator("retries", mode="before")
    @classmethod
    def _retries_shorthand(cls, value: Any) -> Any:
        return {"total": value} if _scalar(value, "retries", 0, "a whole", whole=True) else value

    @model_validator(mode="after")
    def _recycle_needs_a_bound(self) -> Policy:
        if self.type is None:
            raise problem("the policy has no type", f"add 'type: ...' with one of {', '.join(POLICY_TYPES)}")
        if self.type == "recycle" and self.every_requests is None and self.every_seconds is None:
            raise problem("a recycle policy needs every_requests or every_seconds",
                          "add e.g. 'every_requests: 100' or 'every_seconds: 10'")
        if self.type not in (None, "recycle") and (self.every_requests or self.every_seconds):
            raise problem(f"every_requests/every_seconds only apply to type 'recycle', not '{self.type}'",
                          "remove them or set 'type: recycle'")
        if self.scope == "process" and self.type not in (None, "shared"):
            raise problem(f"scope 'process' only applies to type 'shared', not '{self.type}'",
                          "remove 'scope' or set 'type: shared'")
        if self.tls_resumption and self.ssl_context == "per_connection":
            # OpenSSL resumes a session only under the SSL context that made it.
            raise problem("tls_resumption needs one SSL context for the policy, not ssl_context: per_connection",
                          "remove 'ssl_context: per_connection' or set 'tls_resumption: false'",
                          at=("tls_resumption",))
        return self


class PresetCookie(Model):
    name: str
    value: str
    domain: str
    path: str = "/"
    secure: bool = False


class Target(Model):
    host: str | None = None
    hosts: dict[str, str] = {}
    headers: dict[str, str] = {}
    verify: bool | str = True
    cert: str | list[str] | None = None
    cookies: list[PresetCookie] = []
    follow_offsite_redirects: bool = False  # redirects to undeclared hosts fail (redirect_offsite)
    agent: str | None = None  # a `workload agent` on a declared target host: server-side socket figures

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `target: http://...` is the common case; expand it to `target: {host: ...}`.
        return {"host": data} if isinstance(data, str) else data

    @field_validator("verify", mode="before")
    @classmethod
    def _verify_word(cls, value: Any) -> Any:
        # `verify: ${VERIFY:-true}` arrives as text: "true"/"false" (any case) is the switch, not a CA file.
        return value.strip().lower() == "true" if as_bool_word(value) else value

    @model_validator(mode="after")
    def _some_host(self) -> Target:
        if self.host is None and not self.hosts:
            raise problem("no target host", "set 'target: http://127.0.0.1:8080' or 'target: {host: demo}'")
        return self


class JsonExpect(Model):
    path: str
    equals: Any = None
    exists: bool | None = None


class HeaderExpect(Model):
    """A check on one response header (name matched case-insensitively); values may be templates."""

    equals: str | None = None
    contains: str | None = None
    exists: bool | None = None

    @model_validator(mode="after")
    def _something_to_check(self) -> HeaderExpect:
        if not self.model_fields_set:
            raise problem("a header expectation needs equals, contains or exists",
                          "write e.g. 'Content-Type: {contains: json}'")
        return self


def _status_code(code: int) -> int:
    if not 100 <= code <= 599:
        raise problem(f"{code} is not an HTTP status code", "use status codes from 100 to 599")
    return code


StatusCode = Annotated[int, AfterValidator(_status_code)]


class Expect(Model):
    status: StatusCode | list[StatusCode] | None = None
    json_: list[JsonExpect] | None = Field(None, alias="json")
    contains: str | None = None
    headers: dict[str, HeaderExpect] | None = None


class Capture(Model):
    json_: str | None = Field(None, alias="json")
    header: str | None = None
    cookie: str | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Capture:
        exactly_one(self, ("json", "header", "cookie", "regex"), "a capture")
        return self


class Request(Model):
    name: str | None = None
    method: Method = "GET"
    host: str | None = None
    path: str
    query: dict[str, Any] = {}
    headers: dict[str, str] = {}
    json_: Any = Field(None, alias="json")
    form: dict[str, Any] | None = None
    body: str | None = None
    expect: Expect | None = None
    capture: dict[str, Capture] = {}
    thresholds: EndpointThresholds | None = None
    follow_redirects: bool = True  # false: the 3xx itself is the response (check Location, cookies)

    @model_validator(mode="before")
    @classmethod
    def _upper_method(cls, data: Any) -> Any:
        return upper_method(data)

    @model_validator(mode="after")
    def _one_body(self) -> Request:
        bodies = [k for k in ("json_", "form", "body") if getattr(self, k) is not None]
        if len(bodies) > 1:
            raise problem("a request can have only one of json, form, body", "keep one body kind")
        return self


def upper_method(data: Any) -> Any:
    if isinstance(data, dict) and isinstance(data.get("method"), str):
        return {**data, "method": data["method"].upper()}
    return data


class Endpoint(Request):
    weight: Annotated[int, Field(ge=0)] = 1


class Flow(Model):
    name: str
    weight: Annotated[int, Field(ge=0)] = 1
    steps: Annotated[list[Request], Field(min_length=1)]


class Credentials(Model):
    inline: list[dict[str, str]] | None = None
    csv: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Credentials:
        exactly_one(self, ("inline", "csv"), "credentials")
        return self


class FormLogin(Model):
    method: Method = "POST"  # GET/HEAD send the fields as the query string
    path: str
    host: str | None = None
    fields: dict[str, str]
    expect: Expect | None = None

    @model_validator(mode="before")
    @classmethod
    def _upper_method(cls, data: Any) -> Any:
        return upper_method(data)


class TokenLogin(Model):
    method: Method = "POST"
    path: str
    host: str | None = None
    json_: dict[str, Any] | None = Field(None, alias="json")
    form: dict[str, str] | None = None
    token: str = DEFAULT_TOKEN_QUERY
    header: str = "Authorization"
    scheme: str = DEFAULT_TOKEN_SCHEME
    relogin_on_401: bool = True

    @model_validator(mode="before")
    @classmethod
    def _upper_method(cls, data: Any) -> Any:
        return upper_method(data)

    @model_validator(mode="after")
    def _one_body(self) -> TokenLogin:
        if self.json_ is not None and self.form is not None:
            raise problem("a token login can have only one of json, form", "keep one body kind")
        return self


class BasicLogin(Model):
    username: str
    password: str


class Login(Model):
    form: FormLogin | None = None
    token: TokenLogin | None = None
    basic: BasicLogin | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Login:
        exactly_one(self, ("form", "token", "basic"), "login")
        return self


class Wait(Model):
    constant: NonNegFloat | None = None
    between: Annotated[list[NonNegFloat], Field(min_length=2, max_length=2)] | None = None
    pacing: PositiveFloat | None = None
    throughput: PositiveFloat | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Wait:
        exactly_one(self, ("constant", "between", "pacing", "throughput"), "wait")
        if self.between and self.between[0] > self.between[1]:
            raise problem("between: the minimum is larger than the maximum", "write [min, max]")
        return self


def check_span(value: str | float, what: str = "duration") -> None:
    """A positive time span (`workload.scenario.timespan`), or a validation problem saying how to write one."""
    at = (what,)  # the problem is located at the span's own key
    if isinstance(value, str) and value.strip().startswith("-"):
        raise problem(f"the {what} must be positive", "write e.g. 30s", at)
    try:
        span = seconds(value)
        if not math.isfinite(span):  # `.inf` / `.nan` in YAML
            raise ValueError(span)
    except ValueError as exc:
        raise problem(f"invalid {what} {value!r}", "write e.g. 30s, 2m, 1h30m", at) from exc
    if span <= 0:
        raise problem(f"the {what} must be positive", "write e.g. 30s", at)


class Spike(Model):
    """A burst: `users` started within about a second, held for `duration`, then back down."""

    users: PositiveInt
    duration: str | float  # positive: checked by check_span, with one message

    @model_validator(mode="after")
    def _duration_parses(self) -> Spike:
        check_span(self.duration)
        return self


class Stage(Model):
    """One stage of a load shape (`workload.engine.shapes`): `users` running by its end, for `duration`.

    Without `spawn_rate` the users ramp linearly over the whole stage; with it they change at
    that rate and then hold (a step).  `{spike: {users, duration}}` is the shorthand for a burst.
    """

    duration: str | float | None = None
    users: Annotated[int, Field(ge=0)] | None = None
    spawn_rate: PositiveFloat | None = None
    spike: Spike | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Stage:
        if self.spike is not None:
            if self.duration is not None or self.users is not None or self.spawn_rate is not None:
                raise problem("a spike stage takes only 'spike: {users, duration}'",
                              "move users/duration inside 'spike:' or make it a plain stage")
            return self
        if self.duration is None or self.users is None:
            raise problem("a stage needs 'duration' and 'users'", "write e.g. {duration: 10s, users: 20}")
        check_span(self.duration)
        return self


def _span_or_zero(value: str | float, what: str) -> float:
    """A time span that may be 0 (a step), or a validation problem located at `what`."""
    try:
        span = seconds(value)
    except ValueError as exc:
        raise problem(f"invalid {what} {value!r}", "write e.g. 0 (a step), 5s or 1m", (what,)) from exc
    if not math.isfinite(span) or span < 0:
        raise problem(f"the {what} must be 0 or positive", "write e.g. 0 (a step), 5s or 1m", (what,))
    return span


class ArrivalStage(Model):
    """One stage of an arrival-rate shape: `rate` iterations/s reached by `ramp` (default: the whole
    stage, linearly from the previous stage's rate), then held until `duration` is up."""

    duration: str | float
    rate: NonNegFloat
    ramp: str | float | None = None  # 0: a step to `rate` at the stage's start

    @model_validator(mode="after")
    def _spans(self) -> ArrivalStage:
        check_span(self.duration)
        if self.ramp is not None and _span_or_zero(self.ramp, "ramp") > seconds(self.duration):
            raise problem(f"the ramp ({self.ramp}) is longer than the stage ({self.duration})",
                          "shorten 'ramp' or lengthen 'duration'", ("ramp",))
        return self


class Arrival(Model):
    """Open-model load: iterations start on a clock (`rate`/s, or `stages` of rates), whether or
    not earlier ones have finished (`workload.plan.arrivals`, `workload.engine.arrival`)."""

    rate: PositiveFloat | None = None
    stages: Annotated[list[ArrivalStage], Field(min_length=1)] | None = None
    poisson: bool = False  # exponential gaps (a Poisson process) instead of evenly spaced starts
    seed: int | None = None  # the Poisson gaps' random seed: the same seed, the same schedule
    max_in_flight: PositiveInt = DEFAULT_MAX_IN_FLIGHT
    identities: PositiveInt | None = None  # logged-in users iterations borrow; default max_in_flight

    @model_validator(mode="after")
    def _rate_or_stages(self) -> Arrival:
        if (self.rate is None) == (self.stages is None):
            raise problem("load.arrival needs exactly one of rate, stages",
                          "write e.g. 'arrival: {rate: 50}' or 'arrival: {stages: [{duration: 30s, rate: 50}]}'")
        if self.identities is not None and self.identities > self.max_in_flight:
            raise problem(f"identities ({self.identities}) cannot exceed max_in_flight ({self.max_in_flight})",
                          "an iteration holds one identity: lower 'identities' or raise 'max_in_flight'",
                          ("identities",))
        return self

    @property
    def identity_count(self) -> int:
        return self.identities or self.max_in_flight


class Load(Model):
    """How much load: fixed users for a duration, or `stages`; `rps` paces users to a request rate;
    `arrival` replaces users by an arrival rate (the open model)."""

    users: PositiveInt = DEFAULT_USERS
    spawn_rate: PositiveFloat = DEFAULT_SPAWN_RATE
    duration: str | float = DEFAULT_DURATION
    stages: Annotated[list[Stage], Field(min_length=1)] | None = None
    rps: PositiveFloat | None = None
    arrival: Arrival | None = None

    @model_validator(mode="after")
    def _arrival_owns_the_load(self) -> Load:
        # Users, their spawn rate and their pacing mean nothing to an arrival rate: say so.
        if self.arrival is None:
            return self
        closed = sorted({"users", "spawn_rate", "stages", "rps"} & self.model_fields_set)
        if closed:
            raise problem(f"load.{', load.'.join(closed)} cannot be combined with load.arrival",
                          "remove them: load.arrival starts iterations at its rate, without users "
                          "(put stages of rates under 'arrival: {stages: ...}')", ("arrival",))
        if self.arrival.stages is not None and "duration" in self.model_fields_set:
            raise problem("load.duration cannot be combined with load.arrival.stages",
                          "remove load.duration: the stages' durations add up to the run's", ("arrival",))
        return self

    @model_validator(mode="after")
    def _stages_own_the_load(self) -> Load:
        # With stages, users/duration/spawn_rate would be silently ignored: say so instead.
        ignored = sorted({"users", "duration", "spawn_rate"} & self.model_fields_set) if self.stages else []
        if ignored:
            raise problem(f"load.{', load.'.join(ignored)} cannot be combined with load.stages",
                          "give each stage its own users/duration/spawn_rate and remove these keys")
        return self

    @model_validator(mode="after")
    def _duration_parses(self) -> Load:
        check_span(self.duration)
        return self


DEFAULT_POLICIES = {name: Policy(type=name) for name in ("shared", "close", "fresh")}


class Scenario(Model):
    name: str | None = None
    description: str | None = None
    target: Target
    variables: dict[str, Any] = {}
    credentials: Credentials | None = None
    login: Login | None = None
    endpoints: list[Endpoint] = []
    flows: list[Flow] = []
    wait: Wait = Wait(constant=0)
    policies: dict[str, Policy] = DEFAULT_POLICIES
    default_policy: str | None = None
    load: Load = Load()
    thresholds: Thresholds | None = None

    @model_validator(mode="before")
    @classmethod
    def _policy_types_from_names(cls, data: Any) -> Any:
        # `policies: {close: {}}` means a policy named close of type close.
        if isinstance(data, dict) and isinstance(data.get("policies"), dict):
            policies = {}
            for name, spec in data["policies"].items():
                spec = {} if spec is None else spec
                if isinstance(spec, dict) and "type" not in spec and name in POLICY_TYPES:
                    spec = {**spec, "type": name}
                policies[name] = spec
            return {**data, "policies": policies}
        return data

    @model_validator(mode="after")
    def _has_work(self) -> Scenario:
        if not self.endpoints and not self.flows:
            raise problem("the scenario has no endpoints and no flows",
                          "add an 'endpoints:' list (weighted requests) or a 'flows:' list (ordered steps)")
        if not any(e.weight for e in self.endpoints) and not any(f.weight for f in self.flows):
            raise problem("every endpoint and flow has weight 0: users would have nothing to send",
                          "give at least one endpoint or flow a weight of 1 or more",
                          at=("endpoints" if self.endpoints else "flows",))
        if not self.policies:
            raise problem("no connection policies", "add e.g. 'policies: {shared: {}}'", at=("policies",))
        return self

    @model_validator(mode="after")
    def _arrival_or_wait(self) -> Scenario:
        # An open-model iteration is one endpoint pick or one flow: there is no think time to wait.
        if self.load.arrival is not None and "wait" in self.model_fields_set:
            raise problem("load.arrival starts each iteration on its own clock, so 'wait:' would be ignored",
                          "remove 'wait:' (or remove load.arrival to run users that wait)", at=("load", "arrival"))
        return self

    @model_validator(mode="after")
    def _rate_or_wait(self) -> Scenario:
        # load.rps sets every user's wait time; a wait given as well would be silently replaced.
        if self.load.rps is not None and "wait" in self.model_fields_set:
            raise problem("load.rps paces the users itself, so 'wait:' would be ignored",
                          "remove 'wait:' (or remove load.rps to keep the wait)", at=("load", "rps"))
        return self
