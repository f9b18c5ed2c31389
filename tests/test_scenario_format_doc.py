"""docs/scenario-format.md stays true: every YAML example in it validates and compiles.

Each ```yaml block is laid over a minimal scenario (`target: demo` and one endpoint, where the
block has none of its own), written next to a copy of scenarios/users.csv, loaded like
`workload validate` loads a file, and compiled into a Locust user class for every policy.
No traffic is sent.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import trustme
import yaml

from workload.engine.user import compile_user
from workload.scenario import targets
from workload.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "scenario-format.md"
BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)
BASE = {"target": "demo", "endpoints": [{"path": "/"}]}


def _blocks() -> list[str]:
    return BLOCK.findall(DOC.read_text(encoding="utf-8"))


def test_the_doc_has_yaml_examples() -> None:
    assert len(_blocks()) >= 15


def _client_certificate(where: Path) -> None:
    """The files the doc's `cert:` example names, as a real certificate and key."""
    issued = trustme.CA().issue_cert("client@example.test")
    issued.cert_chain_pems[0].write_to_path(str(where / "client.pem"))
    issued.private_key_pem.write_to_path(str(where / "client-key.pem"))


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_yaml_example_validates_and_compiles(index: int, tmp_path: Path, demo_target, monkeypatch) -> None:
    for name in ("API_KEY", "TARGET_URL", "USERS"):
        monkeypatch.delenv(name, raising=False)  # the examples' ${NAME:-default} take their defaults
    text = _blocks()[index]
    snippet = yaml.safe_load(text)
    assert isinstance(snippet, dict), f"example {index} is not a mapping:\n{text}"
    document = {**BASE, **snippet}
    if "flows" in snippet and "endpoints" not in snippet:
        del document["endpoints"]
    shutil.copy(ROOT / "scenarios" / "users.csv", tmp_path / "users.csv")
    _client_certificate(tmp_path)
    file = tmp_path / f"example-{index}.yaml"
    file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")

    loaded = load_scenario(file)  # raises ScenarioError with every problem

    target = targets.resolve(loaded, demo_target if targets.needs_demo(loaded) else None)
    for policy in loaded.policy_names():
        compile_user(loaded, policy, target)
