"""Web UI extension: the scenario/policy fields take effect, and a live Connections tab.

Locust's bundled React UI renders extra tabs as tables (`extended_tabs`,
`extended_tables`) filled from `extended_stats` in the `/stats/requests` poll, and offers
CSV downloads (`extended_csv_files`).  A `before_request` hook on `/swarm` compiles the
scenario and policy picked in the form before Locust starts the run (on a master the user
dispatcher is built before `test_start`, so that would be too late).  The form's scenario
field reads only files under the scenarios folder (`ScenarioField`): the UI has no
authentication, so it must not load, and echo errors about, any file on the machine.  Every
JSON, CSV, HTML and text answer is passed through `workload.redaction.redact` (stats names,
errors, the log tab).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.datastructures import ImmutableMultiDict

from workload.engine.clusterkey import is_loopback
from workload.errors import render_message
from workload.redaction import redact, register_userinfo
from workload.telemetry.cluster import worker_rows

log = logging.getLogger("workload")

TAB_KEY = "workload-connections"
REDACTED_TYPES = frozenset({"application/json", "text/csv", "text/html", "text/plain"})
EXTENSION = {
    "extended_tabs": [{"title": "Connections", "key": TAB_KEY}],
    "extended_tables": [{"key": TAB_KEY, "structure": [
        {"key": "metric", "title": "Metric"}, {"key": "value", "title": "Value"}]}],
    "extended_csv_files": [{"href": "./workload/connections.csv", "title": "Download connection figures CSV"}],
}


SCENARIO_SUFFIXES = (".yaml", ".yml")


def scenarios_folder(configured: str, repo_root: Path, resolve: bool = True) -> Path:
    """The folder the UI's scenario field reads: the configured one, else ./scenarios, else the repo's
    (unresolved: as the dropdown shows it, e.g. `scenarios/demo.yaml`)."""
    local = Path("scenarios")
    folder = Path(configured) if configured else local if local.is_dir() else repo_root / "scenarios"
    return folder.resolve() if resolve else folder


@dataclass(frozen=True)
class ScenarioField:
    """The web UI's scenario field: files under `folder` only, plus the one the command line named."""

    folder: Path
    typed: str  # --scenario as given on the command line (the user typed it: any path)

    def choose(self, value: str) -> tuple[str, str | None]:
        """The path to load for a form value, or a problem message (nothing is read then)."""
        if not value or value == self.typed:
            return value, None
        if ".." in Path(value).parts:
            return value, self._problem(value, "contains '..'")
        candidates = [value] if Path(value).is_absolute() else [value, str(self.folder / value)]
        for candidate in candidates:
            resolved = Path(candidate).resolve()  # symlinks followed: a link out of the folder is outside
            if resolved.is_relative_to(self.folder) and resolved.is_file() and resolved.suffix in SCENARIO_SUFFIXES:
                return candidate, None
        if not any(Path(c).resolve().is_relative_to(self.folder) for c in candidates):
            return value, self._problem(value, "is outside that folder")
        return value, self._problem(value, "is not a scenario file there")

    def _problem(self, value: str, reason: str) -> str:
        return render_message(f"the web UI's scenario field reads only *.yaml files under {self.folder}: "
                              f"'{value}' {reason}",
                              fix="choose a listed scenario, put the file in that folder (or point "
                              "--scenarios-dir / WORKLOAD_SCENARIOS_DIR at its own), or give it on the command "
                              "line with --scenario PATH")


