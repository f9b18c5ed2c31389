"""Scrubbing: `workload.redaction.redact` applied at the exits the tool does not write itself.

Locust writes report.html, its CSVs and its log, prints its stats and error tables, and
urllib3 logs retry warnings with full URLs; a child's output lands in compare's logs.  So:
every text file of a run or compare folder is rewritten redacted (atomically, only when it
changed), again at process exit after Locust's last writes (its CSV files are closed after
the `quit` event); a `logging.Filter` on the console, file and web-UI log handlers; and the
process's stdout/stderr wrapped for what is printed outside logging (tracebacks, prints);
and a worker's stats report to the master, since only the worker knows the tokens it captured.
"""

from __future__ import annotations

import atexit
import glob
import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from workload.redaction import REGISTRY, redact, redact_data, register_userinfo
from workload.results.paths import write_atomic

log = logging.getLogger(__name__)
LOGGERS = ("", "locust", "locust.stats_logger")  # root, and Locust's own (they do not propagate)
MAX_SCRUB_BYTES = 256 * 1024 * 1024  # a bigger file is not ours; reading it whole would cost too much
_AT_EXIT: list[Path] = []


def scrub_file(path: Path) -> bool:
    """Rewrite one regular file with its secrets masked; whether it changed.  Binary-safe:
    undecodable bytes are kept as they are (surrogateescape)."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_SCRUB_BYTES:
            return False
        text = path.read_bytes().decode("utf-8", "surrogateescape")
    except OSError:
        return False
    clean = redact(text)
    if clean == text:
        return False
    write_atomic(path, clean.encode("utf-8", "surrogateescape"), keep_mode=True)
    return True


def scrub_tree(folder: Path) -> int:
    """Scrub every file under `folder` (symbolic links are not followed); how many changed."""
    if not len(REGISTRY) or not folder.is_dir():
        return 0
    changed = 0
    for root, _dirs, files in os.walk(folder):
        changed += sum(scrub_file(Path(root) / name) for name in files)
    return changed


def scrub_path(path: Path) -> int:
    return scrub_tree(path) if path.is_dir() else int(scrub_file(path))


def locust_outputs(options: Any) -> list[Path]:
    """Files Locust writes itself by option: --html, --csv (every table), --json-file, --logfile."""
    found: list[Path] = []
    for name in ("html_file", "logfile"):
        if value := getattr(options, name, None):
            found.append(Path(value))
    if json_file := getattr(options, "json_file", None):
        found.append(Path(f"{json_file}.json"))
    if prefix := getattr(options, "csv_prefix", None):
        found += [Path(p) for p in glob.glob(f"{glob.escape(prefix)}_*.csv")]
    return found


def scrub_run(folder: Path, options: Any = None) -> None:
    """Scrub a finished run's folder and Locust's own output files now, and again at exit,
    after Locust's final writes (the CSV tables are flushed after the `quit` event)."""
    paths = [folder, *locust_outputs(options)]
    for path in paths:
        scrub_path(path)
    if not _AT_EXIT:
        atexit.register(_scrub_at_exit)
    _AT_EXIT.extend(p for p in paths if p not in _AT_EXIT)


def _scrub_at_exit() -> None:
    for path in _AT_EXIT:
        try:
            scrub_path(path)
        except OSError as exc:  # exiting anyway: say so rather than leave a traceback
            print(f"workload: could not redact {path}: {exc}", file=sys.stderr)


# -- console --------------------------------------------------------------------------------
class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message and traceback before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let logging report it as it would
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class RedactingStream:
    """A text stream that masks secrets in what is written, delegating everything else."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def install(environment: Any) -> None:
    """A Locust process: the console, and (on a worker) the stats it reports to the master,
    whose names and error messages may hold a token only this worker captured."""
    install_console()
    register_userinfo(environment.host or "")  # -H http://user:password@...: in Locust's report.html
    environment.events.report_to_master.add_listener(_redact_report)


def _redact_report(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
    redact_data(data)  # after Locust's own listener filled in the stats: it was registered first


def install_console() -> None:
    """Filter every handler of the root and Locust loggers; wrap stdout and stderr (once)."""
    for name in LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, RedactingStream):
            setattr(sys, name, RedactingStream(stream))
