"""YAML source: parsed once, the same data as PyYAML's safe loader, a line for every key path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from workload.errors import ScenarioError
from workload.scenario.compose import Composer, Loader
from workload.scenario.source import interpolate_env, key_lines, parse

ROOT = Path(__file__).resolve().parents[2]
TEXT = """\
defaults: &d
  pool_maxsize: 4
  retries: {total: 2}
policies:
  shared:
    <<: *d
    pool_maxsize: 8
  list: [a, {b: 1}]
  again: *d
"""


def test_the_c_parser_is_used_where_pyyaml_has_it() -> None:
    assert Loader is (yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader)


def test_every_key_path_has_its_line() -> None:
    source = parse(TEXT, "s.yaml")
    assert source.lines == {
        (): 1, ("defaults",): 1, ("defaults", "pool_maxsize"): 2, ("defaults", "retries"): 3,
        ("defaults", "retries", "total"): 3, ("policies",): 4, ("policies", "shared"): 5,
        # merged keys are where they are written (the anchor); an own key overrides
        ("policies", "shared", "pool_maxsize"): 7, ("policies", "shared", "retries"): 3,
        ("policies", "shared", "retries", "total"): 3,
        ("policies", "list"): 8, ("policies", "list", 0): 8, ("policies", "list", 1): 8,
        ("policies", "list", 1, "b"): 8, ("policies", "again"): 9, ("policies", "again", "pool_maxsize"): 2,
        ("policies", "again", "retries"): 3, ("policies", "again", "retries", "total"): 3}


@pytest.mark.parametrize("loader", [yaml.SafeLoader, Loader], ids=["python", "default"])
def test_the_data_is_what_the_safe_loader_builds(loader: type[yaml.SafeLoader]) -> None:
    texts = [TEXT] + [p.read_text(encoding="utf-8") for p in sorted((ROOT / "scenarios").glob("*.yaml"))]
    for text in texts:
        parser = loader(text)
        try:
            data = parser.construct_document(Composer(parser, "s.yaml").compose())
        finally:
            parser.dispose()
        assert data == yaml.safe_load(text)


@pytest.mark.parametrize("loader", [yaml.SafeLoader, Loader], ids=["python", "default"])
def test_limits_hold_with_either_parser(loader: type[yaml.SafeLoader]) -> None:
    def compose(text: str, **limits: int) -> None:
        parser = loader(text)
        try:
            Composer(parser, "s.yaml", **limits).compose()
        finally:
            parser.dispose()

    compose("a: [[1]]", max_depth=3)
    with pytest.raises(ScenarioError, match="nested more than 3 levels deep"):
        compose("a: [[[1]]]", max_depth=3)
    compose("a: &a [1, 2]\nb: [*a, *a]", max_alias_nodes=6)
    with pytest.raises(ScenarioError, match="aliases expand to more than 5 values"):
        compose("a: &a [1, 2]\nb: [*a, *a]", max_alias_nodes=5)
    with pytest.raises(ScenarioError, match="duplicate key 'a'"):
        compose("a: 1\nb: 2\na: 3\n")
    with pytest.raises(ScenarioError, match="is inside the value it names"):
        compose("a: &a [*a]\n")


def test_key_lines_of_a_scalar_document() -> None:
    node = yaml.compose("just text", Loader=yaml.SafeLoader)
    assert key_lines(node) == {(): 1}


def test_env_text_is_kept_for_messages() -> None:
    source, problems = interpolate_env(parse("a: ${WL_T_KEY}\nb: x-${WL_T_MISSING:-d}\nc: plain\n", "s.yaml"),
                                       {"WL_T_KEY": "secret"})
    assert problems == []
    assert source.data == {"a": "secret", "b": "x-d", "c": "plain"}
    assert source.shown(("a",), "secret") == "the value of ${WL_T_KEY}"
    assert source.shown(("b",), "x-d") == "the value of 'x-${WL_T_MISSING:-d}'"
    assert source.shown(("c",), "plain") == "'plain'"
