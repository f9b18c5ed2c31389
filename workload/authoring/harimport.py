"""`workload import-har`: a browser recording (HAR) converted into a scenario that runs.

The pipeline: read and check the HAR (`har`), keep the declared hosts' requests without static
assets (`harfilter`), find the login (`harlogin`), turn each request into a flow step with its
captures and `${ENV}` secrets (`harsteps`), then write one flow in recorded order with the
recording's think time as `wait`.  The result is loaded by `workload.scenario.loader` before it is
written, and every secret value of the recording is replaced wherever it still appears.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from workload.authoring.har import HarEntry, read_har
from workload.authoring.harcapture import Captures
from workload.authoring.harfilter import Selection, declared, origin, select
from workload.authoring.harlogin import LoginFound, detect_login
from workload.authoring.harsteps import StepContext, build_step
from workload.authoring.harvalues import Secrets, response_json
from workload.errors import HarError, Problem

MAX_WAIT_S = 60.0  # think time per pass through the flow, at most
DEFAULT_LOAD = {"users": 5, "spawn_rate": 5, "duration": "30s"}
POLICIES: dict[str, dict[str, Any]] = {"shared": {}, "close": {}, "fresh": {}}


@dataclass
class Imported:
    """The scenario text and what the import did, for the command's summary."""

    text: str
    steps: int
    login: str | None
    captures: list[str]
    env: list[str]
    selection: Selection


def import_har(path: str, host_filter: list[str] | None = None, keep_static: bool = False,
               name: str | None = None, target: str | None = None) -> Imported:
    """The scenario for the recording at `path`; `target` replaces the recorded first host (`demo`, a URL)."""
    entries = read_har(path)
    hosts = declared(entries, host_filter)
    chosen = select(entries, hosts, keep_static)
    secrets = Secrets()
    _remember_cookies(entries, secrets)
    origins = _origins(chosen.kept)
    if not origins:
        raise HarError([Problem(path, None, "log.entries", _nothing_left(hosts, chosen),
                                "name the hosts to keep with --host-filter HOST (host or host:port), "
                                "or keep static assets with --keep-static")])
    names = _host_names(origins)

    def host_key(url: str) -> dict[str, str]:
        return {"host": names[origin(url)]} if names.get(origin(url)) else {}

    login = detect_login(chosen.kept, secrets, host_key)
    steps = [e for e in chosen.kept if login is None or e is not login.entry]
    document = _document(Path(path).stem if name is None else name, origins, names, login, steps, secrets, host_key)
    if target:
        document["target"]["host"] = target
    text = _render(path, secrets.scrub(document), chosen, secrets, login)
    return Imported(text, len(steps), _login_label(login), _capture_names(document), list(secrets.used), chosen)


def _document(name: str, origins: list[str], names: dict[str, str], login: LoginFound | None,
              steps: list[HarEntry], secrets: Secrets, host_key: Any) -> dict[str, Any]:
    captures = Captures()
    flow: list[dict[str, Any]] = []
    context_token = login.token if login else None
    for i, entry in enumerate(steps):
        flow.append(build_step(entry, StepContext(host_key(entry.url), context_token), captures, secrets))
        captures.learn(i, entry.url, response_json(entry))
    for i, specs in captures.by_step.items():
        flow[i]["capture"] = specs
    document: dict[str, Any] = {"name": _identifier(name) or "recorded",
                                "target": _target(origins, names, steps, secrets)}
    if login:
        document["login"] = login.spec
    document["flows"] = [{"name": "recorded", "steps": flow}] if flow else []
    if not flow:  # only a login was recorded: request the page it came from, so there is work to do
        document["endpoints"] = [{"path": "/"}]
        del document["flows"]
    document["wait"] = {"constant": think_time(steps)}
    document["policies"] = POLICIES
    document["default_policy"] = "shared"
    document["load"] = DEFAULT_LOAD
    return document


def think_time(steps: list[HarEntry]) -> float:
    """The pauses between one request's end and the next one's start, summed (one pass, seconds)."""
    pauses = (max(0.0, b.started - (a.started + a.duration)) for a, b in zip(steps, steps[1:], strict=False))
    return round(min(sum(pauses), MAX_WAIT_S), 1)


