"""Stage 1, the scenario: a YAML file becomes a validated, frozen `Scenario` (`loader.load_scenario`).

* `textfile` reads the file within limits; `compose` and `source` parse YAML keeping line numbers;
* `schema` holds the frozen pydantic models, `messages` turns their errors into located messages;
* `loader` runs the cross-field checks (`targets`, `urls`, `tls_files`, `credentials`,
  `request_checks`, `template_checks`); `templating` (with `template_sandbox`, `template_rules`) is
  the scenario's `{{ }}` language; `timespan` parses durations.

May import: `workload.errors`, `workload.redaction` and itself.  Never locust or gevent.
"""
