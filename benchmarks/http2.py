"""Benchmark: engine httpx over HTTP/2 against HTTP/1.1, 50 users, against nginx (issue 12).

Debian's nginx 1.22 on loopback (started here, one worker, `listen ... ssl http2`, a throwaway
CA), this one generator process, `--users` greenlets sending GET / with no wait, through the
compiled policies (the real engine: Locust's HttpSession on an httpx transport).  Kinds alternate
within every round so drift on a busy machine hits all alike; figures are medians over rounds
of requests/s (wall clock) and of requests per CPU second of this process.  Target:

  httpx h2 shared (one pool for the process: every user a stream on ONE connection)
      >= 2 x httpx HTTP/1.1 shared (one pool for the process, pool_maxsize = users: no waits)

Also shown: the per-user pools (one connection per user on both protocols), the HTTP/1.1
process pool at its default size (10 connections for 50 users: requests wait), and ONE stock
`httpx.Client` shared by all greenlets (no engine), whose HTTP/1.1 pool (keep-alive 20) churns
connections: nginx's accepts per round show it.

    python benchmarks/http2.py [--seconds 2] [--rounds 3] [--users 50]

Traffic goes only to 127.0.0.1; every loop is bounded by time; nginx is stopped at the end.
"""

import locust  # noqa: F401  (first: it monkey-patches)
from locust.env import Environment

import argparse
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

from workload.engine.user import compile_user  # noqa: E402
from workload.scenario import targets  # noqa: E402
from workload.scenario.loader import load_text  # noqa: E402
from workload.telemetry.connections import STATS  # noqa: E402

NGINX = "/usr/sbin/nginx"
CONF = """
daemon off; master_process off; worker_processes 1;
pid {dir}/nginx.pid; error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off; keepalive_requests 1000000; http2_max_requests 1000000;
    client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
    server {{ listen 127.0.0.1:{port}; location = /nginx_status {{ stub_status; }} }}
    server {{
        listen 127.0.0.1:{tls_port} ssl http2;
        ssl_certificate {dir}/cert.pem; ssl_certificate_key {dir}/key.pem;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""
SCENARIO = """
name: http2-bench
target: {{host: "{url}", verify: "{ca}"}}
endpoints: [{{name: root, path: /}}]
policies:
  pooled-h2: {{type: shared, scope: process, engine: httpx, http2: true}}
  pooled-h1: {{type: shared, scope: process, engine: httpx, pool_maxsize: {users}}}
  pooled-h1-default: {{type: shared, scope: process, engine: httpx}}
  shared-h2: {{type: shared, engine: httpx, http2: true}}
  shared-h1: {{type: shared, engine: httpx}}
