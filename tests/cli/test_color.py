"""`--no-color` through the real app: no ANSI escapes, even where colour is forced."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.builders import dump, node
from tests.cli.helpers import run, write_files


@pytest.fixture
def invalid(tmp_path: Path) -> str:
    write_files(tmp_path, {"catalog.yaml": dump(node("a", upstream=["missing"]))})
    return str(tmp_path)


def test_force_color_colours_errors_and_no_color_takes_it_away(invalid: str) -> None:
    forced = run("validate", invalid, env={"FORCE_COLOR": "1"})
    assert forced.exit_code == 1
    assert "\x1b[" in forced.stderr  # the severity and "error:" in red

    plain = run("--no-color", "validate", invalid, env={"FORCE_COLOR": "1"})
    assert plain.exit_code == 1
    assert "\x1b" not in plain.stdout + plain.stderr
    assert plain.stderr == forced.stderr.replace("\x1b[31m", "").replace("\x1b[0m", "")


def test_no_color_is_for_one_run_only(invalid: str) -> None:
    run("--no-color", "validate", invalid)
    again = run("validate", invalid, env={"FORCE_COLOR": "1"})
    assert "\x1b[" in again.stderr


def test_no_color_env_does_the_same(invalid: str) -> None:
    result = run("validate", invalid, env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert "\x1b" not in result.stderr


def test_the_progress_console_follows_no_color() -> None:
    import io

    from backfill_ctl.cli import console

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert console.rich_console(Tty()).color_system is not None
    console.set_no_color(True)
    try:
        assert console.rich_console(Tty()).color_system is None
        assert console.paint("x", "red", Tty()) == "x"
    finally:
        console.set_no_color(False)
