"""Editor schema: the scenario format as JSON Schema, for YAML language servers (`workload schema`).

Generated from the models in `workload.scenario.schema` (so a new key appears by itself), then
adjusted for what the loader accepts before the models see a value:

* `${NAME}` / `${NAME:-default}` anywhere a number or a boolean goes (the loader substitutes
  environment variables first, and pydantic reads "10" as 10);
* the shorthands the models expand in `mode="before"` validators: `target: http://...`,
  lower-case methods, an empty policy (`close:` or `close: {}`), `verify: "true"` as text.

Descriptions come from the models' docstrings plus `FIELD_DOCS` for the keys people type most;
`tests/scenario/test_editor_schema.py` checks every shipped scenario and every example in
docs/scenario-format.md against the result, and that every `FIELD_DOCS` entry names a real key.
"""

from __future__ import annotations

import json
from typing import Any

from workload.scenario.schema import POLICY_TYPES, Scenario

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://workload.invalid/scenario.schema.json"  # a name, never fetched
ENV_REFERENCE = r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:?-[^}]*)?\}$"
SCALAR_TYPES = ("integer", "number", "boolean")

FIELD_DOCS: dict[str, str] = {
    "Scenario.name": "Run name used in result folders and reports (letters, digits, _ . -).",
    "Scenario.target": "Where requests go: a URL (`target: http://127.0.0.1:8080`), `demo`, or a mapping.",
    "Scenario.variables": "Values for `{{ }}` templates in paths, headers and bodies.",
    "Scenario.endpoints": "Requests picked at random by weight, one per task.",
    "Scenario.flows": "Ordered request sequences, picked by weight; steps can capture values for later steps.",
    "Scenario.policies": "Connection policies by name; `workload compare` runs each once. Types: "
                         + ", ".join(POLICY_TYPES) + ".",
    "Scenario.load": "How much load: users and duration, stages, or a request rate.",
    "Scenario.thresholds": "Pass/fail limits for CI; a breached limit exits 3.",
    "Scenario.wait": "Think time between one user's tasks (constant, between, pacing or throughput).",
    "Target.host": "Base URL of the target (http:// or https://), or `demo` for the embedded demo target.",
    "Target.hosts": "Named extra hosts; a request picks one with `host: NAME`. Only declared hosts get traffic.",
    "Target.verify": "TLS verification: true, false, or a CA bundle path.",
    "Policy.type": "shared (keep-alive pool), close (Connection: close), fresh (new session per request), "
                   "recycle (drop connections every N requests or T seconds).",
    "Policy.scope": "user: one pool per simulated user; process: one pool shared by all users of a process.",
    "Policy.pool_connections": "Hosts kept in the pool (urllib3 PoolManager size).",
    "Policy.pool_maxsize": "Connections kept per host.",
    "Policy.pool_block": "Wait for a free connection instead of opening and discarding an extra one.",
    "Policy.timeout": "Seconds, or {connect, read}.",
    "Policy.retries": "Retries per request (0: none), or {total, backoff_factor, status_forcelist}.",
    "Request.path": "Path (and query) below the host; `{{ }}` templates allowed.",
    "Request.expect": "What a response must show to count as a success (status, json, contains, headers).",
    "Request.capture": "Values taken from the response for later steps: {name: {json|header|cookie|regex}}.",
    "Load.users": "Simulated users (closed model).",
    "Load.duration": "Run length, e.g. 30s, 2m, 1h30m.",
    "Load.stages": "Users over time: each stage reaches `users` by its end.",
}

EXAMPLE = {
    "name": "my-service",
    "target": "http://127.0.0.1:8080",
    "endpoints": [{"path": "/health", "expect": {"status": 200}}],
    "policies": {"shared": {}, "close": {}, "fresh": {}},
    "load": {"users": 10, "duration": "30s"},
}


def scenario_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a scenario file."""
    schema = Scenario.model_json_schema(by_alias=True)
    defs = schema.setdefault("$defs", {})
    _describe(schema, defs)
    _accept_shorthands(defs)
    _accept_env_references(schema)
    return {"$schema": SCHEMA_DIALECT, "$id": SCHEMA_ID, "title": "workload scenario",
            "description": "A workload scenario: target, requests, connection policies, load and thresholds.",
            "examples": [EXAMPLE], **{k: v for k, v in schema.items() if k not in ("title", "description")}}


def render() -> str:
    return json.dumps(scenario_schema(), indent=2, sort_keys=False) + "\n"


def _describe(schema: dict[str, Any], defs: dict[str, Any]) -> None:
    for key, text in FIELD_DOCS.items():
        model, field = key.split(".")
        owner = schema if model == "Scenario" else defs[model]
        owner["properties"][field]["description"] = text


def _accept_shorthands(defs: dict[str, Any]) -> None:
    defs["Target"] = {"anyOf": [{"type": "string", "description": "Base URL, or `demo`."}, defs["Target"]]}
    defs["Policy"]["type"] = ["object", "null"]  # `close:` alone is a policy of type close
    policy = defs["Policy"]["properties"]
    shorthands = (("timeout", {"type": "number", "exclusiveMinimum": 0}),
                  ("retries", {"type": "integer", "minimum": 0}))
    for key, scalar in shorthands:
        ref = {k: policy[key].pop(k) for k in ("$ref",) if k in policy[key]}
        policy[key]["anyOf"] = [scalar, ref]  # `timeout: 5`, `retries: 3`
    for model in defs.values():
        method = model.get("properties", {}).get("method")
        if method and "enum" in method:
            method["enum"] = method["enum"] + [m.lower() for m in method["enum"]]
        verify = model.get("properties", {}).get("verify")
        if verify is not None:
            verify.pop("anyOf", None)
            verify["type"] = ["boolean", "string"]


def _accept_env_references(node: Any) -> None:
    """Every number/integer/boolean may also be written as `${NAME}` or `${NAME:-default}`."""
    if isinstance(node, dict):
        for value in node.values():
            _accept_env_references(value)
        kind = node.get("type")
        if kind in SCALAR_TYPES:
            scalar = {k: node.pop(k) for k in list(node) if k not in ("title", "description", "default")}
            node["anyOf"] = [scalar, {"type": "string", "pattern": ENV_REFERENCE}]
    elif isinstance(node, list):
        for item in node:
            _accept_env_references(item)
