"""The import boundary: only the engine modules (and the demo target's own process) may import
locust or gevent.  Everything else — scenario loading, plans, telemetry, gates, reports, lint, the
CLI — must stay importable without them, so it can be unit-tested and used by `workload report`
without monkey-patching the interpreter.  Each module is imported in a fresh interpreter, because
one import of locust anywhere in the test process would hide the next offender.  All of them are
imported in one fresh interpreter first (one start-up instead of fifty); only when that fails is
each imported alone, to name the offenders."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import workload

ROOT = Path(__file__).resolve().parent.parent

# The engine: the locustfile and the modules of the engine package run inside Locust and may import
# it (and so gevent).  The package's own __init__ stays free: `workload cluster-key` imports from it.
ENGINE_PACKAGE = "workload.engine"
ENGINE_ROOTS = {"workload.main"}
# The demo target is its own process on gevent's server; it never imports locust.
GEVENT_ONLY = {"workload.demo.app", "workload.demo.server", "workload.demo.h2server", "workload.demo.queueing"}
# Running these starts a program instead of defining one.
SKIP = {"workload.demo.__main__", "workload.telemetry.sampler_process"}


def _modules() -> list[str]:
    names = [info.name for info in pkgutil.walk_packages(workload.__path__, "workload.")]
    return sorted(n for n in names if not _is_engine(n) and n not in SKIP)


def _is_engine(name: str) -> bool:
    return name in ENGINE_ROOTS or name.startswith(ENGINE_PACKAGE + ".")


def _imports(modules: list[str]) -> set[str]:
    code = (f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}]; "
            "print(' '.join(m for m in ('locust', 'gevent') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(done.stdout.split())


def _offenders(modules: list[str]) -> dict[str, set[str]]:
    found = {m: _imports([m]) - ({"gevent"} if m in GEVENT_ONLY else set()) for m in modules}
    return {m: names for m, names in found.items() if names}


def test_locust_free_modules_do_not_import_locust_or_gevent() -> None:
    free = [m for m in _modules() if m not in GEVENT_ONLY]
    if _imports(free):
        assert _offenders(free) == {}


def test_the_demo_target_does_not_import_locust() -> None:
    assert "locust" not in _imports(sorted(GEVENT_ONLY))


def test_the_engine_list_names_real_modules() -> None:
    names = {info.name for info in pkgutil.walk_packages(workload.__path__, "workload.")}
    assert names >= ENGINE_ROOTS | {ENGINE_PACKAGE} | GEVENT_ONLY | SKIP
