"""Targets: a scenario's host names resolved to URLs, the embedded demo target included.

`demo` / `http://demo` is the demo target's HTTP listener and `https://demo` its HTTPS
listener; when the scenario keeps `verify: true`, the demo's own CA is trusted.  A
`--host` given to Locust replaces the scenario's default host, and is checked like one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from workload.errors import Problem, ScenarioError
from workload.scenario.loader import DEMO_HOST, LoadedScenario, tls_file, url_problem

Verify = bool | str


@dataclass(frozen=True)
class ResolvedTarget:
    default_host: str | None
    hosts: dict[str, str]
    headers: dict[str, str]
    verify: Verify
    cert: str | tuple[str, str] | None
    demo: bool = False

    def urls(self) -> list[str]:
        found = [self.default_host] if self.default_host else []
        return found + [u for u in self.hosts.values() if u not in found]


def is_demo(url: str | None) -> bool:
    if url is None:
        return False
    return url == DEMO_HOST or urlsplit(url).hostname == DEMO_HOST and urlsplit(url).port is None


def needs_demo(loaded: LoadedScenario, host_override: str | None = None) -> bool:
    target = loaded.model.target
    default = host_override or target.host
    return is_demo(default) or any(is_demo(u) for u in target.hosts.values())


def resolve(loaded: LoadedScenario, demo: Any | None = None, host_override: str | None = None) -> ResolvedTarget:
    """URLs for every host name; `demo` is a running `workload.demo.DemoTarget` when needed."""
    target = loaded.model.target
    if host_override and (why := url_problem(host_override)):  # --host skips the scenario's validation
        raise ScenarioError([Problem(loaded.path, None, "--host", *why)])

    def url(value: str | None) -> str | None:
        if value is None or not is_demo(value):
            return value.rstrip("/") if value else value
        if demo is None:
            raise ValueError("the scenario uses the demo target but none is running")
        return demo.https_url if value.startswith("https://") else demo.http_url

    default = url(host_override or target.host)
    hosts = {name: url(u) or "" for name, u in target.hosts.items()}
    uses_demo = any(is_demo(u) for u in [host_override or target.host, *target.hosts.values()])
    verify: Verify = target.verify
    if uses_demo and verify is True and demo is not None and demo.ca_path:
        verify = demo.ca_path  # the demo's self-signed CA, so verify: true still works
    base = Path(loaded.path).parent
    if isinstance(verify, str) and verify == target.verify:
        verify = str(tls_file(verify, base))
    cert: str | tuple[str, ...] | None = None
    if isinstance(target.cert, list):
        cert = tuple(str(tls_file(p, base)) for p in target.cert)
    elif target.cert:
        cert = str(tls_file(target.cert, base))
    return ResolvedTarget(default, hosts, dict(target.headers), verify, cert, demo=uses_demo)  # type: ignore[arg-type]
