"""reports.text.table: kubectl-like plain tables drawn by rich, the same text as joined."""

from __future__ import annotations

import subprocess
import sys

import pytest

from backfill_ctl.reports import text
from backfill_ctl.reports.text import table

ROWS = [
    ["NAME", "STATE", "NODE"],
    ["inst-0001-a-very-long-instance-id-that-no-terminal-is-wide-enough-for-" * 2, "ok", ""],
    ["[bold]b[/bold]", "", "n:1"],
    ["日本", "running", "x"],
]


def test_two_spaces_between_columns_header_first_nothing_wrapped_or_styled() -> None:
    lines = table(ROWS)
    long = ROWS[1][0]
    assert lines[0] == "NAME" + " " * (len(long) - 4) + "  STATE    NODE"
    assert lines[1] == f"{long}  ok"  # no wrapping, trailing blanks cut
    assert lines[2] == "[bold]b[/bold]" + " " * (len(long) - 14) + "           n:1"
    assert lines[3].startswith("日本" + " " * (len(long) - 4) + "  running")  # 2 cells each
    assert not any("\x1b" in line for line in lines)


def test_without_header_and_with_kept_widths() -> None:
    assert table([["a", "b"], ["cc", "d"]], header=False, widths=[4, 1]) == ["a     b", "cc    d"]


@pytest.mark.parametrize("header", [True, False])
def test_big_tables_are_joined_to_the_same_text(
    monkeypatch: pytest.MonkeyPatch, header: bool
) -> None:
    drawn = table(ROWS, header=header, widths=[3, 9])
    monkeypatch.setattr(text, "RICH_ROWS", 1)
    assert table(ROWS, header=header, widths=[3, 9]) == drawn


def test_forced_colour_does_not_colour_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")
    assert not any("\x1b" in line for line in table(ROWS))


def test_version_does_not_import_rich() -> None:
    code = "import sys; sys.argv = ['backfillctl', '--version']\n"
    code += "from backfill_ctl.cli.main import main\n"  # (console() would end the process)
    code += "try:\n    main()\nexcept SystemExit:\n    pass\nprint('rich' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines()[-1] == "False"
