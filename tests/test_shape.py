"""The code-shape check (.ci/shape, issue 10) on small synthetic modules.

It is run as CI runs it, on real files: a long or complex function, or a long module, is
reported unless a `# shape: <reason>` comment stands next to it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("radon")

SHAPE = Path(__file__).resolve().parents[1] / ".ci" / "shape"


def shape(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SHAPE), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


def long_function(name: str, lines: int, comment: str = "", above: str = "") -> str:
    body = "".join(f"    x{i} = {i}\n" for i in range(lines - 2))
    head = f"{above}\n" if above else ""
    return f"{head}def {name}() -> int:{comment}\n{body}    return 0\n"


def complex_function(name: str, branches: int, comment: str = "") -> str:
    body = "".join(f"    if x == {i}:\n        return {i}\n" for i in range(branches))
    return f"def {name}(x: int) -> int:{comment}\n{body}    return -1\n"


def test_a_short_simple_module_passes(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text(long_function("fine", 60) + complex_function("easy", 14))
    result = shape(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "shape: ok" in result.stdout


def test_a_long_function_is_caught(tmp_path: Path) -> None:
    source = "import os\n\n\n" + long_function("too_long", 61)
    (tmp_path / "mod.py").write_text(source)
    result = shape(tmp_path)
    assert result.returncode == 1
    assert f"{tmp_path / 'mod.py'}:4: too_long: 61 lines / CC 1" in result.stdout
    assert "# shape: <reason>" in result.stderr  # the fix hint


def test_a_complex_function_and_a_method_are_caught(tmp_path: Path) -> None:
    method = "class A:\n" + "".join(
        f"    {line}\n" for line in complex_function("m", 15).splitlines()
    ).replace("(x: int)", "(self, x: int)")
    (tmp_path / "mod.py").write_text(complex_function("branchy", 15) + method)
    result = shape(tmp_path)
    assert result.returncode == 1
    assert ":1: branchy: 32 lines / CC 16" in result.stdout
    assert ": A.m: 32 lines / CC 16" in result.stdout


def test_a_reason_on_the_def_line_or_above_it_is_respected(tmp_path: Path) -> None:
    source = (
        long_function("same_line", 80, comment="  # shape: one table, read top to bottom")
        + "\n\n"
        + long_function("line_above", 80, above="# shape: a lexer's state machine")
        + "\n\n"
        + complex_function("decorated", 20, comment="  # shape: the dispatch of one step")
    )
    (tmp_path / "mod.py").write_text(source)
    result = shape(tmp_path)
    assert result.returncode == 0, result.stdout


def test_a_comment_further_away_is_no_reason(tmp_path: Path) -> None:
    source = "# shape: too far\n\n" + long_function("far", 70) + "# shape: after\n"
    (tmp_path / "mod.py").write_text(source)
    result = shape(tmp_path)
    assert result.returncode == 1
    assert ":3: far: 70 lines" in result.stdout


def test_a_long_module_needs_a_reason_in_its_head(tmp_path: Path) -> None:
    short = "".join(f"x{i} = {i}\n" for i in range(401))
    (tmp_path / "big.py").write_text('"""Big."""\n' + short)
    (tmp_path / "ok.py").write_text('"""Big, why."""\n# shape: generated table\n' + short)
    (tmp_path / "late.py").write_text('"""Big."""\n' + "\n" * 30 + "# shape: late\n" + short)
    result = shape(tmp_path)
    assert result.returncode == 1
    assert f"{tmp_path / 'big.py'}:1: module: 402 lines" in result.stdout
    assert "late.py:1: module" in result.stdout
    assert "ok.py" not in result.stdout


def test_report_mode_lists_but_passes(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text(long_function("too_long", 61))
    result = shape("--report", tmp_path / "mod.py")
    assert result.returncode == 0
    assert "too_long: 61 lines" in result.stdout