"""
KINDS = ("pooled-h2", "pooled-h1", "pooled-h1-default", "shared-h2", "shared-h1")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def nginx() -> Iterator[tuple[str, str, str]]:
    """(https URL of the h2 listener, CA file, stub_status URL) of a running nginx."""
    with tempfile.TemporaryDirectory(prefix="h2-bench-") as work:
        ca = trustme.CA()
        issued = ca.issue_cert("127.0.0.1")
        issued.cert_chain_pems[0].write_to_path(f"{work}/cert.pem")
        issued.private_key_pem.write_to_path(f"{work}/key.pem")
        ca.cert_pem.write_to_path(f"{work}/ca.pem")
        port, tls_port = free_port(), free_port()
        Path(work, "nginx.conf").write_text(CONF.format(dir=work, port=port, tls_port=tls_port))
        proc = subprocess.Popen([NGINX, "-c", f"{work}/nginx.conf", "-p", work], stderr=subprocess.DEVNULL)
        status = f"http://127.0.0.1:{port}/nginx_status"
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(status, timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.1)
            yield f"https://127.0.0.1:{tls_port}", f"{work}/ca.pem", status
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def accepts(status: str) -> int:
    import re

    with urllib.request.urlopen(status, timeout=5) as answer:
        text = answer.read().decode()
    found = re.search(r"\n\s*(\d+)\s+\d+\s+\d+", text)
    assert found is not None, text
    return int(found.group(1))


def make_users(text: str, policy: str, count: int) -> tuple[list[Any], Environment]:
    loaded = load_text(text, "bench.yaml")
    cls = compile_user(loaded, policy, targets.resolve(loaded, None))
    env = Environment(user_classes=[cls])
    env.create_local_runner()
    return [cls(env) for _ in range(count)], env


class RawUser:
    """A greenlet's share of ONE stock `httpx.Client` (default Limits: keep-alive 20), as measured
    in the issue: its HTTP/1.1 pool churns connections under 50 greenlets."""

    def __init__(self, client: Any, url: str) -> None:
        self.tasks = [lambda user: client.get(url).raise_for_status()]


def raw_users(url: str, ca: str, http2: bool, count: int) -> list[Any]:
    import ssl

    from workload.engine.httpxengine import httpx

    client = httpx.Client(http2=http2, verify=ssl.create_default_context(cafile=ca), trust_env=False)
    return [RawUser(client, url + "/") for _ in range(count)]


def measure(users: list[Any], seconds: float) -> tuple[float, float]:
    """(requests/s, requests per CPU second) of `users` looping for `seconds`."""
    counts = [0] * len(users)
    deadline = time.perf_counter() + seconds

    def loop(index: int, user: Any) -> None:
        step = user.tasks[0]
        while time.perf_counter() < deadline:
            step(user)
            counts[index] += 1

    wall, cpu = time.perf_counter(), time.process_time()
    gevent.joinall([gevent.spawn(loop, i, u) for i, u in enumerate(users)], timeout=seconds + 30, raise_error=True)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return sum(counts) / wall, sum(counts) / cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per round and kind")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=50)
    args = parser.parse_args()
    with nginx() as (url, ca, status):
        text = SCENARIO.format(url=url, ca=ca, users=args.users)
        prepared = {kind: make_users(text, kind, args.users) for kind in KINDS}
        raw = {"stock-client-h2": raw_users(url, ca, True, args.users),
               "stock-client-h1": raw_users(url, ca, False, args.users)}
        groups = {**{kind: users for kind, (users, _env) in prepared.items()}, **raw}
        kinds = tuple(groups)
        rates: dict[str, list[tuple[float, float]]] = {kind: [] for kind in kinds}
        connects: dict[str, int] = {}
        for kind in kinds:
            measure(groups[kind], 0.3)  # warm-up: connections open, TLS done
        for index in range(args.rounds):
            for kind in kinds if index % 2 == 0 else tuple(reversed(kinds)):
                STATS.reset()
                before = accepts(status)
                rates[kind].append(measure(groups[kind], args.seconds))
                connects[kind] = accepts(status) - before - 1  # the "before" status request is one
        for kind, (_users, env) in prepared.items():
            assert env.stats.total.num_failures == 0, f"{kind}: requests failed, figures meaningless"
    medians = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for k, v in rates.items()}
    for kind in medians:
        wall, cpu = medians[kind]
        print(f"{kind:18} {wall:8,.0f} req/s  {cpu:8,.0f} req/CPU-s  (nginx accepts in the last round: "
              f"{connects[kind]})")
    for name, slot in (("wall clock", 0), ("per CPU second", 1)):
        ratio = medians["pooled-h2"][slot] / medians["pooled-h1"][slot]
        verdict = "met" if ratio >= 2 else "NOT met"
        print(f"h2 shared / HTTP/1.1 shared ({name}): {ratio:.2f}  [target >= 2: {verdict}]")
    ratio = medians["pooled-h2"][0] / medians["pooled-h1-default"][0]
    print(f"h2 shared / HTTP/1.1 shared at pool_maxsize 10 (wall clock): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
