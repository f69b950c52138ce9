"""Small helpers for human-readable text."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


def count(n: int, noun: str, plural: str | None = None) -> str:
    """`count(1, "node")` -> "1 node"; `count(3, "node")` -> "3 nodes"."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns separated by two spaces; the first row is the header."""
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
