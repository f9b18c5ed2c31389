"""Command line: `workload validate | check | schema | new | import-har | serve | compare | capacity | report`,
`workload agent | cluster-key`.

Does not import locust (which monkey-patches the process): load runs happen in `locust`
child processes started by `workload.commands.compare`.  Every `WorkloadError` becomes its
message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence

from workload import scrub
from workload.errors import ExitCode, WorkloadError


def _validate(args: argparse.Namespace) -> int:
    from workload.scenario.loader import load_each

    loaded, invalid = load_each(args.paths)
    for scenario in loaded:
        print(f"{scenario.path}: ok ({scenario.name}; policies: {', '.join(scenario.policy_names())})")
    return ExitCode.BAD_INPUT if invalid else ExitCode.OK


def _check(args: argparse.Namespace) -> int:
    from workload.lint.checker import run_check

    return run_check(args.paths, strict=args.strict, quiet=args.quiet)


def _schema(args: argparse.Namespace) -> int:
    from workload.scenario.editor_schema import render

    text = render()
    if args.out is None:
        sys.stdout.write(text)
        return ExitCode.OK
    from pathlib import Path

    Path(args.out).write_text(text, encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return ExitCode.OK


def _serve(args: argparse.Namespace) -> int:
    from workload.demo.server import main as serve_main

    argv = ["--host", args.host, "--port", str(args.port), "--admin-port", str(args.admin_port)]
    if args.allow_external_bind:
        argv.append("--allow-external-bind")
    return serve_main(argv)


def _compare(args: argparse.Namespace) -> int:
    from workload.commands.compare import CompareRequest, run_compare

    request = CompareRequest(
        scenario=args.scenario, policies=_split(args.policies), users=args.users,
        spawn_rate=args.spawn_rate, duration=args.duration, out=args.out, workers=args.workers,
        replace=args.replace)
    return run_compare(request)


def _capacity(args: argparse.Namespace) -> int:
    from workload.commands.capacity import CapacityRequest, run_capacity

    request = CapacityRequest(
        scenario=args.scenario, policies=_split(args.policies), target_rps=args.target_rps,
        max_users=args.max_users, step_users=args.step_users, step_duration=args.step_duration,
        max_duration=args.max_duration, slo_p95_ms=args.slo_p95_ms, slo_failure_ratio=args.slo_failure_ratio,
        out=args.out, replace=args.replace, model=args.model, start_rate=args.start_rate,
        step_rate=args.step_rate, max_rate=args.max_rate, repeat=args.repeat, pause=args.pause,
        slo_p99_ms=args.slo_p99_ms)
    return run_capacity(request)


def _report(args: argparse.Namespace) -> int:
    import time

    from workload.report import build_report, describe

    out = args.out or f"results/report-{time.strftime('%Y%m%d-%H%M%S')}"
    paths = build_report(args.run_dirs, out)
    print(describe(paths))
    return 0


def _new(args: argparse.Namespace) -> int:
    from workload.authoring.new import write_scenario

    written = write_scenario(args.url, args.output)
    if written != "standard output":
        print(f"wrote {written}; next: workload check {written} && workload compare {written}", file=sys.stderr)
    return ExitCode.OK


def _import_har(args: argparse.Namespace) -> int:
    from workload.authoring.harcli import run_import

    return run_import(args.har, args.output, args.host_filter, keep_static=args.keep_static, force=args.force,
                      target=args.target)


def _number(kind: type[int] | type[float], low: float, high: float | None = None,
            low_included: bool = True) -> Callable[[str], int | float]:
    """An argparse type: a number of `kind` in [low, high] (or above `low`), else a clear error."""
    relation = f"between {low:g} and {high:g}" if high is not None else \
        (f"at least {low:g}" if low_included else f"greater than {low:g}")
    noun = "a whole number" if kind is int else "a number"

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        too_low = value < low if low_included else value <= low
        if too_low or (high is not None and value > high) or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be {relation}, got {text!r}")
        return value

    return parse


def _span(text: str) -> str:
    """An argparse type: a positive time span (`30s`, `2m`, `90`), kept as written."""
    from workload.scenario.timespan import seconds

    try:
        positive = seconds(text) > 0
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a time span such as 30s, 2m or 1h30m, got {text!r}") from None
    if not positive:
        raise argparse.ArgumentTypeError(f"must be a positive time span such as 30s, got {text!r}")
    return text


USERS = _number(int, 1)
COUNT = _number(int, 0)
POSITIVE = _number(float, 0, low_included=False)
RATIO = _number(float, 0, 1)
PORT = _number(int, 0, 65535)


def _cluster_key(_args: argparse.Namespace) -> int:
    from workload.engine.clusterkey import generate_key

    print(generate_key())
    return 0


def _agent(args: argparse.Namespace) -> int:
    from workload.telemetry.agent import Agent, agent_key, serve

    agent = Agent(agent_key(), frozenset(args.port), args.max_seconds)
    try:
        server = serve(agent, args.bind, args.listen)
    except OSError as exc:
        print(f"workload: error: cannot listen on {args.bind}:{args.listen}: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    host, port = str(server.server_address[0]), int(server.server_address[1])
    print(f"workload agent: serving the server side of port(s) {', '.join(map(str, sorted(args.port)))} "
          f"on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        agent.close()
    return 0


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


DESCRIPTION = "HTTP load generation on Locust where the connection policy is a measured variable."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workload", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check scenario files without sending traffic")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.set_defaults(run=_validate)

    p = sub.add_parser("check", help="lint scenario files for settings that fail silently (no traffic)")
    p.add_argument("paths", nargs="+", metavar="SCENARIO")
    p.add_argument("--strict", action="store_true", help="exit 2 when there are warnings")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print nothing for clean files and one line per warning (for CI logs)")
    p.set_defaults(run=_check)

    p = sub.add_parser("schema", help="print the scenario format as JSON Schema (for YAML editors)")
    p.add_argument("-o", "--out", help="write to this file instead of stdout")
    p.set_defaults(run=_schema)

    p = sub.add_parser("new", help="write a small commented scenario for a target (default: the demo target)")
    p.add_argument("url", nargs="?", metavar="URL", help="the target, e.g. http://127.0.0.1:8080/health")
    p.add_argument("-o", "--output", default="scenario.yaml", metavar="FILE",
                   help="the file to write, never over an existing one (default: scenario.yaml; -: print)")
    p.set_defaults(run=_new)

    p = sub.add_parser("import-har", help="convert a browser recording (.har) into a scenario")
    p.add_argument("har", metavar="FILE.har")
    p.add_argument("-o", "--output", metavar="SCENARIO.yaml",
                   help="the file to write (default: the HAR's name with .yaml, in this folder; -: print)")
    p.add_argument("--host-filter", nargs="+", metavar="HOST",
                   help="keep requests to these hosts (host or host:port; default: the first request's host)")
    p.add_argument("--keep-static", action="store_true", help="keep images, scripts, stylesheets and fonts")
    p.add_argument("--target", metavar="URL",
                   help="run against this host instead of the recorded one (e.g. http://127.0.0.1:8080, demo)")
    p.add_argument("--force", action="store_true", help="replace the output file if it exists")
    p.set_defaults(run=_import_har)

    p = sub.add_parser("serve", help="run the embedded demo target in the foreground")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=PORT, default=8080, help="0..65535 (0: any free port)")
    p.add_argument("--admin-port", type=PORT, default=0, help="port of /__stats (default: any free port)")
    p.add_argument("--allow-external-bind", action="store_true",
                   help="allow a non-loopback --host, e.g. 0.0.0.0 in docker-compose (no authentication!)")
    p.set_defaults(run=_serve)

    p = sub.add_parser("compare", help="run a scenario once per policy and write one report")
    p.add_argument("scenario")
    p.add_argument("--policies", help="comma-separated policy names (default: all in the scenario)")
    p.add_argument("--users", type=USERS, help="simulated users (default: the scenario's load.users)")
    p.add_argument("--spawn-rate", type=POSITIVE, help="users started per second")
    p.add_argument("--duration", type=_span, help="per policy, e.g. 15s (default: the scenario's load.duration)")
    p.add_argument("--workers", type=COUNT, default=0, help="run each policy on a master + N local workers")
    p.add_argument("--out", help="report directory, new or empty (default: results/compare-<time>-<scenario>)")
    p.add_argument("--replace", action="store_true", help="delete an earlier compare's results in --out first")
    p.set_defaults(run=_compare)

    p = sub.add_parser("capacity", help="step the load up per policy to find the knee; forecast a target rate")
    p.add_argument("scenario")
    p.add_argument("--policies", help="comma-separated policy names (default: all in the scenario)")
    p.add_argument("--target-rps", type=POSITIVE,
                   help="forecast connections, TIME_WAIT, ports, fds, pools at this rate")
    p.add_argument("--max-users", type=USERS, help="stop stepping at this many users (default: 120)")
    p.add_argument("--step-users", type=USERS, help="users added per step (default: 10)")
    p.add_argument("--step-duration", type=_span, help="length of one step, e.g. 5s (default: 5s)")
    p.add_argument("--max-duration", type=_span, help="bound per policy, e.g. 60s (default: 60s)")
    p.add_argument("--slo-p95-ms", type=POSITIVE,
                   help="p95 limit in ms (default: the scenario's thresholds.p95_ms, else 500)")
    p.add_argument("--slo-failure-ratio", type=RATIO,
                   help="failure ratio limit, 0..1 (default: thresholds.max_failure_ratio, else 0.01)")
    p.add_argument("--model", choices=("open", "closed"), default="open",
                   help="open: step the arrival rate (default); closed: step Locust users (the user ladder)")
    p.add_argument("--start-rate", type=POSITIVE, help="open model: first arrival rate per second (default: 25)")
    p.add_argument("--step-rate", type=POSITIVE, help="open model: rate added per step (default: 25)")
    p.add_argument("--max-rate", type=POSITIVE, help="open model: highest rate (default: 250)")
    p.add_argument("--repeat", type=USERS, help="open model: runs per step, to show its spread (default: 1)")
    p.add_argument("--pause", type=_span, help="open model: wait between steps, e.g. 2s (default: 1s; longer "
                   "while client TIME_WAIT holds a quarter of the port range)")
    p.add_argument("--slo-p99-ms", type=POSITIVE, help="open model: response p99 limit from the intended start "
                   "(default: thresholds.response_p99_ms, else 1000)")
    p.add_argument("--out", help="report directory, new or empty (default: results/capacity-<time>)")
    p.add_argument("--replace", action="store_true", help="delete an earlier capacity's results in --out first")
    p.set_defaults(run=_capacity)

    p = sub.add_parser("report", help="build the comparison report from saved runs")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", default=None, help="report directory (default: the first run's parent)")
    p.set_defaults(run=_report)

    p = sub.add_parser("agent", help="on a target host: serve its socket table's server side to runs "
                       "(needs WORKLOAD_AGENT_KEY)")
    p.add_argument("--port", type=_number(int, 1, 65535), action="append", required=True,
                   help="a target port whose server-side sockets runs may sample (repeatable)")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this host only)")
    p.add_argument("--listen", type=PORT, default=9107, help="port to listen on (default 9107)")
    p.add_argument("--max-seconds", type=POSITIVE, default=3600.0, help="longest sampling session (default 3600)")
    p.set_defaults(run=_agent)

    p = sub.add_parser("cluster-key", help="print a fresh WORKLOAD_CLUSTER_KEY for a master and its workers")
    p.set_defaults(run=_cluster_key)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.run
    scrub.install_console()  # lint warnings and messages quote scenario values: masked like a run's
    try:
        return handler(args)
    except WorkloadError as exc:
        print(f"workload: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("workload: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
