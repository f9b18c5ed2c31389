"""Scenario loading: file → YAML → `${ENV}` → schema → cross-field checks → `LoadedScenario`.

Everything that can be known before a request is sent is checked here, and every problem
found is reported at once (not just the first) with file, line, key path and a fix.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from workload import redaction
from workload.errors import Problem, ScenarioError, WorkloadError
from workload.scenario import credentials, tls_files, urls
from workload.scenario.messages import did_you_mean, problems_from
from workload.scenario.request_checks import check_names, check_requests
from workload.scenario.schema import Request, Scenario
from workload.scenario.source import Path, Source, interpolate_env, parse, settle_env_problems
from workload.scenario.template_checks import check_templates
from workload.scenario.textfile import DEFAULT_MAX_SCENARIO_BYTES, TextFile, read_text
from workload.scenario.tls_files import tls_file

DEMO_HOST = "demo"


@dataclass(frozen=True)
class LoadedScenario:
    """A validated scenario with its file-relative resources read in."""

    path: str
    model: Scenario
    credentials: tuple[dict[str, str], ...]
    document: dict[str, Any]
    lines: dict[Path, int] = field(default_factory=dict, compare=False)  # key path -> line, as parsed
    raw: dict[str, Any] | None = None  # the document before ${ENV} substitution (names stats rows)

    @property
    def credential_fields(self) -> tuple[str, ...]:
        """The fields every credentials row has (a CSV's header), as `user.<field>` in templates."""
        return credentials.common_fields(self.credentials)

    @property
    def name(self) -> str:
        return self.model.name or FsPath(self.path).stem

    def policy_names(self) -> list[str]:
        return list(self.model.policies)

    def default_policy(self) -> str:
        return self.model.default_policy or next(iter(self.model.policies))

    def check_policy(self, name: str) -> str:
        """The policy name, or a `ScenarioError` saying which names exist."""
        if name not in self.model.policies:
            fix = did_you_mean(name, self.policy_names(), noun="policy")
            raise ScenarioError([Problem(self.path, None, "policies", f"unknown policy '{name}'", fix)])
        return name


SCENARIO_FILE = TextFile("the scenario file", "", "check the path (see scenarios/*.yaml)", DEFAULT_MAX_SCENARIO_BYTES)


def load_scenario(path: str | os.PathLike[str]) -> LoadedScenario:
    file = os.fspath(path)
    return load_text(read_text(file, SCENARIO_FILE), file)


def load_each(paths: Iterable[str]) -> tuple[list[LoadedScenario], int]:
    """`workload validate`/`check`: load every file, printing an invalid one's problems to
    stderr instead of stopping; (the valid ones, how many were invalid)."""
    loaded, invalid = [], 0
    for path in paths:
        try:
            loaded.append(load_scenario(path))
        except WorkloadError as exc:
            print(f"{exc}\n", file=sys.stderr)
            invalid += 1
    return loaded, invalid


def load_text(text: str, file: str = "<scenario>") -> LoadedScenario:
    parsed = parse(text, file)
    source, env_problems = interpolate_env(parsed)
    return dataclasses.replace(load_document(source, env_problems), raw=parsed.data)


def load_document(source: Source, earlier: list[Problem] | None = None) -> LoadedScenario:
    """Validate parsed data; `earlier` problems (e.g. missing env vars) are reported with the rest."""
    earlier = earlier or []
    redaction.register_document(source.data)  # before any message can echo a value
    try:
        model = Scenario.model_validate(source.data)
    except ValidationError as exc:
        found = settle_env_problems(earlier + problems_from(exc, source, Scenario), earlier, source)
        raise ScenarioError(_in_order(found)) from exc
    base = FsPath(source.file).parent
    problems: list[Problem] = list(earlier)
    rows = _read_credentials(model, source, base, problems)
    redaction.register_credentials(rows)
    problems += _check_hosts(model, source)
    problems += _check_tls_files(model, source, base)
    problems += check_templates(model, source, _requests(model), rows if model.credentials else None)
    problems += _check_policy_names(model, source)
    problems += check_names(model, source) + check_requests(model, source, _requests(model))
    if problems:
        raise ScenarioError(_in_order(settle_env_problems(problems, earlier, source)))
    return LoadedScenario(source.file, model, rows, source.data, source.lines)


def _in_order(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.line or 0, p.key))


