"""Writing to the terminal: data on stdout, diagnostics on stderr, colour only on a TTY.

Colour follows the NO_COLOR convention (https://no-color.org): any value disables it.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from collections.abc import Iterable

    from backfill_ctl.errors import Diagnostic

_CODES = {"red": "31", "yellow": "33", "green": "32", "bold": "1", "dim": "2", "cyan": "36"}


def use_color(stream: TextIO) -> bool:
    if "NO_COLOR" in os.environ:
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def paint(text: str, style: str, stream: TextIO | None = None) -> str:
    if not use_color(stream or sys.stdout):
        return text
    return f"\x1b[{_CODES[style]}m{text}\x1b[0m"


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def err(text: str = "") -> None:
    sys.stderr.write(text + "\n")


def print_diagnostics(diagnostics: Iterable[Diagnostic]) -> None:
    for diag in diagnostics:
        style = "red" if diag.is_error else "yellow"
        text = diag.format()
        head, sep, rest = text.partition(f"{diag.severity}:")
        err(head + paint(diag.severity + ":", style, sys.stderr) + rest if sep else text)
