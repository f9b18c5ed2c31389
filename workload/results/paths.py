"""Results paths: every file or folder the tool writes, proven to lie inside its results folder.

Names that become paths (run ids, policy names, log names) come from scenario files and the
command line.  Validation restricts them, but this is the last line of defence: each path is
resolved (symlinks and `..` included) and refused unless it is inside its root, before it
is opened.  Folders for new results are created exclusively (`os.mkdir`), with a `-2`,
`-3`, ... suffix when the name is taken, so two runs never share or reuse one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from workload.errors import ResultsError, UnsafePathError

MAX_SUFFIX = 1000  # fresh names tried per base name before giving up
PLAIN_NAME = "use a plain name (letters, digits, '-', '_', '.')"


def inside(root: Path | str, name: str | Path) -> Path:
    """`root/name`, resolved, or UnsafePathError if it is not strictly inside `root`."""
    base = Path(root).resolve()
    if not str(name) or Path(name).is_absolute():
        raise UnsafePathError(f"refusing to write {str(name)!r}: not a name inside {base}", fix=PLAIN_NAME)
    path = (base / name).resolve()
    if path == base or not path.is_relative_to(base):
        raise UnsafePathError(f"refusing to write {path}: {str(name)!r} leads outside the results folder "
                              f"{base}", fix=PLAIN_NAME)
    return path


def fresh_dir(root: Path | str, name: str) -> Path:
    """A new, empty folder `root/name` (or `name-2`, `name-3`, ...) created by this call."""
    base = writable_dir(root)
    for n in range(1, MAX_SUFFIX + 1):
        path = inside(base, name if n == 1 else f"{name}-{n}")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise ResultsError(f"cannot create the results folder {path}: {exc.strerror}",
                               fix="pass a folder you can write to") from exc
    raise ResultsError(f"{MAX_SUFFIX} folders named {name}* already exist in {base}", fix="clean them up")


def writable_dir(path: Path | str, flag: str = "results folder") -> Path:
    """`path` as an existing folder this process can create files in (created if missing)."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ResultsError(f"{flag} {folder} is a file, not a folder", fix="pass a folder path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".workload-probe-"):
            pass
    except OSError as exc:
        raise ResultsError(f"{flag} {folder} is not writable ({exc.strerror})",
                           fix="pass a folder you can write to, or fix its permissions") from exc
    return folder.resolve()


def fallback_dir(name: str) -> Path:
    """A new temporary folder for results that could not be written where they belonged."""
    return Path(tempfile.mkdtemp(prefix=f"workload-{name[:40]}-"))


REPLACEABLE = ("runs", "summary.json", "report.md", "report.html", "junit.xml", "summary.md",
               "capacity.json", "capacity.md", "capacity.html")  # what compare/capacity write in --out


def output_dir(out: str | None, root: Path, prefix: str, replace: bool = False) -> Path:
    """The folder of one compare/capacity: `--out` if given (new or empty, or emptied of an
    earlier compare's files with `replace`), else a fresh `root/<prefix>-<time>`."""
    if out is None:
        return fresh_dir(root, f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}")
    folder = writable_dir(out, "--out")
    leftovers = sorted(p.name for p in folder.iterdir() if not p.name.startswith(".workload-probe-"))
    if leftovers and not replace:
        shown = ", ".join(leftovers[:5]) + (", ..." if len(leftovers) > 5 else "")
        raise ResultsError(f"--out {out} is not empty ({shown}): its results would be mixed with this run's",
                           fix="pass a new or empty folder, or add --replace to delete the earlier results in it")
    for name in leftovers:
        _remove_result(folder, name)
    return folder


def _remove_result(folder: Path, name: str) -> None:
    if name not in REPLACEABLE:
        raise ResultsError(f"--replace: {folder / name} is not something workload wrote; nothing was deleted",
                           fix="move it away or pass another --out")
    path = inside(folder, name)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def write_atomic(path: Path, data: str | bytes, keep_mode: bool = False) -> None:
    """Write whole or not at all: a reader never sees half a file (temporary file + rename).
    Text is written as UTF-8; `keep_mode` gives the new file the permissions of the old one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        if keep_mode:
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
