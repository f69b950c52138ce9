"""Values without pydantic (cli/coercion.py) are Typer's values, for every parameter of
every verb: each sample value coerces to what Typer's own coercion gives, or fails with
its error. And a command run in a fresh process does not import pydantic."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param

from backfill_ctl.cli import coercion
from backfill_ctl.cli.main import VERBS, app, load_verb
from tests.cli.helpers import REPO

SAMPLES: list[Any] = [
    "x",
    "",
    "zoë ☕",
    "0",
    "12",
    "-3",
    "007",
    "1_000",
    " 5",
    "1.5",
    "0.05",
    "0.01",
    "-1",
    "1e3",
    "inf",
    "nan",
    "true",
    "json",
    "JSON",
    "bash",
    "table",
    "nope",
    ".",
    "-",
    "missing/dir/plan.json",
    7,
    2.5,
    True,
    ["a", "b"],
    ("a",),
    [],
]


def parameters() -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []

    def walk(command: Any, path: str) -> None:
        found.extend((f"{path} {p.name}", p) for p in command.params)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    for verb in VERBS:
        walk(load_verb(verb), verb)
    walk(typer.main.get_command(app), "backfillctl")
    return found


def outcome(run: Any, value: Any) -> tuple[str, Any]:
    try:
        result = run(value)
    except BadParameter as exc:
        return "error", exc.format_message()
    return "value", (type(result), result)


@pytest.mark.parametrize(("name", "param"), parameters(), ids=lambda x: str(x))
def test_each_value_is_typers(name: str, param: Any) -> None:
    descriptor = param.type_descriptor
    typers = build_runtime_param(descriptor)
    ours = coercion.Native(
        parameter_info=descriptor.parameter_info,
        annotation=descriptor.annotation,
        descriptor=descriptor,
    )
    ctx = typer.main.get_command(app).context_class(typer.main.get_command(app))
    for value in SAMPLES:
        expected = outcome(lambda v: typers.coerce(v, param=param, ctx=ctx), value)
        got = outcome(lambda v: ours.coerce(v, param=param, ctx=ctx), value)
        assert got == expected, (name, value)


def test_plain_values_need_no_typer_fallback() -> None:
    """The values our verbs are given every day are converted here."""
    assert coercion.plain(int, _info(), "12", None, None) == 12
    assert coercion.plain(float, _info(), "0.5", None, None) == 0.5
    assert coercion.plain(list[str], _info(), ("a", "b"), None, None) == ["a", "b"]
    assert coercion.plain(Path, _info(), "plan.json", None, None) == Path("plan.json")
    assert coercion.plain(int, _info(), "1e3", None, None) is coercion._UNSURE


def _info() -> Any:
    return typer.models.OptionInfo()


@pytest.mark.parametrize(
    "argv",
    [
        ["--version"],
        ["validate", "specs"],
        ["plan", "specs", "--as", "oncall", "--now", "2024-03-20", "-o", "json"],
        ["get", "--help"],
    ],
)
def test_a_command_does_not_import_pydantic(argv: list[str]) -> None:
    probe = (
        "import sys\n"
        f"sys.argv = ['backfillctl', *{argv!r}]\n"
        "from backfill_ctl.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "sys.stdout.flush()\n"
        "print('pydantic' in sys.modules, file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stderr.strip().splitlines()[-1] == "False", done.stderr
