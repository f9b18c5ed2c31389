"""`workload check`: valid scenarios that will quietly measure the wrong thing, each with a fix.

* `checker` runs the rules over a loaded scenario and prints or logs the warnings;
* `rules` holds the rules, one function per thing that can go wrong.

May import: `workload.scenario`, `workload.plan`, `workload.telemetry`, `workload.errors`.  Never
locust or gevent.  The checker's entry points are re-exported here (`from workload import lint`).
"""

from workload.lint.checker import (
    lint,
    lint_file,
    log_warnings,
    planned_load,
    print_warnings,
    render,
    run_check,
    source_of,
)

__all__ = ["lint", "lint_file", "log_warnings", "planned_load", "print_warnings", "render", "run_check",
           "source_of"]