def _target(origins: list[str], names: dict[str, str], steps: list[HarEntry], secrets: Secrets) -> dict[str, Any]:
    target: dict[str, Any] = {"host": origins[0]}
    others = {names[o]: o for o in origins[1:]}
    if others:
        target["hosts"] = others
    cookies = _preset_cookies(steps, secrets)
    if cookies:
        target["cookies"] = cookies
    return target


def _preset_cookies(steps: list[HarEntry], secrets: Secrets) -> list[dict[str, Any]]:
    """Cookies the browser had before the recording (none of its responses set them): from `${ENV}`."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in steps:
        for name, value in _cookie_header(entry):
            host = urlsplit(entry.url).hostname or ""
            if secrets.env_of.get(value, "").startswith("SET_COOKIE_") or (name, host) in found:
                continue
            found[(name, host)] = {"name": name, "value": secrets.ref("COOKIE", name, value), "domain": host}
    return list(found.values())


def _cookie_header(entry: HarEntry) -> list[tuple[str, str]]:
    pairs = []
    for header, value in entry.headers:
        if header.lower() == "cookie":
            for part in value.split(";"):
                name, sep, cookie = part.strip().partition("=")
                if sep and name:
                    pairs.append((name, cookie))
    return pairs


def _remember_cookies(entries: list[HarEntry], secrets: Secrets) -> None:
    """Every cookie value a response set and every Authorization value: scrubbed wherever they appear."""
    for entry in entries:
        for name, value in entry.set_cookies:
            if value:
                secrets.remember("SET_COOKIE", name, value)
        for header, value in entry.response_headers:
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                if rest.split(";")[0]:
                    secrets.remember("SET_COOKIE", name.strip(), rest.split(";")[0])


def _origins(kept: list[HarEntry]) -> list[str]:
    return list(dict.fromkeys(origin(e.url) for e in kept))


def _host_names(origins: list[str]) -> dict[str, str]:
    """The first origin is the default host (no name); the others get names for `host:`."""
    names: dict[str, str] = {}
    for url in origins[1:]:
        base = _identifier(urlsplit(url).netloc) or "host"
        name, n = base, 2
        while name in names.values():
            name, n = f"{base}_{n}", n + 1
        names[url] = name
    return names


def _identifier(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()


def _login_label(login: LoginFound | None) -> str | None:
    if login is None:
        return None
    kind, spec = next(iter(login.spec.items()))
    return f"{kind} ({spec.get('method', 'POST')} {spec['path']})"


def _capture_names(document: dict[str, Any]) -> list[str]:
    return [n for flow in document.get("flows", []) for s in flow["steps"] for n in s.get("capture", {})]


def _nothing_left(hosts: list[str], chosen: Selection) -> str:
    other = ", ".join(sorted(chosen.other_hosts)) or "none"
    return (f"no request is left to replay: kept hosts {', '.join(hosts) or 'none'}; "
            f"{len(chosen.static)} static assets dropped; requests to other hosts: {other}")


def _render(path: str, document: dict[str, Any], chosen: Selection, secrets: Secrets,
            login: LoginFound | None) -> str:
    lines = [f"# Imported from {Path(path).name} by `workload import-har`: the recorded requests, in order,",
             "# as one flow. Review it, then: workload check <this file>; workload compare <this file>."]
    if secrets.used:
        lines += ["# Secrets of the recording are not in this file; set them before running:",
                  *[f"#   export {env}=..." for env in secrets.used]]
    lines += [f"# Dropped: {summary}" for summary in dropped_summary(chosen)]
    lines.append("# wait: the recording's pauses between requests, spent between passes through the flow.")
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=110, default_flow_style=False)
    return secrets.scrub_text("\n".join(lines) + "\n" + body)


def dropped_summary(chosen: Selection) -> list[str]:
    found = []
    if chosen.other_hosts:
        hosts = ", ".join(f"{h} ({n})" for h, n in chosen.other_hosts.most_common())
        found.append(f"requests to hosts not declared (--host-filter): {hosts}")
    if chosen.static:
        found.append(f"{len(chosen.static)} static assets (--keep-static keeps them)")
    found += chosen.dropped
    return found
