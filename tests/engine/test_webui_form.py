"""The start form's policy choices: each listed scenario's policies, its default first, and the
union the <select> carries (real scenario files)."""

from __future__ import annotations

from pathlib import Path

from workload.engine.webui_form import policy_choices, policy_map, scenario_policies

ONE = "target: http://127.0.0.1:9\nendpoints: [{path: /}]\npolicies: {shared: {}, close: {}}\n"
TWO = "target: http://127.0.0.1:9\nendpoints: [{path: /}]\ndefault_policy: fresh\npolicies: {close: {}, fresh: {}}\n"


def test_each_scenario_lists_its_policies_default_first(tmp_path: Path):
    (tmp_path / "one.yaml").write_text(ONE)
    (tmp_path / "two.yaml").write_text(TWO)
    (tmp_path / "bad.yaml").write_text("target: [\n")
    found = policy_map(["one.yaml", str(tmp_path / "two.yaml"), "bad.yaml", "missing.yaml"], tmp_path)
    assert found == {"one.yaml": ["shared", "close"], str(tmp_path / "two.yaml"): ["fresh", "close"],
                     "bad.yaml": [], "missing.yaml": []}  # [] = not loadable: the page offers every name
    assert policy_choices(found, str(tmp_path / "two.yaml")) == ["fresh", "close", "shared"]


def test_policies_follow_an_edited_file(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text(ONE)
    assert scenario_policies(str(path)) == ["shared", "close"]
    path.write_text(ONE.replace("close: {}", "close: {}, recycle: {every_requests: 5}"))
    assert scenario_policies(str(path)) == ["shared", "close", "recycle"]
