"""Benchmark: the engines against each other and against hand-written Locust users, in one run.

Against Debian's nginx on loopback (started here, one worker; HTTP and HTTPS with a throwaway
CA), from this one generator process, `--users` greenlets per kind sending GET / with no wait.
Kinds alternate within every round so drift on a busy machine hits all alike; each figure is
the median over rounds of the per-round ratio.  Two figures per ratio: wall-clock throughput
(req/s), and requests per CPU second of this generator process (`time.process_time`), which
a machine shared with other work disturbs far less; the socket sampler runs in its own
process, whose CPU the second figure leaves out.  Targets (issue 12):

  fast shared / requests shared                            >= 4
  fast shared / hand-written FastHttpUser                   >= 0.9
  fast close over HTTPS / hand-written FastHttpUser (close,
      one shared SSL context)                               >= 0.9
  fast telemetry on / off (counting pools + socket sampler) >= 0.97, for shared and close

    python benchmarks/engines.py [--seconds 1.5] [--rounds 5] [--users 10]

Traffic goes only to 127.0.0.1; every loop is bounded by time; nginx is stopped at the end.
"""

import locust  # noqa: F401  (first: it monkey-patches)
from locust import FastHttpUser, constant, task
from locust.env import Environment

import argparse
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gevent

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure this checkout, not an installed copy
import trustme  # noqa: E402
from geventhttpclient.client import HTTPClientPool  # noqa: E402

from workload.engine import fast as fast_engine  # noqa: E402
from workload.engine.recorder import target_endpoints  # noqa: E402
from workload.engine.user import compile_user  # noqa: E402
from workload.scenario import targets  # noqa: E402
from workload.scenario.loader import load_text  # noqa: E402
from workload.telemetry import SocketSampler  # noqa: E402

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CONF = """
daemon off; master_process off; worker_processes 1; pid {dir}/nginx.pid; error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off; keepalive_requests 1000000;
    client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
    server {{ listen 127.0.0.1:{http}; location / {{ return 200 "ok\\n"; }} }}
    server {{ listen 127.0.0.1:{https} ssl; ssl_certificate {dir}/cert.pem; ssl_certificate_key {dir}/key.pem;
             location / {{ return 200 "ok\\n"; }} }}
}}
"""
SCENARIO = """
name: engines-bench
target: {host: "%(url)s", verify: "%(ca)s"}
endpoints: [{name: root, path: /}]
policies:
  shared: {engine: %(engine)s}
  close: {engine: %(engine)s}
"""
Kind = tuple[list[Any], Any]  # users, one task (called with a user)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def nginx() -> Iterator[dict[str, str]]:
    work = Path(tempfile.mkdtemp(prefix="engines-bench-"))
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(work / "ca.pem"))
    issued = ca.issue_cert("127.0.0.1")
    issued.cert_chain_pems[0].write_to_path(str(work / "cert.pem"))
    issued.private_key_pem.write_to_path(str(work / "key.pem"))
    http, https = free_port(), free_port()
    (work / "nginx.conf").write_text(CONF.format(dir=work, http=http, https=https))
    proc = subprocess.Popen([NGINX, "-c", str(work / "nginx.conf"), "-p", str(work)], stderr=subprocess.PIPE)
    urls = {"http": f"http://127.0.0.1:{http}", "https": f"https://127.0.0.1:{https}", "ca": str(work / "ca.pem")}
    try:
        _wait_up(urls["http"], proc)
        yield urls
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def _wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"nginx exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("nginx did not start")


def compiled(urls: dict[str, str], scheme: str, engine: str, policy: str, users: int) -> Kind:
    loaded = load_text(SCENARIO % {"url": urls[scheme], "ca": urls["ca"], "engine": engine}, "bench.yaml")
    cls = compile_user(loaded, policy, targets.resolve(loaded, None))
    env = Environment(user_classes=[cls])
    env.create_local_runner()
    made = [cls(env) for _ in range(users)]
    return made, made[0].tasks[0]


def handwritten(urls: dict[str, str], scheme: str, close: bool, users: int) -> Kind:
    context = ssl.create_default_context(cafile=urls["ca"])  # one context, verified, like the engine's
    headers = {"Connection": "close"} if close else None

    class HandFast(FastHttpUser):
        host = urls[scheme]
        wait_time = constant(0)
        insecure = False
        ssl_context_factory = staticmethod(lambda **_kw: context)
        network_timeout = connection_timeout = 10.0

        @task
        def root(self) -> None:
            self.client.get("/", name="root", headers=headers)

    env = Environment(user_classes=[HandFast])
    env.create_local_runner()
    return [HandFast(env) for _ in range(users)], HandFast.root


Rate = tuple[float, float]  # requests per wall second, requests per CPU second of this process


def rate(kind: Kind, seconds: float) -> Rate:
    users, step = kind
    counts = [0] * len(users)
    deadline = time.perf_counter() + seconds

    def drive(index: int) -> None:
        while time.perf_counter() < deadline:
            step(users[index])
            counts[index] += 1

    start, cpu = time.perf_counter(), time.process_time()
    gevent.joinall([gevent.spawn(drive, i) for i in range(len(users))], raise_error=True)
    done = sum(counts)
    return done / (time.perf_counter() - start), done / max(time.process_time() - cpu, 1e-6)


