"""Stage 5, the results: run.json (the contract between a run and everything after it) and the gates.

* `paths` where a run's files go; `verdict` complete/incomplete and exit codes of a run;
* `faults` classifies failures by cause; `thresholds` evaluates a scenario's thresholds;
* `gate` the CI capacity gate over a run; `ci_outputs` its JUnit XML, Markdown and step summary.

May import: `workload.scenario`, `workload.errors`, `workload.redaction`.  Never locust or gevent.
"""
