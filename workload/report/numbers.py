"""Numbers as people read them: one place for how reports, findings and charts show a figure.

`count` (thousands separators), `amount` (whole above 10, one decimal below), `decimal` (one
decimal), `percent`; `cell` shows any figure in a table cell (a missing one as
`DEFAULT_MISSING`, never as 0); `finite` is the guard every reader of a run's figures uses: a
JSON number that is a real, finite number (not a bool, not NaN), else None.
"""

from __future__ import annotations

import math
from typing import Any

DEFAULT_MISSING = "n/a"  # a figure that was not measured (or not observable): never printed as 0


def count(value: float) -> str:
    """A count with thousands separators: 2310 -> '2,310'."""
    return f"{value:,.0f}"


def amount(value: float) -> str:
    """A measured quantity: whole above 10 ('1,234'), one decimal below ('7.5')."""
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:,.1f}"


def decimal(value: float) -> str:
    """One decimal, thousands separated: 1234.56 -> '1,234.6'."""
    return f"{value:,.1f}"


def percent(share: float) -> str:
    """A share as a percentage: 0.41 -> '41%', 0.012 -> '1.2%'."""
    pct = share * 100
    return f"{pct:,.0f}%" if pct >= 10 else f"{pct:.1f}%"


def finite(value: Any) -> int | float | None:
    """`value` if it is a finite JSON number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def cell(value: Any) -> str:
    """A table cell: counts and amounts as above, yes/no, text as it is, None as `DEFAULT_MISSING`."""
    if value is None:
        return DEFAULT_MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return count(value)
    if isinstance(value, float):
        return amount(value)
    return str(value)
