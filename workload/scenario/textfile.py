"""Text input files: a scenario or a credentials CSV read in bounded time and memory.

Scenario files arrive in pull requests, so the path may name anything: a FIFO (opening it
waits forever for a writer), `/dev/zero` (endless), a directory, a 20 MB file, a binary.
The file is checked with `os.stat` before it is opened, opened non-blocking, and read to at
most its size limit plus one byte; the text must be UTF-8 without control characters.
Every refusal is one located `Problem` (the line of a bad byte or character).
"""

from __future__ import annotations

import codecs
import os
import re
import stat
import unicodedata
from dataclasses import dataclass

from workload.errors import Problem, ScenarioError

DEFAULT_MAX_SCENARIO_BYTES = 1024 * 1024  # 1 MiB: the shipped scenarios are < 10 KB
DEFAULT_MAX_CSV_BYTES = 8 * 1024 * 1024  # 8 MiB: about 200,000 credential rows
# Characters YAML 1.1 forbids (PyYAML's and libyaml's reader), refused in CSVs as well; and the
# line breaks YAML knows but editors do not show (NEL, LS, PS): they would shift every line number.
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufffe\uffff]")
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


@dataclass(frozen=True)
class TextFile:
    """How to word problems with one kind of input file."""

    noun: str  # "the scenario file", "the credentials CSV 'users.csv'"
    key: str  # the key path the problems are reported under
    missing_fix: str  # the fix when the file cannot be opened
    limit: int


def read_text(path: str, kind: TextFile) -> str:
    """The file's text (a leading BOM removed), or a `ScenarioError` with one located problem."""
    try:
        data = _read_bounded(path, kind)
    except OSError as exc:
        raise _error(path, None, kind, f"cannot read {kind.noun}: {exc.strerror or exc}",
                     kind.missing_fix) from exc
    data = data.removeprefix(codecs.BOM_UTF8)  # Excel writes one; offsets below stay in the same lines
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position(data, exc.start)
        raise _error(path, line, kind, f"{kind.noun} is not UTF-8 text: byte 0x{data[exc.start]:02x} at column "
                     f"{column} cannot be decoded", "save it as UTF-8 text (is this a binary file?)") from exc
    bad = CONTROL_CHARACTERS.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        column = bad.start() - text.rfind("\n", 0, bad.start())
        char = bad.group()
        label = "control character" if unicodedata.category(char) == "Cc" else \
            unicodedata.name(char, "noncharacter").lower()
        raise _error(path, line, kind, f"{label} U+{ord(char):04X} at column {column} is not "
                     "allowed in a text file", "remove it (is this a binary file, or a copy-and-paste accident?)")
    return text


def _read_bounded(path: str, kind: TextFile) -> bytes:
    _check_stat(path, os.stat(path), kind)
    # O_NONBLOCK: if the path became a FIFO after the stat, opening still does not wait.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    with os.fdopen(fd, "rb") as handle:
        _check_stat(path, os.fstat(fd), kind)
        data = handle.read(kind.limit + 1)
    if len(data) > kind.limit:  # grew since the stat, or a size the kernel does not report
        raise _too_large(path, len(data), kind)
    return data


def _check_stat(path: str, info: os.stat_result, kind: TextFile) -> None:
    if not stat.S_ISREG(info.st_mode):
        what = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
        raise _error(path, None, kind, f"cannot read {kind.noun}: it is {what}, not a regular file",
                     "give the path of a regular text file")
    if info.st_size > kind.limit:
        raise _too_large(path, info.st_size, kind)


def _too_large(path: str, size: int, kind: TextFile) -> ScenarioError:
    return _error(path, None, kind, f"{kind.noun} is larger than the limit of {kind.limit:,} bytes "
                  f"({size:,} bytes or more)", "check that this is the right file; scenario inputs are small text "
                  "files (see 'Input limits' in docs/scenario-format.md)")


def _position(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and byte column of `offset`."""
    return data.count(b"\n", 0, offset) + 1, offset - data.rfind(b"\n", 0, offset)


def _error(path: str, line: int | None, kind: TextFile, what: str, fix: str) -> ScenarioError:
    return ScenarioError([Problem(path, line, kind.key, what, fix)])
