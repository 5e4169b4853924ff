"""Tiny Markdown helpers (pandas' to_markdown needs the optional `tabulate`)."""
from __future__ import annotations

import math
from typing import Any, Sequence

import pandas as pd


def fmt(x: Any, digits: int = 2) -> str:
    """A cell: numbers rounded, NaN/None as an em dash, pipes escaped."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        if math.isnan(x):
            return "—"
        if math.isinf(x):
            return "∞"
        if x != 0 and (abs(x) >= 1e5 or abs(x) < 10 ** -digits):
            return f"{x:.{digits + 1}g}"
        return f"{x:.{digits}f}"
    return str(x).replace("|", "\\|").replace("\n", " ")


def table(df: pd.DataFrame, columns: Sequence[str] | None = None,
          digits: dict[str, int] | None = None) -> str:
    """Render `df[columns]` as a GitHub Markdown table (column names as given)."""
    columns = list(columns or df.columns)
    digits = digits or {}
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(fmt(row[c], digits.get(c, 2)) for c in columns) + " |")
    return "\n".join(lines)
