"""The `workload` verbs that run Locust children: `compare` (one child per policy, then a report)
and `capacity` (a step shape per policy, then the knee).  `workload.cli` parses and dispatches.

May import every locust-free package, and `workload.engine.shapes`' pure parts; the load itself
runs in `locust -f workload/main.py` child processes, never in this process.  Never locust or gevent.
"""
