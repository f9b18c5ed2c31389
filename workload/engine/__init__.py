"""Stage 3, the engine: the plan run inside Locust.  The ONLY package that imports locust or gevent.

* `user` compiles a scenario's plan into Locust user classes; `engines` is the seam between a
  policy and its HTTP client (`policy.engine`): `transport` puts the policies on the wire with
  requests/urllib3, `fast` with geventhttpclient; `shapes` is the load shape (stages);
  `selection` picks the scenario and policy that run next; `controller` runs them and
  `recorder` writes their results; `runclock` times a run; `webui` adds the web UI's fields
  and endpoints; `distributed`, `clusterjoin` and `clusterkey` are master/worker runs.

May import: every locust-free package (`scenario`, `plan`, `telemetry`, `results`, `demo.launcher`),
`workload.errors`, `workload.redaction`, `workload.scrub`.  Imported by `workload.main` (the
locustfile).  This file imports nothing: `workload cluster-key` imports `engine.clusterkey`, and
`workload capacity` imports `engine.shapes`' pure parts, without locust.
"""
