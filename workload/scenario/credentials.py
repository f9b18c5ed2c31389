"""Credentials CSV: one account per row, read with its shape checked and every problem located.

A header line names the fields (`username,password`); each row must have exactly as many
fields, separated by commas.  A `;`-separated file, a ragged row or an oversized field is a
problem at the CSV's own `file:line` (reported under the scenario's `credentials.csv` key),
not a row that silently carries `None` or a traceback.  Read through `workload.scenario.textfile`
(size limit, UTF-8, BOM removed).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from pathlib import Path as FsPath
from typing import Any

from workload.errors import Problem, ScenarioError
from workload.scenario.source import Source
from workload.scenario.textfile import DEFAULT_MAX_CSV_BYTES, TextFile, read_text

KEY = "credentials.csv"
MAX_ROW_PROBLEMS = 5  # a wholly wrong file gets a few located rows, not one message per row
MISSING_FIX = ("create it (a header line such as 'username,password', then one row per user); "
               "the path is relative to the scenario file")
Rows = tuple[dict[str, str], ...]


def read(path: FsPath, source: Source, problems: list[Problem]) -> Rows:
    """The rows of the CSV at `path`; problems are appended (located in the CSV when they can be)."""
    kind = TextFile(f"the credentials CSV '{path}'", KEY, MISSING_FIX, DEFAULT_MAX_CSV_BYTES)
    try:
        text = read_text(str(path), kind)
    except ScenarioError as exc:
        problems += [_at_key(p, source) for p in exc.problems]
        return ()
    found: list[Problem] = []
    rows = _rows(text, str(path), found)
    if not rows and not found:
        found.append(source.problem(("credentials", "csv"), f"'{path}' has no user rows",
                                    "add a header line and one row per user"))
    problems += found
    return rows if not found else ()


def _rows(text: str, file: str, found: list[Problem]) -> Rows:
    reader = csv.reader(io.StringIO(text, newline=""))
    records = _records(reader)
    try:
        first = next(records, None)
        if first is None:
            return ()
        line, header = first
        if (why := _header_problem(header)) is not None:
            found.append(Problem(file, line, KEY, *why))
            return ()
        return _body(records, reader, header, file, found)
    except csv.Error as exc:
        found.append(Problem(file, reader.line_num or 1, KEY, f"unreadable CSV: {exc}",
                             "check the quoting on this line; each field must be under "
                             f"{csv.field_size_limit():,} characters"))
        return ()


def _body(records: Iterator[tuple[int, list[str]]], reader: Any, header: list[str], file: str,
          found: list[Problem]) -> Rows:
    rows = []
    for start, record in records:
        if len(record) == len(header):
            rows.append(dict(zip(header, record, strict=True)))
            continue
        spans = f" (lines {start}-{reader.line_num}: is a closing quote missing?)" if reader.line_num > start else ""
        found.append(Problem(file, start, KEY, f"this row{spans} has {len(record)} field(s), the header has "
                             f"{len(header)}", "give every row one value per header field, separated by commas "
                             "(quote a value that contains a comma)"))
        if len(found) >= MAX_ROW_PROBLEMS:
            break
    return tuple(rows)


def _records(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """(first line, fields) of each record; blank lines are not rows."""
    while True:
        start = reader.line_num + 1
        record = next(reader, None)
        if record is None:
            return
        if record:
            yield start, record


def _header_problem(header: list[str]) -> tuple[str, str] | None:
    if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
        sep = ";" if ";" in header[0] else "a tab"
        return (f"the header line is one field {header[0]!r}: fields are separated by {sep}, not commas",
                "separate the fields with ',' (save the file as comma-separated values)")
    names = [name.strip() for name in header]
    if "" in names:
        return ("the header line has an empty field name", "name every column, e.g. 'username,password'")
    padded = [name for name in header if name != name.strip()]
    if padded:
        return (f"the header field {padded[0]!r} has spaces around it, which would be part of its name",
                "remove the spaces around the commas in the header line")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        return (f"the header line names {', '.join(repeated)} twice", "give every column its own name")
    return None


def common_fields(rows: Sequence[dict[str, str]]) -> tuple[str, ...]:
    """The fields every row has, in the first row's order (a CSV's header)."""
    if not rows:
        return ()
    return tuple(name for name in rows[0] if all(name in row for row in rows[1:]))


def _at_key(problem: Problem, source: Source) -> Problem:
    """A file problem without a CSV line is placed on the scenario's `credentials.csv` line."""
    if problem.line is not None:
        return problem
    return source.problem(("credentials", "csv"), problem.what, problem.fix)
