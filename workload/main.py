"""The locustfile: `locust -f workload/main.py [--scenario PATH] [--policy NAME] ...`.

Entry point, so it imports locust first (locust monkey-patches sockets and ssl; importing
requests or urllib3 before it breaks SSL).  At import it compiles the chosen scenario into
one user class so Locust has a class to discover; the class actually run is re-chosen at
`init` (command line), on the web UI's start (its fields), and on workers from the
master's forwarded scenario.  A bad scenario prints located messages and exits 2.
"""

import locust  # noqa: F401  (first, before anything imports ssl or requests: see [tool.ruff.lint.isort])
from locust import events
from locust.argument_parser import get_empty_argument_parser
from locust.runners import LocalRunner

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import gevent

from workload import lint
from workload.engine import arrival, clusterjoin, clusterkey, distributed, selection, webui
from workload.engine.controller import RunController, check_results_dir
from workload.engine.runclock import refresh_loop_clock
from workload.errors import ExitCode, WorkloadError

log = logging.getLogger("workload")
DEFAULT_SCENARIO = "scenarios/demo.yaml"
LOOPBACK = "127.0.0.1"  # default bind of the master and the web UI: neither has authentication
REPO_ROOT = Path(__file__).resolve().parent.parent


class OpenChoices(list):
    """Choices shown as a dropdown in the web UI, while any other scenario path is accepted."""

    def __contains__(self, item: object) -> bool:
        return isinstance(item, str)


def add_arguments(parser: Any) -> None:
    # Locust's extra kwargs (include_in_web_ui) work on the parser itself, not on argument groups.
    group = parser
    folder = webui.scenarios_folder(_scenarios_dir_option(), REPO_ROOT, resolve=False)
    scenarios = OpenChoices(selection.scenario_files(folder) or [DEFAULT_SCENARIO])
    group.add_argument("--scenario", default=_default_scenario(), choices=scenarios,
                       env_var="WORKLOAD_SCENARIO", help="Scenario YAML file")
    group.add_argument("--policy", default="", env_var="WORKLOAD_POLICY",
                       help="Connection policy named in the scenario (empty: the scenario's default)")
    group.add_argument("--results-dir", default="results", env_var="WORKLOAD_RESULTS_DIR",
                       include_in_web_ui=False, help="Where each run writes results/<run-id>/")
    group.add_argument("--run-id", default="", env_var="WORKLOAD_RUN_ID", include_in_web_ui=False,
                       help="Directory name of this run under --results-dir (default: time-scenario-policy)")
    group.add_argument("--shape", default="", env_var="WORKLOAD_SHAPE", include_in_web_ui=False,
                       help='Load stages as JSON, replacing the scenario\'s load (used by `workload capacity`), '
                            'e.g. {"stages": [{"users": 5, "duration": "10s", "spawn_rate": 5}], "stop_p95_ms": 500}')
    group.add_argument("--arrival", default="", env_var="WORKLOAD_ARRIVAL", include_in_web_ui=False,
                       help="Open-model load as JSON, replacing the scenario's load (used by `workload capacity`), "
                            'e.g. {"rate": 100, "max_in_flight": 200, "duration": "10s"}; "closed" runs an '
                            "open-model scenario as closed users")
    group.add_argument("--scenarios-dir", default="", env_var="WORKLOAD_SCENARIOS_DIR", include_in_web_ui=False,
                       help="The only folder whose scenario files the web UI's scenario field accepts "
                            "(default: scenarios/ in the current directory, else the repository's)")


def _scenarios_dir_option() -> str:
    """--scenarios-dir (or its variable / locust.conf) before parsing: the UI's dropdown lists it."""
    parser = get_empty_argument_parser(add_help=False)
    parser.add_argument("--scenarios-dir", default="", env_var="WORKLOAD_SCENARIOS_DIR")
    return str(parser.parse_known_args()[0].scenarios_dir)


def loopback_defaults(parser: Any) -> None:
    """Locust binds the master and the web UI to every interface by default; here both default
    to loopback (`--master-bind-host` / `--web-host` still choose, e.g. 0.0.0.0 in compose)."""
    parser.set_defaults(master_bind_host=LOOPBACK, web_host=LOOPBACK)
    for option in ("--master-bind-host", "--web-host"):
        action = getattr(parser, "_option_string_actions", {}).get(option)
        if action is not None:  # Locust's help says "Defaults to *"
            action.help = f"Address to listen on. workload's default: {LOOPBACK} (this machine only); '*' = all"


def _default_scenario() -> str:
    if Path(DEFAULT_SCENARIO).exists():
        return DEFAULT_SCENARIO
    return str(REPO_ROOT / DEFAULT_SCENARIO)


def _fail(exc: WorkloadError) -> None:
    print(f"workload: {exc}", file=sys.stderr)
    sys.exit(exc.exit_code)


def _interrupted_before_the_run() -> None:
    """Ctrl-C while the scenario loads or the demo target starts: no traceback, no traffic."""
    selection.stop_demo()
    print("workload: interrupted before the run started; nothing was sent", file=sys.stderr)
    sys.exit(ExitCode.INTERRUPTED)


