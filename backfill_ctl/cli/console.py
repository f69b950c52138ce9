"""Writing to the terminal: data on stdout, diagnostics on stderr, colour only on a TTY.

Colour follows the NO_COLOR convention (https://no-color.org): any value disables it, as
does `--no-color`; FORCE_COLOR (any non-empty value) asks for it off a terminal too.
Diagnostics (`err`, `print_diagnostics`) show control characters escaped (`shown`): they
quote spec and store values that others wrote.
`Terminal` is the sink the reporters of `-o FORMAT` write to (reports/base.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from backfill_ctl.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from rich.console import Console

    from backfill_ctl.errors import Diagnostic

_CODES = {"red": "31", "yellow": "33", "green": "32", "bold": "1", "dim": "2", "cyan": "36"}


_COLOR = {"off": False}  # --no-color, set by the root command for each run


def set_no_color(no_color: bool) -> None:
    """`--no-color`: no colour on any stream for this run (as NO_COLOR does)."""
    _COLOR["off"] = no_color


def use_color(stream: TextIO) -> bool:
    if _COLOR["off"] or "NO_COLOR" in os.environ:
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def rich_console(stream: TextIO) -> Console:
    """A rich Console writing to `stream`, coloured only when `paint` would colour it."""
    from rich.console import Console

    color = use_color(stream)
    return Console(
        file=stream,
        color_system="auto" if color else None,
        no_color=not color,
        highlight=False,
        markup=False,
        emoji=False,
    )


def paint(text: str, style: str, stream: TextIO | None = None) -> str:
    if not use_color(stream or sys.stdout):
        return text
    return f"\x1b[{_CODES[style]}m{text}\x1b[0m"


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def err(text: str = "") -> None:
    """A diagnostic line (or lines): what it quotes of stored or spec values is shown
    `visible`, never obeyed by the terminal."""
    sys.stderr.write(shown(text) + "\n")


def shown(text: str) -> str:
    """Each line of `text` `visible` (reports/text.py): control characters escaped."""
    from backfill_ctl.reports.text import visible

    return "\n".join(visible(line) for line in text.split("\n"))


_SEVERITY_STYLE = {"error": "red", "warning": "yellow", "notice": "cyan"}


def print_diagnostics(
    diagnostics: Iterable[Diagnostic], *, code: bool = False, stream: TextIO | None = None
) -> None:
    """One diagnostic per line (and its hint), the severity coloured on a terminal."""
    stream = stream or sys.stderr
    for diag in diagnostics:
        head, _, rest = shown(diag.format(code=code)).partition(f": {diag.severity}")
        word = paint(diag.severity, _SEVERITY_STYLE[diag.severity], stream)
        stream.write(f"{head}: {word}{rest}\n")


class Terminal:
    """The sink reporters write to (reports/base.py): data on stdout, notes and
    diagnostics beside it on stderr, the step summary to $GITHUB_STEP_SUMMARY."""

    def __init__(self, *, flush: bool = False) -> None:
        self.flush = flush  # after each write: a watched listing shows at once

    def write(self, text: str) -> None:
        sys.stdout.write(text)
        if self.flush:
            sys.stdout.flush()

    def note(self, text: str) -> None:
        err(text)

    def diagnostics(self, diagnostics: Iterable[Diagnostic], *, code: bool, data: bool) -> None:
        print_diagnostics(diagnostics, code=code, stream=sys.stdout if data else None)

    def step_summary(self, text: Callable[[], str]) -> None:
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if not summary:
            return
        path = Path(summary)
        try:
            with path.open("a", encoding="utf-8") as fh:
                fh.write(text())
        except OSError as exc:
            raise UsageError(f"$GITHUB_STEP_SUMMARY {path}: cannot write: {exc.strerror}") from exc
