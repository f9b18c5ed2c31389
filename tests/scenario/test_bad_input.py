"""A hostile corpus: every bad file is one located message (file, line, key), exit 2, no traceback.

The corpus is generated here (FIFOs, sparse files and /dev/zero cannot be committed).  Each case
is loaded in-process; a few go through `python -m workload.cli validate` as a person would run it.
The main classes also have their exact text asserted.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from workload.errors import Problem, ScenarioError
from workload.scenario.compose import DEFAULT_MAX_ALIAS_NODES, DEFAULT_MAX_DEPTH
from workload.scenario.loader import load_scenario
from workload.scenario.textfile import DEFAULT_MAX_CSV_BYTES, DEFAULT_MAX_SCENARIO_BYTES

ROOT = Path(__file__).resolve().parents[2]
OK = "target: demo\nendpoints: [{path: /}]\n"
BOUND_S = 20.0  # generous: a hang or an exponential blow-up takes minutes, a refusal milliseconds
CSV_SCENARIO = OK + "credentials: {csv: users.csv}\n"


@dataclass(frozen=True)
class Case:
    """A scenario file (plus side files) and its first problem: line, key path, part of `what`."""

    id: str
    text: str | bytes
    line: int | None
    key: str
    what: str
    count: int = 1
    files: tuple[tuple[str, str | bytes], ...] = ()
    env: tuple[tuple[str, str], ...] = ()


def laughs(levels: int = 9) -> str:
    rows = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdefgh", "bcdefghi"[: levels - 1], strict=False):
        rows.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    return "\n".join(rows) + "\n"


def laughs_mappings() -> str:
    rows = ["a: &a {" + ", ".join(f"k{i}: x" for i in range(10)) + "}"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=False):
        rows.append(f"{name}: &{name} {{" + ", ".join(f"k{i}: *{prev}" for i in range(10)) + "}")
    return "\n".join(rows) + "\n"


def alias_depth_chain() -> str:
    """Each anchor nests the previous one 60 levels deeper: shallow as written, deep expanded."""
    rows = ["variables:", "  a0: &a0 " + "[" * 60 + "x" + "]" * 60]
    for i in range(1, 4):
        rows.append(f"  a{i}: &a{i} " + "[" * 60 + f"*a{i - 1}" + "]" * 60)
    return OK + "\n".join(rows) + "\n"


def nested_block_mappings(levels: int) -> str:
    return "".join(f"{'  ' * i}k{i}:\n" for i in range(levels)) + f"{'  ' * levels}x\n"


TYPO = "did you mean"
CASES = [
    # --- bytes and encodings
    Case("utf16", b"\xff\xfe not text\n", 1, "(top level)", "not UTF-8 text: byte 0xff at column 1"),
    Case("latin1_line3", OK.encode() + b"name: caf\xe9\n", 3, "(top level)", "byte 0xe9 at column 10"),
    Case("nul_byte", b"target: demo\x00\nendpoints: [{path: /}]\n", 1, "(top level)", "U+0000 at column 13"),
    Case("nul_line2", b"target: demo\nendpoints: [{path: /\x00}]\n", 2, "(top level)", "U+0000"),
    Case("bell", OK + "name: a\x07b\n", 3, "(top level)", "U+0007 at column 8"),
    Case("escape", OK + "name: \x1b[31mred\n", 3, "(top level)", "U+001B"),
    Case("delete", OK + "name: a\x7f\n", 3, "(top level)", "U+007F"),
    Case("c1_control", OK + "name: a\x9b\n", 3, "(top level)", "U+009B"),
    Case("all_bytes", bytes(range(256)), 2, "(top level)", "not UTF-8 text: byte 0x80"),
    Case("gzip", b"\x1f\x8b\x08\x00\x00\x00\x00\x00", 1, "(top level)", "not UTF-8 text: byte 0x8b"),
    Case("surrogate", OK.encode() + b"name: \xed\xa0\x80\n", 3, "(top level)", "not UTF-8 text: byte 0xed"),
    Case("overlong", b"name: \xc0\xaf\n" + OK.encode(), 1, "(top level)", "not UTF-8 text: byte 0xc0"),
    Case("truncated_utf8", OK.encode() + b"name: \xe2\x82", 3, "(top level)", "not UTF-8 text: byte 0xe2"),
    Case("noncharacter", OK + "name: a\uffff\n", 3, "(top level)", "noncharacter U+FFFF"),
    Case("next_line", OK + "name: a\x85b\n", 3, "(top level)", "control character U+0085 at column 8"),
    Case("line_separator", OK + "name: a\u2028b\n", 3, "(top level)", "line separator U+2028 at column 8"),
    Case("paragraph_separator", OK + "name: a\u2029b\n", 3, "(top level)", "paragraph separator U+2029"),
    # --- depth
    Case("deep_flow_sequence", "a: " + "[" * 3000 + "]" * 3000 + "\n", 1, "a" + "[0]" * (DEFAULT_MAX_DEPTH - 1),
         f"nested more than {DEFAULT_MAX_DEPTH} levels deep"),
    Case("deep_flow_mapping", "a: " + "{a: " * 3000 + "x" + "}" * 3000 + "\n", 1,
         "a" + ".a" * (DEFAULT_MAX_DEPTH - 1), "nested more than"),
    Case("deep_block_sequence", "a:\n  " + "- " * 3000 + "x\n", 2, "a" + "[0]" * (DEFAULT_MAX_DEPTH - 1),
         "nested more than"),
    Case("deep_block_mapping", nested_block_mappings(150), DEFAULT_MAX_DEPTH + 1, "k0." + ".".join(
        f"k{i}" for i in range(1, DEFAULT_MAX_DEPTH)), "nested more than"),
    Case("deep_top_level_list", "[" * 5000, 1, "[0]" * DEFAULT_MAX_DEPTH, "nested more than"),
    Case("deep_through_aliases", alias_depth_chain(), 5, "variables.a1" + "[0]" * 60,
         "nested more than 100 levels deep (through alias '*a0')"),
    # --- aliases
    Case("billion_laughs", laughs(), 4, "d[7]", f"aliases expand to more than {DEFAULT_MAX_ALIAS_NODES:,} values"),
    Case("billion_laughs_mappings", laughs_mappings(), 4, "d.k3", "aliases expand to more than"),
    Case("quadratic_blowup", "a: &a [" + ", ".join(["x"] * 1000) + "]\nb: [" + ", ".join(["*a"] * 1000) + "]\n",
         2, "b[9]", "aliases expand to more than"),
    Case("recursive_sequence", "a: &a [x, *a]\n", 1, "a[1]", "alias '*a' is inside the value it names"),
    Case("recursive_mapping", OK + "variables: &v {self: *v}\n", 3, "variables.self", "is inside the value"),
    Case("recursive_deep", OK + "variables: &v {a: {b: [1, {c: *v}]}}\n", 3, "variables.a.b[1].c",
         "is inside the value"),
    Case("undefined_alias", OK + "name: *nothing\n", 3, "name", "alias '*nothing' names no anchor"),
    Case("merge_non_mapping", OK + "variables: {<<: 5}\n", 3, "(top level)", "invalid YAML: expected a mapping"),
    # --- duplicate keys
    Case("duplicate_endpoints", OK + "endpoints: [{path: /b}]\n", 3, "endpoints",
         "duplicate key 'endpoints': already written on line 2"),
    Case("duplicate_nested", OK + "policies:\n  shared:\n    pool_maxsize: 2\n    pool_maxsize: 3\n", 6,
         "policies.shared.pool_maxsize", "already written on line 5"),
    Case("duplicate_same_line", OK + "variables: {a: 1, a: 2}\n", 3, "variables.a", "already written on line 3"),
    Case("duplicate_in_list_item", "target: demo\nendpoints:\n  - path: /a\n    path: /b\n", 4,
         "endpoints[0].path", "duplicate key 'path'"),
    Case("duplicate_three_times", OK + "name: a\nname: b\nname: c\n", 4, "name", "already written on line 3",
         count=2),
    Case("duplicate_target", OK + "target: http://127.0.0.1:1\n", 3, "target", "duplicate key 'target'"),
    # --- documents and syntax
    Case("two_documents", OK + "---\nname: second\n", 3, "(top level)", "the file holds a second YAML document"),
    Case("tab_indent", "target: demo\nendpoints:\n\t- path: /\n", 3, "(top level)", "invalid YAML"),
    Case("unclosed_quote", OK + "name: 'open\n", 4, "(top level)", "invalid YAML"),
    Case("unclosed_flow", "target: demo\nendpoints: [{path: /}\n", 3, "(top level)", "invalid YAML"),
    Case("python_tag", OK + "name: !!python/object/apply:os.system ['touch pwned']\n", 3, "(top level)",
         "could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'"),
    Case("custom_tag", OK + "name: !secret x\n", 3, "(top level)", "could not determine a constructor"),
    Case("unhashable_key", OK + "? [a, b]\n: 1\n", 3, "(top level)", "found unhashable key"),
    Case("a_list", "- target: demo\n", 1, "(top level)", "the document is a list, not a mapping of keys"),
    Case("a_scalar", "just text\n", 1, "(top level)", "the document is a str, not a mapping of keys"),
    Case("empty", "", 1, "(top level)", "the document is empty"),
    Case("only_comments", "# nothing here\n", 1, "(top level)", "the document is empty"),
    Case("empty_document_marker", "---\n", 1, "(top level)", "the document is empty"),
    # --- environment
    Case("unset_env_in_number", OK + "load:\n  users: ${WL_BAD_UNSET}\n", 4, "load.users",
         "environment variable 'WL_BAD_UNSET' is not set"),
    Case("unset_env_in_target", "target: ${WL_BAD_UNSET}\nendpoints: [{path: /}]\n", 1, "target",
         "environment variable 'WL_BAD_UNSET' is not set"),
    Case("unset_env_in_duration", OK + "load: {duration: '${WL_BAD_UNSET}'}\n", 3, "load.duration",
         "'WL_BAD_UNSET' is not set"),
    Case("two_unset_in_one_value", OK + "name: ${WL_BAD_A}-${WL_BAD_B}\n", 3, "name", "'WL_BAD_A' is not set",
         count=2),
    Case("env_secret_not_echoed", OK + "load: {users: '${WL_BAD_SECRET}'}\n", 3, "load.users",
         "expected a whole number, got the value of ${WL_BAD_SECRET}", env=(("WL_BAD_SECRET", "hunter2"),)),
    Case("env_secret_url_not_echoed", "target: ${WL_BAD_SECRET}\nendpoints: [{path: /}]\n", 1, "target.host",
         "invalid URL ${WL_BAD_SECRET}", env=(("WL_BAD_SECRET", "hunter2"),)),
    # --- rules between keys, located at their key
    Case("no_policies", OK + "policies: {}\n", 3, "policies", "no connection policies"),
    Case("rps_and_wait", OK + "wait: {constant: 1}\nload:\n  rps: 5\n", 5, "load.rps", "load.rps paces the users"),
    Case("negative_duration", OK + "load:\n  duration: -5\n", 4, "load.duration", "the duration must be positive"),
    Case("negative_duration_text", OK + "load:\n  duration: -5s\n", 4, "load.duration", "must be positive"),
    Case("zero_duration", OK + "load:\n  duration: 0\n", 4, "load.duration", "the duration must be positive"),
    Case("nan_duration", OK + "load:\n  duration: .nan\n", 4, "load.duration", "invalid duration nan"),
    Case("inf_duration", OK + "load:\n  duration: .inf\n", 4, "load.duration", "invalid duration inf"),
    Case("bad_duration", OK + "load:\n  duration: soon\n", 4, "load.duration", "invalid duration 'soon'"),
    Case("stage_negative", OK + "load:\n  stages:\n    - {duration: -1, users: 2}\n", 5,
         "load.stages[0].duration", "must be positive"),
    Case("spike_bad", OK + "load:\n  stages:\n    - spike: {users: 2, duration: x}\n", 5,
         "load.stages[0].spike.duration", "invalid duration 'x'"),
    # --- typos at every level
    Case("typo_top", OK + "endpoint: []\n", 3, "endpoint", TYPO),
    Case("typo_target", "target: {host: demo, hots: {}}\nendpoints: [{path: /}]\n", 1, "target.hots", TYPO),
    Case("typo_endpoint", "target: demo\nendpoints:\n  - path: /\n    methd: GET\n", 4, "endpoints[0].methd", TYPO),
    Case("typo_flow_step", "target: demo\nflows:\n  - name: f\n    steps:\n      - {path: /, heders: {}}\n", 5,
         "flows[0].steps[0].heders", TYPO),
    Case("typo_policy", OK + "policies:\n  shared: {pool_maxsise: 4}\n", 4, "policies.shared.pool_maxsise", TYPO),
    Case("typo_load", OK + "load:\n  user: 3\n", 4, "load.user", TYPO),
    Case("typo_thresholds", OK + "thresholds:\n  p95: 3\n", 4, "thresholds.p95", "unknown key 'p95'"),
    Case("typo_wait", OK + "wait:\n  constnt: 1\n", 4, "wait.constnt", TYPO),
    Case("typo_login", OK + "login:\n  basic: {username: a, pasword: b}\n", 4, "login.basic.pasword", TYPO),
    Case("typo_credentials", OK + "credentials:\n  inlin: []\n", 4, "credentials.inlin", TYPO),
    Case("typo_capture", "target: demo\nendpoints:\n  - path: /\n    capture: {id: {jsn: a}}\n", 4,
         "endpoints[0].capture.id.jsn", TYPO),
    Case("typo_expect", "target: demo\nendpoints:\n  - path: /\n    expect: {stauts: 200}\n", 4,
         "endpoints[0].expect.stauts", TYPO),
    Case("typo_retries", OK + "policies:\n  shared:\n    retries: {totl: 2}\n", 5, "policies.shared.retries.totl",
         TYPO),
    Case("typo_in_merged_anchor", OK + "policies:\n  shared: &s\n    pool_maxsise: 3\n  close:\n    <<: *s\n"
         "    type: close\n", 5, "policies.close.pool_maxsise", TYPO, count=2),
    # --- wrong types and values
    Case("users_word", OK + "load: {users: many}\n", 3, "load.users", "expected a whole number, got 'many'"),
    Case("weight_word", "target: demo\nendpoints: [{path: /, weight: lots}]\n", 2, "endpoints[0].weight",
         "expected a whole number"),
    Case("endpoints_text", "target: demo\nendpoints: /x\n", 2, "endpoints", "expected a list"),
    Case("policies_list", OK + "policies: [shared]\n", 3, "policies", "expected a mapping of keys, got list"),
    Case("method_unknown", "target: demo\nendpoints: [{path: /, method: FETCH}]\n", 2, "endpoints[0].method",
         "unknown value 'FETCH'"),
    Case("forcelist_700", OK + "policies: {shared: {retries: {status_forcelist: [700]}}}\n", 3,
         "policies.shared.retries.status_forcelist[0]", "must be at most 599"),
    Case("between_reversed", OK + "wait: {between: [3, 1]}\n", 3, "wait", "the minimum is larger"),
    Case("pool_block_word", OK + "policies: {shared: {pool_block: maybe}}\n", 3, "policies.shared.pool_block",
         "expected true or false, got 'maybe'"),
    Case("no_target", "endpoints: [{path: /}]\n", 1, "target", "required key 'target' is missing"),
    Case("no_work", "target: demo\n", 1, "(top level)", "the scenario has no endpoints and no flows"),
    Case("target_number", "target: 5\nendpoints: [{path: /}]\n", 1, "target", "expected a mapping of keys"),
    Case("null_key", OK + "~: 1\n", 1, "(top level)", "a key must be text, got None"),
    # --- credentials CSV
    Case("csv_semicolons", CSV_SCENARIO, 1, "credentials.csv",
         "the header line is one field 'username;password': fields are separated by ;, not commas",
         files=(("users.csv", "username;password\na;b\n"),)),
    Case("csv_tabs", CSV_SCENARIO, 1, "credentials.csv", "separated by a tab",
         files=(("users.csv", "username\tpassword\na\tb\n"),)),
    Case("csv_ragged_more", CSV_SCENARIO, 3, "credentials.csv", "this row has 3 field(s), the header has 2",
         files=(("users.csv", "username,password\na,b\nc,d,e\n"),)),
    Case("csv_ragged_fewer", CSV_SCENARIO, 4, "credentials.csv", "this row has 1 field(s), the header has 2",
         files=(("users.csv", "username,password\n\na,b\nalone\n"),)),
    Case("csv_many_ragged", CSV_SCENARIO, 2, "credentials.csv", "this row has 1 field(s)", count=5,
         files=(("users.csv", "username,password\n" + "x\n" * 1000),)),
    Case("csv_huge_field", CSV_SCENARIO, 2, "credentials.csv", "unreadable CSV: field larger than field limit",
         files=(("users.csv", "username,password\na," + "p" * 200_000 + "\n"),)),
    Case("csv_nul", CSV_SCENARIO, 2, "credentials.csv", "control character U+0000",
         files=(("users.csv", "username,password\na,\x00\n"),)),
    Case("csv_latin1", CSV_SCENARIO, 3, "credentials.csv", "is not UTF-8 text: byte 0xe9",
         files=(("users.csv", b"username,password\na,b\ncaf\xe9,c\n"),)),
    Case("csv_header_only", CSV_SCENARIO, 3, "credentials.csv", "has no user rows",
         files=(("users.csv", "username,password\n"),)),
    Case("csv_empty", CSV_SCENARIO, 3, "credentials.csv", "has no user rows", files=(("users.csv", ""),)),
    Case("csv_duplicate_header", CSV_SCENARIO, 1, "credentials.csv", "the header line names username twice",
         files=(("users.csv", "username,username\na,b\n"),)),
    Case("csv_empty_header_name", CSV_SCENARIO, 1, "credentials.csv", "an empty field name",
         files=(("users.csv", "username,,password\na,b,c\n"),)),
    Case("csv_header_spaces", CSV_SCENARIO, 1, "credentials.csv", "the header field ' password' has spaces",
         files=(("users.csv", "username, password\na,b\n"),)),
    Case("csv_unclosed_quote", CSV_SCENARIO, 2, "credentials.csv",
         "this row (lines 2-3: is a closing quote missing?) has 1 field(s), the header has 2",
         files=(("users.csv", 'username,password\n"a,b\nc,d\n'),)),
    Case("csv_missing_one_message", CSV_SCENARIO.replace("{path: /}", "{path: '/u/{{ user.username }}'}"), 3,
         "credentials.csv", "cannot read the credentials CSV"),
    Case("csv_is_directory", OK + "credentials: {csv: .}\n", 3, "credentials.csv", "it is a directory"),
    Case("all_weights_zero", "target: demo\nendpoints:\n  - {path: /a, weight: 0}\n", 2, "endpoints",
         "every endpoint and flow has weight 0: users would have nothing to send"),
    Case("timeout_shorthand_negative", OK + "policies: {shared: {timeout: -1}}\n", 3, "policies.shared.timeout",
         "timeout must be a positive number of seconds or a mapping, got -1"),
    Case("retries_shorthand_fraction", OK + "policies: {shared: {retries: 1.5}}\n", 3, "policies.shared.retries",
         "retries must be a whole number of retries (0: none) or a mapping, got 1.5"),
]


def write_case(case: Case, folder: Path) -> Path:
    for name, content in (("s.yaml", case.text), *case.files):
        target = folder / name
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder / "s.yaml"


def first_problems(path: Path) -> tuple[list[Problem], str, float]:
    started = time.monotonic()
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    return caught.value.problems, str(caught.value), time.monotonic() - started


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_corpus(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WL_BAD_UNSET", "WL_BAD_A", "WL_BAD_B", "WL_BAD_SECRET"):
        monkeypatch.delenv(name, raising=False)
    for name, value in case.env:
        monkeypatch.setenv(name, value)
    problems, text, elapsed = first_problems(write_case(case, tmp_path))
    first = problems[0]
    assert (first.line, first.key or "(top level)") == (case.line, case.key), text
    assert case.what in f"{first.what} / {first.fix}", text
    assert len(problems) == case.count, text
    assert "==> At key:" in text and "Traceback" not in text
    assert elapsed < BOUND_S
    for _name, value in case.env:
        assert value not in text


def test_corpus_is_large() -> None:
    assert len(CASES) + len(SPECIAL) >= 80


# --- special files: checked with os.stat before anything is read


def fifo(folder: Path) -> str:
    os.mkfifo(folder / "s.yaml")
    return str(folder / "s.yaml")


def sparse(size: int, name: str = "s.yaml"):
    def make(folder: Path) -> str:
        with open(folder / name, "wb") as handle:
            handle.truncate(size)
        return str(folder / name)
    return make


def just_over(folder: Path) -> str:
    (folder / "s.yaml").write_text(OK + "#" * DEFAULT_MAX_SCENARIO_BYTES)
    return str(folder / "s.yaml")


def symlink_to(target: str):
    def make(folder: Path) -> str:
        (folder / "s.yaml").symlink_to(target)
        return str(folder / "s.yaml")
    return make


def symlink_loop(folder: Path) -> str:
    (folder / "s.yaml").symlink_to(folder / "s.yaml")
    return str(folder / "s.yaml")


def csv_special(make_csv):
    def make(folder: Path) -> str:
        make_csv(folder)
        (folder / "s.yaml").write_text(CSV_SCENARIO)
        return str(folder / "s.yaml")
    return make


def csv_fifo(folder: Path) -> None:
    os.mkfifo(folder / "users.csv")


SPECIAL = {
    "fifo": (fifo, "cannot read the scenario file: it is a FIFO (named pipe), not a regular file"),
    "dev_zero": (lambda folder: "/dev/zero", "it is a character device, not a regular file"),
    "dev_null": (lambda folder: "/dev/null", "it is a character device, not a regular file"),
    "directory": (lambda folder: str(folder), "it is a directory, not a regular file"),
    "sparse_20mb": (sparse(20 * 1024 * 1024), "larger than the limit of 1,048,576 bytes (20,971,520 bytes or more)"),
    "just_over_limit": (just_over, "larger than the limit of 1,048,576 bytes"),
    "symlink_to_zero": (symlink_to("/dev/zero"), "it is a character device"),
    "symlink_loop": (symlink_loop, "cannot read the scenario file: Too many levels of symbolic links"),
    "missing": (lambda folder: str(folder / "nope.yaml"), "No such file or directory"),
    "csv_fifo": (csv_special(csv_fifo), "the credentials CSV"),
    "csv_sparse": (csv_special(sparse(DEFAULT_MAX_CSV_BYTES + 1, "users.csv")),
                   f"larger than the limit of {DEFAULT_MAX_CSV_BYTES:,} bytes"),
}


@pytest.mark.parametrize("name", sorted(SPECIAL))
def test_special_files(name: str, tmp_path: Path) -> None:
    make, what = SPECIAL[name]
    problems, text, elapsed = first_problems(Path(make(tmp_path)))
    assert len(problems) == 1 and what in problems[0].what, text
    assert "==> At key:" in text and elapsed < BOUND_S


# --- the exact text of the main classes


def exact(text: str | bytes, folder: Path, *files: tuple[str, str | bytes]) -> str:
    path = write_case(Case("exact", text, None, "", "", files=files), folder)
    _, message, _ = first_problems(path)
    return message.replace(f"{folder}/", "")


def test_exact_duplicate_key(tmp_path: Path) -> None:
    assert exact(OK + "endpoints: [{path: /b}]\n", tmp_path) == (
        "1 problem in scenario:\n"
        "s.yaml:3: ==> At key: endpoints\n"
        "    error: duplicate key 'endpoints': already written on line 2 (YAML would silently keep only the last one)\n"
        "    fix: merge the two into one key, or remove one of them")


def test_exact_deep_nesting(tmp_path: Path) -> None:
    assert exact("[" * 3000, tmp_path) == (
        "1 problem in scenario:\n"
        f"s.yaml:1: ==> At key: {'[0]' * 100}\n"
        "    error: the values are nested more than 100 levels deep\n"
        "    fix: flatten the structure (see 'Input limits' in docs/scenario-format.md)")


def test_exact_billion_laughs(tmp_path: Path) -> None:
    assert exact(laughs(), tmp_path) == (
        "1 problem in scenario:\n"
        "s.yaml:4: ==> At key: d[7]\n"
        "    error: aliases expand to more than 10,000 values\n"
        "    fix: use fewer or smaller aliases (see 'Input limits' in docs/scenario-format.md)")


def test_exact_recursive_alias(tmp_path: Path) -> None:
    assert exact(OK + "variables: &v {self: *v}\n", tmp_path) == (
        "1 problem in scenario:\n"
        "s.yaml:3: ==> At key: variables.self\n"
        "    error: alias '*v' is inside the value it names (a structure that contains itself)\n"
        "    fix: point the alias at a value defined outside this one")


def test_exact_binary_and_nul(tmp_path: Path) -> None:
    assert exact(b"\xff\xfe not text\n", tmp_path) == (
        "1 problem in scenario:\n"
        "s.yaml:1: ==> At key: (top level)\n"
        "    error: the scenario file is not UTF-8 text: byte 0xff at column 1 cannot be decoded\n"
        "    fix: save it as UTF-8 text (is this a binary file?)")
    assert exact(b"target: demo\nendpoints: [{path: /\x00}]\n", tmp_path) == (
        "1 problem in scenario:\n"
        "s.yaml:2: ==> At key: (top level)\n"
        "    error: control character U+0000 at column 21 is not allowed in a text file\n"
        "    fix: remove it (is this a binary file, or a copy-and-paste accident?)")


def test_exact_fifo_and_size(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "s.yaml")
    _, message, _ = first_problems(tmp_path / "s.yaml")
    assert message.replace(f"{tmp_path}/", "") == (
        "1 problem in scenario:\n"
        "s.yaml: ==> At key: (top level)\n"
        "    error: cannot read the scenario file: it is a FIFO (named pipe), not a regular file\n"
        "    fix: give the path of a regular text file")
    _, message, _ = first_problems(Path(sparse(5_000_000, "big.yaml")(tmp_path)))
    assert message.replace(f"{tmp_path}/", "") == (
        "1 problem in scenario:\n"
        "big.yaml: ==> At key: (top level)\n"
        "    error: the scenario file is larger than the limit of 1,048,576 bytes (5,000,000 bytes or more)\n"
        "    fix: check that this is the right file; scenario inputs are small text files "
        "(see 'Input limits' in docs/scenario-format.md)")


def test_exact_env_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WL_BAD_UNSET", raising=False)
    assert exact(OK + "load:\n  users: ${WL_BAD_UNSET}\n", tmp_path) == (
        "1 problem in scenario:\n"
        "s.yaml:4: ==> At key: load.users\n"
        "    error: environment variable 'WL_BAD_UNSET' is not set\n"
        "    fix: export WL_BAD_UNSET=... before running, or write '${WL_BAD_UNSET:-default}'")
    monkeypatch.setenv("WL_BAD_SECRET", "sk-live-123")
    assert exact(OK + "load:\n  users: ${WL_BAD_SECRET}\n", tmp_path) == (
        "1 problem in scenario:\n"
        "s.yaml:4: ==> At key: load.users\n"
        "    error: expected a whole number, got the value of ${WL_BAD_SECRET}\n"
        "    fix: write a whole number such as 10")


def test_exact_locations_of_rules(tmp_path: Path) -> None:
    assert exact(OK + "policies: {}\n", tmp_path) == (
        "1 problem in scenario:\n"
        "s.yaml:3: ==> At key: policies\n"
        "    error: no connection policies\n"
        "    fix: add e.g. 'policies: {shared: {}}'")
    assert exact(OK + "wait: {constant: 1}\nload:\n  rps: 5\n", tmp_path) == (
        "1 problem in scenario:\n"
        "s.yaml:5: ==> At key: load.rps\n"
        "    error: load.rps paces the users itself, so 'wait:' would be ignored\n"
        "    fix: remove 'wait:' (or remove load.rps to keep the wait)")
    assert exact(OK + "load:\n  duration: -5\n", tmp_path) == (
        "1 problem in scenario:\n"
        "s.yaml:4: ==> At key: load.duration\n"
        "    error: the duration must be positive\n"
        "    fix: write e.g. 30s")


def test_exact_merged_typo_at_the_anchor_line(tmp_path: Path) -> None:
    text = OK + "policies:\n  base: &base\n    type: shared\n    pool_maxsise: 3\n  mine:\n    <<: *base\n"
    message = exact(text.replace("  base: &base\n", "  shared: &base\n"), tmp_path)
    assert "s.yaml:6: ==> At key: policies.mine.pool_maxsise\n    error: unknown key 'pool_maxsise'" in message
    assert "s.yaml:9" not in message  # not the line of the merge


def test_exact_csv_problems(tmp_path: Path) -> None:
    assert exact(CSV_SCENARIO, tmp_path, ("users.csv", "username;password\na;b\n")) == (
        "1 problem in scenario:\n"
        "users.csv:1: ==> At key: credentials.csv\n"
        "    error: the header line is one field 'username;password': fields are separated by ;, not commas\n"
        "    fix: separate the fields with ',' (save the file as comma-separated values)")
    assert exact(CSV_SCENARIO, tmp_path, ("users.csv", "username,password\na,b\nc,d,e\n")) == (
        "1 problem in scenario:\n"
        "users.csv:3: ==> At key: credentials.csv\n"
        "    error: this row has 3 field(s), the header has 2\n"
        "    fix: give every row one value per header field, separated by commas (quote a value that contains "
        "a comma)")
    assert exact(CSV_SCENARIO, tmp_path, ("users.csv", "username,password\na," + "p" * 200_000 + "\n")) == (
        "1 problem in scenario:\n"
        "users.csv:2: ==> At key: credentials.csv\n"
        "    error: unreadable CSV: field larger than field limit (131072)\n"
        "    fix: check the quoting on this line; each field must be under 131,072 characters")


def test_missing_csv_is_one_message(tmp_path: Path) -> None:
    text = CSV_SCENARIO.replace("{path: /}", "{path: '/u/{{ user.username }}'}")
    assert exact(text, tmp_path) == (
        "1 problem in scenario:\n"
        "s.yaml:3: ==> At key: credentials.csv\n"
        "    error: cannot read the credentials CSV 'users.csv': No such file or directory\n"
        "    fix: create it (a header line such as 'username,password', then one row per user); "
        "the path is relative to the scenario file")


# --- what must still be accepted


def test_bom_csv_and_bom_scenario_are_read(tmp_path: Path) -> None:
    (tmp_path / "users.csv").write_bytes(b"\xef\xbb\xbfusername,password\r\nalice,a-pw\r\n\r\nbob,b-pw\r\n")
    (tmp_path / "s.yaml").write_bytes(b"\xef\xbb\xbf" + CSV_SCENARIO.encode())
    loaded = load_scenario(tmp_path / "s.yaml")
    assert loaded.credential_fields == ("username", "password")
    assert loaded.credentials == ({"username": "alice", "password": "a-pw"}, {"username": "bob", "password": "b-pw"})


def test_boolean_words_are_booleans(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WL_BAD_UNSET", raising=False)
    for written, expected in (("${WL_BAD_UNSET:-true}", True), ("'FALSE'", False), ("True", True),
                              ("${WL_BAD_UNSET:-False}", False)):
        (tmp_path / "s.yaml").write_text(f"target:\n  host: demo\n  verify: {written}\nendpoints: [{{path: /}}]\n")
        assert load_scenario(tmp_path / "s.yaml").model.target.verify is expected, written


def test_merge_override_and_depth_below_the_limit_are_fine(tmp_path: Path) -> None:
    text = (OK + "policies:\n  shared: &s {pool_maxsize: 2}\n  close: {<<: *s, type: close, pool_maxsize: 3}\n"
            "variables:\n  deep: " + "[" * (DEFAULT_MAX_DEPTH - 2) + "1" + "]" * (DEFAULT_MAX_DEPTH - 2) + "\n")
    (tmp_path / "s.yaml").write_text(text)
    loaded = load_scenario(tmp_path / "s.yaml")
    assert loaded.model.policies["close"].pool_maxsize == 3


# --- as a person runs it: exit 2, the message, no traceback, bounded time and memory

MEMORY_LIMIT = 1024 * 1024 * 1024  # address space of the child: a billion-laughs expansion needs far more


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


HOSTILE = {
    "fifo": (fifo, "it is a FIFO (named pipe)"),
    "dev_zero": (lambda folder: "/dev/zero", "it is a character device"),
    "deep": (lambda folder: _file(folder, "a: " + "[" * 3000 + "]" * 3000 + "\n"), "nested more than 100"),
    "laughs": (lambda folder: _file(folder, laughs()), "aliases expand to more than"),
    "binary": (lambda folder: _file(folder, b"\377\376 not text\n"), "not UTF-8 text"),
    "dupkeys": (lambda folder: _file(folder, OK + "endpoints: [{path: /b}]\n"), "duplicate key 'endpoints'"),
}


def _file(folder: Path, content: str | bytes) -> str:
    (folder / "s.yaml").write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(folder / "s.yaml")


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.slow
def test_validate_command_on_hostile_files(name: str, tmp_path: Path) -> None:
    make, what = HOSTILE[name]
    done = subprocess.run([sys.executable, "-m", "workload.cli", "validate", make(tmp_path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, preexec_fn=_limit_memory)
    assert done.returncode == 2, done.stderr
    assert what in done.stderr and "==> At key:" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("argv, what", [
    (["compare", "s.yaml", "--users", "0"], "argument --users: must be at least 1, got '0'"),
    (["compare", "s.yaml", "--users", "-5"], "argument --users: must be at least 1, got '-5'"),
    (["compare", "s.yaml", "--duration", "0"], "argument --duration: must be a positive time span such as 30s"),
    (["compare", "s.yaml", "--duration", "soon"], "argument --duration: expected a time span such as 30s"),
    (["compare", "s.yaml", "--spawn-rate", "nan"], "argument --spawn-rate: must be greater than 0, got 'nan'"),
    (["compare", "s.yaml", "--workers", "-1"], "argument --workers: must be at least 0, got '-1'"),
    (["capacity", "s.yaml", "--max-users", "0"], "argument --max-users: must be at least 1"),
    (["capacity", "s.yaml", "--step-users", "x"], "argument --step-users: expected a whole number, got 'x'"),
    (["capacity", "s.yaml", "--step-duration", "0s"], "argument --step-duration: must be a positive time span"),
    (["capacity", "s.yaml", "--max-duration=-1m"], "argument --max-duration: expected a time span"),
    (["capacity", "s.yaml", "--target-rps", "-1"], "argument --target-rps: must be greater than 0, got '-1'"),
    (["capacity", "s.yaml", "--slo-p95-ms", "0"], "argument --slo-p95-ms: must be greater than 0, got '0'"),
    (["capacity", "s.yaml", "--slo-failure-ratio", "2"], "argument --slo-failure-ratio: must be between 0 and 1"),
    (["serve", "--port", "99999"], "argument --port: must be between 0 and 65535, got '99999'"),
    (["serve", "--port=-1"], "argument --port: must be between 0 and 65535, got '-1'"),
    (["serve", "--admin-port", "70000"], "argument --admin-port: must be between 0 and 65535"),
])
def test_bad_arguments_are_usage_errors(argv: list[str], what: str, capsys: pytest.CaptureFixture[str]) -> None:
    from workload import cli

    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    assert caught.value.code == 2
    assert what in capsys.readouterr().err
