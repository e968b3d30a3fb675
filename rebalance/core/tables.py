"""The one Markdown table writer (plan tables, the evidence summary, data cards, compare)."""

from __future__ import annotations

from typing import Any


def cell(value: Any, digits: int = 3) -> str:
    """A table cell: floats to `digits` decimals, None empty, anything else as str."""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "" if value is None else str(value)


def markdown_table(header: list[str], rows: list[list[Any]], pad: bool = False) -> str:
    """A GitHub Markdown table. `pad` aligns columns for reading in a terminal."""
    cells = [[str(h) for h in header]] + [[cell(v) for v in r] for r in rows]
    if pad:
        widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
        cells = [[v.ljust(w) for v, w in zip(r, widths)] for r in cells]
        sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    else:
        sep = "|" + "|".join("---" for _ in header) + "|"
    lines = ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join([lines[0], sep, *lines[1:]])