def _preparse() -> Any:
    """Our options before Locust parses them (honours locust.conf, WORKLOAD_* and the CLI)."""
    parser = get_empty_argument_parser(add_help=False)
    add_arguments(parser)
    parser.add_argument("-H", "--host", default=None, env_var="LOCUST_HOST")
    parser.add_argument("--worker", action="store_true", default=False)
    parser.add_argument("--master", action="store_true", default=False, env_var="LOCUST_MODE_MASTER")
    parser.add_argument("--processes", type=int, default=None, env_var="LOCUST_PROCESSES")
    parser.add_argument("--master-bind-host", default=LOOPBACK, env_var="LOCUST_MASTER_BIND_HOST")
    options, _ = parser.parse_known_args()
    return options


def _initial_activation() -> selection.Activation | None:
    options = _preparse()
    if options.worker:
        # A worker always runs the master's scenario, forwarded at test start (so it needs no
        # file, and never starts a demo target of its own).
        return None
    if options.master or options.processes:  # decided before Locust binds the master port
        clusterkey.listen_on(options.master_bind_host)
    try:
        return selection.activate(options.scenario, options.policy or None, options.host, options.arrival)
    except WorkloadError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        _interrupted_before_the_run()
    return None


events.init_command_line_parser.add_listener(add_arguments)
events.init_command_line_parser.add_listener(loopback_defaults)
_INITIAL = _initial_activation()
if _INITIAL is not None:
    globals()[_INITIAL.user_class.__name__] = _INITIAL.user_class
else:
    from workload.engine.user import WorkloadUser

    class PendingScenario(WorkloadUser):  # replaced when the master's spawn message arrives
        abstract = False
        tasks = [lambda user: None]


@events.init.add_listener
def _on_init(environment: Any, **_kw: Any) -> None:
    try:
        _init(environment)
    except KeyboardInterrupt:
        _interrupted_before_the_run()


def _init(environment: Any) -> None:
    controller = RunController(environment, _INITIAL)
    environment.workload = controller
    options = environment.parsed_options
    if not controller.is_worker and options is not None:
        try:
            check_results_dir(options)  # before any traffic: a run must not be lost at its end
            controller.activate(options.scenario, options.policy or None, environment.host)
        except WorkloadError as exc:
            _fail(exc)
        controller.apply_load_defaults()
        current = controller.current
        if current is not None:  # `workload check` before the run: warnings only, never fatal
            lint.log_warnings(current.loaded, options.num_users, options.run_time, [current.policy])
        controller.take_over_run_time()
    if environment.web_ui is not None:
        folder = webui.scenarios_folder(options.scenarios_dir if options is not None else "", REPO_ROOT)
        typed = options.scenario if options is not None else ""  # the command line's, before any form
        webui.install(environment, controller.live, controller.swarm, webui.ScenarioField(folder, typed))
    distributed.install(environment, controller)  # worker telemetry -> master (no-op when local)
    arrival.install(environment)  # open model: service times, a fresh meter per run, the end-of-run drain
    gevent.signal_handler(signal.SIGINT, _interrupt_main)
    refresh_loop_clock()  # last: Locust arms `-t` right after init, against the loop's cached time


def _interrupt_main() -> None:
    """Ctrl-C as a KeyboardInterrupt in the main greenlet only, where Locust expects it and
    shuts down cleanly.  Python's own handler raises it in whatever greenlet runs at that
    moment, often a user's mid-request: a traceback, and a user killed outside Locust's stop."""
    hub = gevent.get_hub()
    main = hub.parent
    assert main is not None, "the hub runs under the main greenlet"
    hub.loop.run_callback(main.throw, KeyboardInterrupt)


@events.test_start.add_listener
def _on_test_start(environment: Any, **_kw: Any) -> None:
    controller: RunController = environment.workload
    if isinstance(environment.runner, LocalRunner) and environment.parsed_options is not None:
        _reactivate_if_changed(controller, environment.parsed_options)
    try:
        controller.on_test_start()
    except clusterkey.ClusterKeyError as exc:  # a worker that cannot open the master's scenario
        clusterjoin.leave_cluster(environment, exc)


def _reactivate_if_changed(controller: RunController, options: Any) -> None:
    current = controller.current
    wanted_policy = options.policy or (current.loaded.default_policy() if current else "")
    if current is None or current.loaded.path != options.scenario or current.policy != wanted_policy:
        controller.activate(options.scenario, options.policy or None, controller.env.host)


@events.test_stopping.add_listener
def _on_test_stopping(environment: Any, **_kw: Any) -> None:
    environment.workload.on_test_stopping()


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_kw: Any) -> None:
    environment.workload.on_test_stop()


@events.quitting.add_listener
def _on_quitting(environment: Any, **_kw: Any) -> None:
    environment.workload.quit()  # an interrupted run: its users stop, then it is written
    selection.stop_demo()  # only now: users still running would record refused connections


if os.environ.get("WORKLOAD_DEBUG_IMPORT"):
    log.info("workload locustfile loaded: %s", _INITIAL.user_class.__name__ if _INITIAL else "pending")
