"""The web UI's start form: which policies each listed scenario offers.

Locust 2.47's form renders a custom argument with `choices` as a native <select> (and any
other as a text box), always inside its collapsed "Custom parameters" panel, and it has no
way to make one field's choices depend on another's.  So the `--policy` argument gets the
policies of every listed scenario as its choices (the chosen scenario's default first), and
the page gets the map {scenario: [its policies, default first]} in `window.templateArgs`
(`FORM_KEY`); `static/webui.js` keeps only the chosen scenario's policies selectable.  A
scenario that does not load shows every name; starting it then reports its errors.
"""

from __future__ import annotations

import os
from pathlib import Path

from workload.errors import WorkloadError
from workload.scenario.loader import load_scenario

FORM_KEY = "workload_form"
_CACHE: dict[str, tuple[tuple[int, int], list[str]]] = {}  # path -> ((mtime_ns, size), policies)


def scenario_policies(path: str) -> list[str]:
    """The scenario's policy names, its default first; [] when it does not load (cached by mtime)."""
    try:
        stat = os.stat(path)
    except OSError:
        return []
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _CACHE.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        loaded = load_scenario(path)
        default = loaded.default_policy()
        names = [default] + [name for name in loaded.policy_names() if name != default]
    except (WorkloadError, OSError, ValueError):  # shown with every name; starting it says why
        names = []
    _CACHE[path] = (stamp, names)
    return names


def policy_map(scenarios: list[str], folder: Path | None = None) -> dict[str, list[str]]:
    """{scenario as the form lists it: its policies}; relative names are tried under `folder` too."""
    found = {}
    for scenario in scenarios:
        candidates = [scenario] + ([str(folder / scenario)] if folder is not None else [])
        path = next((c for c in candidates if Path(c).is_file()), scenario)
        found[scenario] = scenario_policies(path)
    return found


def policy_choices(policies: dict[str, list[str]], first: str) -> list[str]:
    """Every listed scenario's policies, once each, `first` scenario's (default first) leading."""
    ordered = policies.get(first, []) + [n for names in policies.values() for n in names]
    return list(dict.fromkeys(ordered))
