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


_SEVERITY_STYLE = {"error": "red", "warning": "yellow", "notice": "cyan"}


def print_diagnostics(
    diagnostics: Iterable[Diagnostic], *, code: bool = False, stream: TextIO | None = None
) -> None:
    """One diagnostic per line (and its hint), the severity coloured on a terminal."""
    stream = stream or sys.stderr
    for diag in diagnostics:
        head, _, rest = diag.format(code=code).partition(f": {diag.severity}")
        word = paint(diag.severity, _SEVERITY_STYLE[diag.severity], stream)
        stream.write(f"{head}: {word}{rest}\n")
