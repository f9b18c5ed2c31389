"""Authoring: starting a scenario file — `workload new` (a commented template) and
`workload import-har` (a browser recording converted).  Locust-free; imports scenario and errors."""
