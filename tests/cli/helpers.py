"""Running the real `backfillctl` app in-process, and the spec files CLI tests share."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from backfill_ctl.cli.main import app
from tests.builders import dump, node, workspace, write

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_SPECS = REPO / "specs"

# Every variable the CLI reads: each invocation starts without them (CI sets GITHUB_ACTOR).
CLEAN_ENV: dict[str, str | None] = dict.fromkeys(
    ("BACKFILLCTL_ACTOR", "GITHUB_ACTOR", "BACKFILLCTL_NOW", "BACKFILLCTL_DEBUG", "NO_COLOR")
)
NOW = "2024-03-20T01:00:00+00:00"  # builders.NOW: 09:00 in Shanghai

# A workspace operated by `ops` and a chain a -> b -> c of daily nodes owned by alice.
CATALOG = dump(
    workspace("ws", operators=("ops",)),
    node("a"),
    node("b", upstream=["a"]),
    node("c", upstream=["b"]),
)


def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Result:
    """`backfillctl ARGS` through the real Typer app, stdout and stderr kept apart.

    Any exception other than an exit escapes (catch_exceptions=False), so a bug in a
    command fails the test instead of passing as exit code 1.
    """
    result = CliRunner().invoke(
        app, list(args), input=stdin, env={**CLEAN_ENV, **(env or {})}, catch_exceptions=False
    )
    assert "Traceback" not in result.stdout + result.stderr
    return result


def write_files(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        if isinstance(content, bytes):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(content)
        else:
            write(root / name, content)


def drop(doc: dict[str, Any], *path: str) -> dict[str, Any]:
    """`doc` with the field at `path` removed (for missing-field mistakes)."""
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return doc


def plan_json(result: Result) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(result.stdout)
    return data