def connection_rows(live: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Flatten live figures into the tab's (metric, value) rows."""
    if not live:
        return [{"metric": "status", "value": "no run yet"}]
    rows = [{"metric": "policy", "value": live.get("policy", "")}]
    for key, value in live.get("connections", {}).items():
        if not isinstance(value, dict):
            rows.append({"metric": key, "value": value})
    setup = live.get("connections", {}).get("setup_ms") or {}
    rows.append({"metric": "connection setup ms (avg)", "value": setup.get("avg")})
    sockets = live.get("sockets", {})
    for key in ("time_wait_client", "time_wait_server", "established_client", "established_server"):
        figures = sockets.get(key)
        shown = "not observable (remote target)" if figures is None or figures.get("end") is None else \
            f"now {figures.get('end')}, peak {figures.get('peak')}"
        rows.append({"metric": key.replace("_", " "), "value": shown})
    rows += arrival_rows(live.get("arrival"))
    return rows + worker_rows(live.get("workers") or [])  # distributed: one row per worker


def arrival_rows(figures: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The open model's offered vs achieved load and its two latencies (`load.arrival` runs only)."""
    if not figures:
        return []
    response, service = figures.get("response_time_ms") or {}, figures.get("service_time_ms") or {}
    return [{"metric": "offered rate (iterations/s)", "value": figures.get("offered_rate")},
            {"metric": "achieved rate (iterations/s)", "value": figures.get("achieved_rate")},
            {"metric": "dropped (max_in_flight reached)", "value": f"{figures.get('dropped')} of "
             f"{figures.get('scheduled')} scheduled"},
            {"metric": "late starts", "value": f"{figures.get('late')}, lag p99 "
             f"{(figures.get('lag_ms') or {}).get('p99')} ms"},
            {"metric": "in flight (now / peak)",
             "value": f"{figures.get('in_flight')} / {figures.get('peak_in_flight')}"},
            {"metric": "response time p50 / p99 ms (from intended start)",
             "value": f"{response.get('p50')} / {response.get('p99')}"},
            {"metric": "service time p50 / p99 ms (from send)",
             "value": f"{service.get('p50')} / {service.get('p99')}"}]


def install(environment: Any, live: Callable[[], dict[str, Any] | None],
            on_swarm: Callable[[str, str, str | None], str | None], field: ScenarioField) -> None:
    """Wire the tab, the CSV route and the swarm hook into `environment.web_ui`."""
    options = environment.parsed_options
    web_host = getattr(options, "web_host", None)
    if web_host is not None and not is_loopback(web_host) and not getattr(options, "web_login", False):
        log.warning("workload: the web UI listens on %s without authentication: whoever reaches it can start "
                    "load runs (publish its port on loopback only, as docker-compose.yml does)", web_host or "*")
    web_ui = environment.web_ui
    web_ui.template_args.update(EXTENSION)
    app = web_ui.app

    @app.after_request
    def _extend_stats(response: Response) -> Response:
        if request.path.endswith("/stats/requests") and response.is_json:
            payload = response.get_json()
            payload["extended_stats"] = [{"key": TAB_KEY, "data": connection_rows(live())}]
            response.set_data(json.dumps(payload))
        if response.mimetype in REDACTED_TYPES and not (response.is_streamed or response.direct_passthrough):
            response.set_data(redact(response.get_data(as_text=True)))  # stats names, errors, logs
        if disposition := response.headers.get("Content-Disposition"):
            response.headers["Content-Disposition"] = redact(disposition)  # Locust names downloads after the host
        return response

    @app.before_request
    def _choose_scenario() -> Any:
        if request.path.rstrip("/").endswith("/swarm") and request.method == "POST":
            form = request.form
            register_userinfo(form.get("host", ""))  # a host typed with user:password@
            # The host the form was filled with, read before on_swarm activates the new scenario.
            auto_host = getattr(environment, "workload_auto_host", None)
            scenario, problem = field.choose(form.get("scenario", ""))
            problem = problem or on_swarm(scenario, form.get("policy", ""), form.get("host") or None)
            if problem:
                return jsonify({"success": False, "message": problem, "host": environment.host})
            # Locust writes the form back into parsed_options: the checked path, and no host that was
            # auto-filled from the previous scenario (it must not override the new one's).
            auto_filled = bool(form.get("host")) and form.get("host") == auto_host
            request.form = ImmutableMultiDict([(k, scenario if k == "scenario" else v)
                                               for k, v in form.items(multi=True)
                                               if not (k == "host" and auto_filled)])
        return None

    blueprint = Blueprint("workload", __name__)

    @blueprint.route("/workload/connections.csv")
    def _connections_csv() -> Response:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=["metric", "value"])
        writer.writeheader()
        writer.writerows(connection_rows(live()))
        return Response(out.getvalue(), mimetype="text/csv",
                        headers={"Content-Disposition": "attachment; filename=connections.csv"})

    app.register_blueprint(blueprint)