def _read_credentials(model: Scenario, source: Source, base: FsPath,
                      problems: list[Problem]) -> tuple[dict[str, str], ...]:
    creds = model.credentials
    if creds is None:
        return ()
    if creds.inline is not None:
        if not creds.inline:
            problems.append(source.problem(("credentials", "inline"), "the credentials list is empty",
                                           "add at least one '- {username: ..., password: ...}'"))
        return tuple(creds.inline)
    return credentials.read(base / creds.csv if creds.csv else base, source, problems)


def _check_hosts(model: Scenario, source: Source) -> list[Problem]:
    target = model.target
    problems = [source.problem(("target", *key), *why) for key, url in _host_entries(model)
                if (why := url_problem(url))]
    problems += _check_agent(model, source)
    for path, req in _requests(model):
        if req.host is not None and req.host not in target.hosts:
            fix = did_you_mean(req.host, list(target.hosts), noun="host name") if target.hosts \
                else "define it under 'target: {hosts: {name: url}}'"
            problems.append(source.problem((*path, "host"), f"unknown host name '{req.host}'", fix))
        elif req.host is None and target.host is None:
            problems.append(source.problem(path, "the request names no host and the target has no default",
                                           "add 'host: <name>' or set 'target: {host: ...}'"))
    return problems


def _check_agent(model: Scenario, source: Source) -> list[Problem]:
    """`target.agent`: a base URL on a host the scenario declares (a run never asks anyone else)."""
    agent = model.target.agent
    if agent is None:
        return []
    if why := urls.url_problem(agent):
        return [source.problem(("target", "agent"), *why)]
    declared = {urlsplit(url).hostname for _key, url in _host_entries(model) if url != DEMO_HOST}
    if urlsplit(agent).hostname not in declared:
        return [source.problem(("target", "agent"), f"agent host '{urlsplit(agent).hostname}' is not a declared "
                               "target host", "run the agent on the target's host and use that host in its URL "
                               f"({', '.join(sorted(h for h in declared if h)) or 'no host declared'})")]
    return []


def _host_entries(model: Scenario) -> list[tuple[Path, str]]:
    entries: list[tuple[Path, str]] = [(("hosts", name), url) for name, url in model.target.hosts.items()]
    if model.target.host is not None:
        entries.insert(0, (("host",), model.target.host))
    return entries


def _check_tls_files(model: Scenario, source: Source, base: FsPath) -> list[Problem]:
    target = model.target
    files: list[tuple[Path, str]] = []
    if isinstance(target.verify, str):
        files.append((("target", "verify"), target.verify))
    if isinstance(target.cert, str):
        files.append((("target", "cert"), target.cert))
    elif isinstance(target.cert, list):
        files += [(("target", "cert", i), p) for i, p in enumerate(target.cert)]
    problems = []
    if isinstance(target.cert, list) and len(target.cert) != 2:
        problems.append(source.problem(("target", "cert"), "cert needs exactly [certificate, key]",
                                       "write 'cert: client.pem' or 'cert: [client.crt, client.key]'"))
    for path, value in files:
        if not value or not tls_file(value, base).exists():
            problems.append(source.problem(path, f"file not found: '{value}'",
                                           "give an existing PEM file (relative paths are relative to the "
                                           "scenario file), or 'verify: true' for the system trust store"))
        elif why := tls_files.unreadable(tls_file(value, base), allow_dir=path == ("target", "verify")):
            problems.append(source.problem(path, f"'{value}' {why}", tls_files.READ_FIX))
    if not problems:  # every file exists: now prove OpenSSL can load them (PEM, matching key)
        problems += tls_files.load_problems(target.verify, target.cert, base, source)
    return problems


def url_problem(url: str) -> tuple[str, str] | None:
    """Why `url` cannot be a target, or None.  `demo` / `http(s)://demo` is the embedded target."""
    return None if url == DEMO_HOST else urls.url_problem(url)


def _requests(model: Scenario) -> list[tuple[Path, Request]]:
    found: list[tuple[Path, Request]] = [(("endpoints", i), e) for i, e in enumerate(model.endpoints)]
    for f, flow in enumerate(model.flows):
        found += [(("flows", f, "steps", s), step) for s, step in enumerate(flow.steps)]
    return found


def _check_policy_names(model: Scenario, source: Source) -> list[Problem]:
    name = model.default_policy
    if name is not None and name not in model.policies:
        fix = did_you_mean(name, list(model.policies), noun="policy")
        return [source.problem(("default_policy",), f"unknown policy '{name}'", fix)]
    return []
