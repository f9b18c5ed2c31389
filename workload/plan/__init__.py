"""Stage 2, the plan: a `Scenario` compiled into locust-free steps that the engine runs.

* `steps` the request steps; `checks` expectations and captures; `login` the login flows;
* `pacing` the wait between tasks; `reqrate` the requested rate a scenario asks for.

May import: `workload.scenario`, `workload.errors`, `workload.redaction` and itself.  Never locust
or gevent.
"""
