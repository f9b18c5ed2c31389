"""Bad HAR files: located errors without a traceback, exit code 2, bounded time and memory.

Each input is small and hand-written (the real recordings are in test_harimport.py); the
whole message is asserted, as a user sees it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workload.authoring.har import MAX_HAR_BYTES, read_har
from workload.cli import main
from workload.errors import ExitCode, HarError

FIX = "    fix: give a HAR 1.2 file as a browser saves it (DevTools > Network > 'Save all as HAR')"
ENTRY = {"startedDateTime": "2026-01-31T12:00:00.000Z", "time": 5,
         "request": {"method": "GET", "url": "http://127.0.0.1:8080/", "headers": []},
         "response": {"status": 200, "headers": []}}


def _error(tmp_path: Path, content: str | bytes) -> str:
    path = tmp_path / "rec.har"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(HarError) as caught:
        read_har(str(path))
    return str(caught.value).replace(str(path), "rec.har")


def _har(*entries: object) -> str:
    return json.dumps({"log": {"version": "1.2", "entries": list(entries)}})


def test_not_json_names_the_line_and_column(tmp_path):
    assert _error(tmp_path, '{"log":\n  {"entries": [,]}}') == (
        "1 problem in HAR file:\nrec.har:2: ==> At key: (top level)\n"
        "    error: not JSON: Expecting value (column 16)\n" + FIX + "; a cut-off download also ends like this")


def test_wrong_shape_is_located_by_json_path_without_quoting_the_value(tmp_path):
    entry = {**ENTRY, "request": {**ENTRY["request"], "url": ["x" * 10_000]}, "response": {"headers": []}}
    assert _error(tmp_path, _har(ENTRY, entry)) == (
        "2 problems in HAR file:\n"
        "rec.har: ==> At key: log.entries[1].request.url\n    error: expected a string, got an array\n" + FIX + "\n"
        "rec.har: ==> At key: log.entries[1].response\n    error: missing key 'status'\n" + FIX)


def test_a_json_document_that_is_not_a_har(tmp_path):
    assert _error(tmp_path, '{"name": "package.json?"}') == (
        "1 problem in HAR file:\nrec.har: ==> At key: (top level)\n    error: missing key 'log'\n" + FIX)


def test_many_problems_are_capped(tmp_path):
    text = _error(tmp_path, _har(*[{**ENTRY, "time": "slow"}] * 14))
    assert text.startswith("11 problems in HAR file:\nrec.har: ==> At key: log.entries[0].time\n"
                           "    error: expected a number, got a string\n")
    assert text.endswith("rec.har: ==> At key: (top level)\n    error: 4 more problems not shown\n"
                         "    fix: fix the ones above first")


def test_a_bad_start_time(tmp_path):
    assert _error(tmp_path, _har({**ENTRY, "startedDateTime": "yesterday"})) == (
        "1 problem in HAR file:\nrec.har: ==> At key: log.entries[0].startedDateTime\n"
        "    error: not an ISO 8601 date and time: 'yesterday'\n"
        "    fix: write it as browsers do, e.g. 2026-01-31T12:00:00.000Z")


def test_no_entries(tmp_path):
    assert _error(tmp_path, _har()) == (
        "1 problem in HAR file:\nrec.har: ==> At key: log.entries\n    error: the recording has no requests\n"
        "    fix: record again with the network panel open from the first page load")


def test_deep_nesting_is_an_error_not_a_crash(tmp_path):
    assert _error(tmp_path, "[" * 200_000 + "]" * 200_000) == (
        "1 problem in HAR file:\nrec.har: ==> At key: (top level)\n"
        "    error: the JSON is nested too deeply to be a HAR file\n" + FIX)


def test_a_binary_file(tmp_path):
    assert _error(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00") == (
        "1 problem in HAR file:\nrec.har:1: ==> At key: (top level)\n"
        "    error: the HAR file is not UTF-8 text: byte 0x89 at column 1 cannot be decoded\n"
        "    fix: save it as UTF-8 text (is this a binary file?)")


def test_a_huge_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "big.har"
    with path.open("wb") as handle:  # sparse: no disk used, and nothing is read
        handle.truncate(MAX_HAR_BYTES + 1)
    with pytest.raises(HarError) as caught:
        read_har(str(path))
    assert str(caught.value) == (
        f"1 problem in HAR file:\n{path}: ==> At key: (top level)\n"
        "    error: the HAR file is larger than the limit of 67,108,864 bytes (67,108,865 bytes or more)\n"
        "    fix: check that this is the right file; scenario inputs are small text files "
        "(see 'Input limits' in docs/scenario-format.md)")


def test_the_command_prints_the_problem_and_exits_2(tmp_path, capsys):
    path = tmp_path / "rec.har"
    path.write_text("<html>not a HAR</html>")
    assert main(["import-har", str(path), "-o", str(tmp_path / "out.yaml")]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert err == (f"workload: 1 problem in HAR file:\n{path}:1: ==> At key: (top level)\n"
                   "    error: not JSON: Expecting value (column 1)\n" + FIX +
                   "; a cut-off download also ends like this\n")
    assert "Traceback" not in err and not (tmp_path / "out.yaml").exists()