def failures(kind: Kind) -> int:
    return int(kind[0][0].environment.stats.total.num_failures)


def medians(rates: list[Rate]) -> Rate:
    return statistics.median(r[0] for r in rates), statistics.median(r[1] for r in rates)


def ratios(kinds: dict[str, Kind], pairs: list[tuple[str, str]], seconds: float, rounds: int) -> dict[str, Any]:
    for kind in kinds.values():
        rate(kind, 0.3)  # warm-up: connections, code paths
    rates: dict[str, list[Rate]] = {name: [] for name in kinds}
    per_round: dict[tuple[str, str], list[Rate]] = {pair: [] for pair in pairs}
    names = list(kinds)
    for index in range(rounds):
        for name in names[index % len(names):] + names[:index % len(names)]:  # rotate who goes first
            rates[name].append(rate(kinds[name], seconds))
        for a, b in pairs:
            (wall_a, cpu_a), (wall_b, cpu_b) = rates[a][-1], rates[b][-1]
            per_round[(a, b)].append((wall_a / wall_b, cpu_a / cpu_b))
    bad = {name: failures(kind) for name, kind in kinds.items() if failures(kind)}
    assert not bad, f"requests failed, figures meaningless: {bad}"
    return {"rates": {n: medians(r) for n, r in rates.items()},
            "ratios": {p: medians(r) for p, r in per_round.items()}}


@contextmanager
def telemetry(on: bool, kind: Kind, urls: list[str]) -> Iterator[None]:
    """Off: geventhttpclient's stock pools (no counting) and no socket sampler."""
    fast_engine.PolicyClientPool.get_client = COUNTING_GET_CLIENT if on else HTTPClientPool.get_client  # type: ignore[method-assign]
    for user in kind[0]:
        user.client.client.clientpool.close()  # new clients take the pool classes now in force
    sampler = SocketSampler(target_endpoints(urls)) if on else None
    if sampler is not None:
        sampler.start()
    try:
        yield
    finally:
        if sampler is not None:
            sampler.stop()
        fast_engine.PolicyClientPool.get_client = COUNTING_GET_CLIENT  # type: ignore[method-assign]


COUNTING_GET_CLIENT = fast_engine.PolicyClientPool.get_client


def telemetry_ratio(urls: dict[str, str], policy: str, users: int, seconds: float, rounds: int) -> dict[str, Any]:
    kind = compiled(urls, "http", "fast", policy, users)
    rate(kind, 0.3)
    rates: dict[str, list[Rate]] = {"on": [], "off": []}
    per_round: list[Rate] = []
    for index in range(rounds):
        for on in ((False, True) if index % 2 == 0 else (True, False)):
            with telemetry(on, kind, [urls["http"]]):
                rates["on" if on else "off"].append(rate(kind, seconds))
        (wall_on, cpu_on), (wall_off, cpu_off) = rates["on"][-1], rates["off"][-1]
        per_round.append((wall_on / wall_off, cpu_on / cpu_off))
    assert failures(kind) == 0
    return {"rates": {k: medians(v) for k, v in rates.items()}, "ratio": medians(per_round)}


def verdict(value: Rate, target: float) -> str:
    wall, cpu = value
    met = {True: "met", False: "NOT met"}
    return (f"{wall:.2f} by throughput, {cpu:.2f} per CPU second  "
            f"[target >= {target:g}: {met[wall >= target]} / {met[cpu >= target]}]")


def show(rates: Rate) -> str:
    return f"{rates[0]:,.0f} req/s ({rates[1]:,.0f} per CPU s)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="per kind and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--users", type=int, default=10, help="greenlets per kind")
    args = parser.parse_args()
    with nginx() as urls:
        shared = ratios({"requests": compiled(urls, "http", "requests", "shared", args.users),
                         "fast": compiled(urls, "http", "fast", "shared", args.users),
                         "hand": handwritten(urls, "http", False, args.users)},
                        [("fast", "requests"), ("fast", "hand")], args.seconds, args.rounds)
        r = shared["rates"]
        print(f"shared, HTTP: requests {show(r['requests'])}; fast {show(r['fast'])}; "
              f"hand-written FastHttpUser {show(r['hand'])}")
        print(f"  fast / requests: {verdict(shared['ratios'][('fast', 'requests')], 4)}")
        print(f"  fast / hand-written FastHttpUser: {verdict(shared['ratios'][('fast', 'hand')], 0.9)}")
        tls = ratios({"fast": compiled(urls, "https", "fast", "close", args.users),
                      "hand": handwritten(urls, "https", True, args.users)},
                     [("fast", "hand")], args.seconds, args.rounds)
        print(f"close, HTTPS: fast {show(tls['rates']['fast'])}; hand-written FastHttpUser, shared SSL context, "
              f"{show(tls['rates']['hand'])}")
        print(f"  fast / hand-written: {verdict(tls['ratios'][('fast', 'hand')], 0.9)}")
        for policy in ("shared", "close"):
            tel = telemetry_ratio(urls, policy, args.users, args.seconds, args.rounds)
            print(f"fast {policy}, HTTP: telemetry on {show(tel['rates']['on'])}, off {show(tel['rates']['off'])}")
            print(f"  on / off: {verdict(tel['ratio'], 0.97)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
