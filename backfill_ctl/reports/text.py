"""Small helpers for human-readable text, and the kubectl-like plain tables.

Tables are rendered by rich (`rich.table.Table`: no box, no wrapping, two spaces
between columns, header in caps as given) into plain text lines, no colour and no
markup: the output stays what scripts parse. rich is imported when a table is drawn.
rich takes some 40-140 µs a cell, so a table of more than `RICH_ROWS` rows (a `get`
of thousands of instances) is joined directly, to the same text (a test compares).

What a store holds is free text written by others (labels, owners, parameter values,
commands, actors): `visible` escapes the characters a terminal would obey rather than
show (control characters: an escape sequence clears the screen, retitles the window or
writes the clipboard; bidi overrides reorder the line), so human output shows them as
`\x1b`, `\u202e`. Every table cell goes through it; data formats (JSON, YAML) do not.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


def count(n: int, noun: str, plural: str | None = None) -> str:
    """`count(1, "node")` -> "1 node"; `count(3, "node")` -> "3 nodes"."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def width(text: str) -> int:
    """The terminal cells `text` takes (a CJK character two), as tables measure it."""
    from rich.cells import cell_len

    return cell_len(text)


_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escaped(match: re.Match[str]) -> str:
    c = match.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def visible(text: str) -> str:
    """`text` with the characters a terminal obeys rather than shows escaped (see the
    module docstring); printable text is returned as it is."""
    return text if text.isprintable() else _UNSAFE.sub(_escaped, text)


RICH_ROWS = 1000  # above: 10,000 rows of 8 columns took 4 s in rich, 30 ms joined


def table(
    rows: Sequence[Sequence[str]], *, header: bool = True, widths: Sequence[int] = ()
) -> list[str]:
    """Left-aligned columns separated by two spaces, trailing blanks cut; the first row
    is the header (with `header=False`, every row is data). A column is at least as
    wide as `widths` says (a watched listing keeps the width it printed with). Cells
    are shown `visible`."""
    rows = [[visible(cell) for cell in row] for row in rows]
    first = rows[0]
    minimum = [*widths, *[0] * (len(first) - len(widths))]
    if len(rows) > RICH_ROWS:
        return _joined(rows, minimum)
    from rich.cells import cell_len
    from rich.console import Console
    from rich.table import Column, Table
    from rich.text import Text

    columns = [
        Column(Text(c) if header else "", no_wrap=True, overflow="ignore", min_width=m or None)
        for c, m in zip(first, minimum, strict=True)
    ]
    grid = Table(
        *columns, box=None, pad_edge=False, padding=(0, 1), show_header=header, header_style=""
    )
    for row in rows[1:] if header else rows:
        grid.add_row(*(Text(cell) for cell in row))
    needed = sum(max(cell_len(r[c]) for r in rows) + 2 for c in range(len(first))) + sum(minimum)
    out = io.StringIO()
    console = Console(file=out, width=needed, color_system=None, highlight=False, emoji=False)
    console.print(grid, soft_wrap=False)
    return [line.rstrip() for line in out.getvalue().splitlines()]


def _joined(rows: Sequence[Sequence[str]], minimum: Sequence[int]) -> list[str]:
    """What rich draws, for big tables: each column as wide as its widest cell."""
    from rich.cells import cell_len

    widths = [max(m, *(cell_len(r[c]) for r in rows)) for c, m in enumerate(minimum)]
    return [
        "  ".join(
            cell + " " * (w - cell_len(cell)) for cell, w in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    ]
