"""workload: HTTP load generation on Locust where the connection policy is a measured variable.

The packages follow the pipeline, each importing only the ones above it (and never locust or
gevent, except the engine):

  scenario/   YAML file -> validated, frozen Scenario        may import: errors, redaction
  plan/       Scenario -> locust-free compiled plan          + scenario
  telemetry/  what the process, the wire and the kernel saw  errors
  results/    run.json, thresholds and the CI gate           + scenario
  engine/     the plan run in Locust: the ONLY package that imports locust / gevent
                                                              + scenario, plan, telemetry, results, demo.launcher
  report/     run directories -> comparison / capacity report  + telemetry, results
  lint/       `workload check`: valid scenarios that measure the wrong thing  + scenario, plan, telemetry
  commands/   `workload compare`, `workload capacity` (Locust child processes)  anything locust-free
  authoring/  `workload new` (a commented template), `workload import-har` (a browser recording
              converted into a scenario)                     + scenario
  demo/       the embedded demo target, its own (gevent) process

At the top: `main` (the locustfile, `locust -f workload/main.py`; imports locust first), `cli`
(`workload ...`, dispatches to the commands), `errors`, `redaction` and `scrub` (secret masking),
which every package may import.
"""

__version__ = "0.1.0"
