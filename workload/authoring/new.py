"""`workload new`: a small commented scenario for one target that validates and runs as written.

The text is a template, not a dump of the models, because its value is in the comments: what
each policy means, where the think time goes, which thresholds a CI gate could use.  It is
loaded by `workload.scenario.loader` before it is written, so a bad URL never becomes a file.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from workload.authoring.output import write_new
from workload.errors import WorkloadError
from workload.scenario.loader import DEMO_HOST, load_text, url_problem

DEFAULT_OUTPUT = "scenario.yaml"
DEMO_HEALTH_PATH = "/"  # the demo target's index: 200, no login needed

TEMPLATE = """\
# A first scenario for {shown}, written by `workload new`.
#   check it (no traffic):      workload check {file}
#   one run per policy:         workload compare {file}
# Every key is described in docs/scenario-format.md.
name: {name}
target: {host}{demo_note}
endpoints:
  # A cheap request that answers 200 without logging in. Add the requests your users make
  # below it (weight: how often each is picked), e.g.
  #   - {{name: list items, path: /api/items, weight: 3, expect: {{status: 200}}}}
  - name: health
    path: {path}
    expect: {{status: 200}}
wait:
  between: [0.1, 0.5]   # think time of each user between two requests, in seconds
# The connection policies to compare (`workload compare` runs each in turn):
policies:
  shared: {{}}   # one keep-alive pool per user: connections are reused (like a browser)
  close: {{}}    # `Connection: close` on every request: one new connection per request
  fresh: {{}}    # a new session per request: new connection, no cookies kept (a naive client)
default_policy: shared
load:
  users: 5
  spawn_rate: 5
  duration: 10s
# Pass/fail limits for CI: a run that breaches one exits with code 3.
# thresholds:
#   p95_ms: 500
#   max_failure_ratio: 0.01
"""


def new_scenario(url: str | None, file: str = DEFAULT_OUTPUT) -> str:
    """The scenario text for `url` (None: the embedded demo target); validated, not yet written."""
    host, path = _split(url)
    demo = host == DEMO_HOST
    text = TEMPLATE.format(
        shown="the embedded demo target" if demo else host, file=file, name=_name(host),
        host=host, path=path,
        demo_note="   # the embedded demo target, started by workload itself" if demo else "")
    load_text(text, file)  # raises ScenarioError should the template and the schema ever drift apart
    return text


def write_scenario(url: str | None, file: str = DEFAULT_OUTPUT) -> str:
    """Write the scenario to `file` (never over an existing file); returns the file name."""
    return write_new(file, new_scenario(url, file), force=False)


def _split(url: str | None) -> tuple[str, str]:
    """(host URL, health path) from the command line's URL."""
    if url is None or url == DEMO_HOST:
        return DEMO_HOST, DEMO_HEALTH_PATH
    parts = urlsplit(url)
    host = f"{parts.scheme}://{parts.netloc}"
    why = url_problem(host) if parts.scheme and parts.netloc else \
        (f"'{url}' is not an http(s) URL", "give a URL such as http://127.0.0.1:8080 (or no URL for the demo target)")
    if why:
        raise WorkloadError(why[0], why[1], where="URL")
    return host, parts.path or "/"


def _name(host: str) -> str:
    hostname = urlsplit(host).hostname or host
    return re.sub(r"[^A-Za-z0-9]+", "-", hostname).strip("-") or "scenario"
