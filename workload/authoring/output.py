"""Writing a new scenario file: never over an existing one unless asked, `-` for standard output."""

from __future__ import annotations

import os
import sys

from workload.errors import WorkloadError

STDOUT = "-"


def write_new(file: str, text: str, force: bool) -> str:
    """Write `text` to `file` (created; replaced only with `force`); returns the file name."""
    if file == STDOUT:
        sys.stdout.write(text)
        return "standard output"
    mode = "w" if force else "x"
    try:
        with open(file, mode, encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise WorkloadError("the file already exists; it was left as it is",
                            "give another file with -o FILE, or delete it first", where=file) from None
    except OSError as exc:
        raise WorkloadError(f"cannot write the scenario: {exc.strerror or exc}",
                            "give a writable path with -o FILE", where=file) from exc
    return os.fspath(file)
