"""Time spans: `30s`, `2m`, `1h30m`, `90` (seconds) as written in scenarios and on the command line."""

from __future__ import annotations

import re

_SPAN = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*$")


def seconds(value: str | float | int) -> float:
    """Seconds in a span; ValueError with the accepted forms when it is not one."""
    if isinstance(value, int | float):
        return float(value)
    match = _SPAN.match(value)
    if not value.strip() or match is None or not any(match.groups()):
        raise ValueError(f"invalid time span {value!r}: write e.g. 30s, 2m, 1h30m or a number of seconds")
    hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + secs
