"""`workload schema`: the JSON Schema accepts what the loader accepts and flags what editors should."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from workload.cli import main
from workload.scenario.editor_schema import FIELD_DOCS, scenario_schema
from workload.scenario.loader import load_text

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)
BASE = {"target": "demo", "endpoints": [{"path": "/"}]}  # as tests/test_scenario_format_doc.py lays them


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = scenario_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(validator: jsonschema.Draft202012Validator, document: object) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_scenario_matches_the_schema(validator, path: Path) -> None:
    assert _errors(validator, yaml.safe_load(path.read_text(encoding="utf-8"))) == []


def _doc_examples() -> list[dict]:
    examples = []
    for text in BLOCK.findall((ROOT / "docs" / "scenario-format.md").read_text(encoding="utf-8")):
        snippet = yaml.safe_load(text)
        document = {**BASE, **snippet}
        if "flows" in snippet and "endpoints" not in snippet:
            del document["endpoints"]
        examples.append(document)
    return examples


def test_every_docs_example_matches_the_schema(validator) -> None:
    examples = _doc_examples()
    assert len(examples) >= 15
    assert {i: _errors(validator, doc) for i, doc in enumerate(examples) if _errors(validator, doc)} == {}


@pytest.mark.parametrize(("document", "where", "message"), [
    ({"target": "demo", "policies": {"p": {"type": "shared", "pool_maxsise": 3}}},
     "policies.p", "Additional properties are not allowed ('pool_maxsise' was unexpected)"),
    ({"target": "demo", "policies": {"p": {"type": "keepalive"}}},
     "policies.p.type", "'keepalive' is not valid under any of the given schemas"),
    ({"target": "demo", "load": {"users": "many"}}, "load.users", "'many' is not valid under any of the given"),
    ({"endpoints": []}, "", "'target' is a required property"),
])
def test_the_schema_flags_what_the_loader_rejects(validator, document, where, message) -> None:
    errors = _errors(validator, document)
    assert any(e.startswith(f"{where}: {message}") for e in errors), errors
    with pytest.raises(Exception):  # noqa: B017 - the loader's own error text is tested elsewhere
        load_text(yaml.safe_dump(document))


@pytest.mark.parametrize("text", [
    "target: http://127.0.0.1:8080\nendpoints: [{path: /, method: get}]\npolicies: {close: }\n",
    "target: {host: demo, verify: 'true'}\nendpoints: [{path: /}]\nload: {users: '${USERS:-3}', duration: 2s}\n",
])
def test_shorthands_the_loader_expands_are_valid(validator, text: str, monkeypatch) -> None:
    monkeypatch.delenv("USERS", raising=False)
    load_text(text)  # the loader accepts it ...
    assert _errors(validator, yaml.safe_load(text)) == []  # ... so the editor must not flag it


def test_field_docs_name_real_keys_and_reach_the_schema() -> None:
    schema = scenario_schema()
    for key, text in FIELD_DOCS.items():
        model, field = key.split(".")
        owner = schema if model == "Scenario" else schema["$defs"][model]
        owner = owner.get("anyOf", [owner])[-1]  # Target is "a URL or a mapping"
        assert owner["properties"][field]["description"] == text, key


def test_workload_schema_prints_and_writes_it(tmp_path: Path, capsys) -> None:
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["$schema"].endswith("2020-12/schema") and "policies" in printed["properties"]
    out = tmp_path / "scenario.schema.json"
    assert main(["schema", "-o", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8")) == printed


def test_the_shipped_schema_file_is_current() -> None:
    shipped = json.loads((ROOT / "docs" / "scenario.schema.json").read_text(encoding="utf-8"))
    assert shipped == scenario_schema(), "run: workload schema -o docs/scenario.schema.json"
