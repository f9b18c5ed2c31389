"""mypy over the package (config in pyproject.toml [tool.mypy], pydantic plugin): the suite fails on a type error."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
while not (ROOT / "pyproject.toml").exists():  # the repo root, wherever this file sits under tests/
    ROOT = ROOT.parent


def test_mypy_is_clean_on_the_package() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"mypy found errors:\n{done.stdout}{done.stderr}"
    assert "Success: no issues found" in done.stdout
