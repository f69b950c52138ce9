"""Running the real `backfillctl` app in-process, and the spec files CLI tests share."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from backfill_ctl.cli.main import app
from tests.builders import backfill, config, dump, node, resource_group, workspace, write

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_SPECS = REPO / "specs"

# Every variable the CLI reads: each invocation starts without them (CI sets GITHUB_ACTOR).
CLEAN_ENV: dict[str, str | None] = dict.fromkeys(
    (
        "BACKFILLCTL_ACTOR",
        "GITHUB_ACTOR",
        "BACKFILLCTL_NOW",
        "BACKFILLCTL_DEBUG",
        "BACKFILLCTL_STATE",
        "NO_COLOR",
        "FORCE_COLOR",  # colour asked for off a terminal (test_color sets it)
        "GITHUB_STEP_SUMMARY",  # in CI, check -o github would write the real step summary
    )
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


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based number of the `nth` line of `text` that contains `needle`."""
    hits = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[nth - 1]


# Variables that would point git at another repository (a git hook sets some of them).
_GIT_LOCATION = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY")


def isolate_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """git, here and inside backfillctl, sees only repositories below `tmp_path`.

    No user or system configuration (signing, hooks, a default branch), and no
    discovery of a repository above `tmp_path`, which may lie inside a checkout.
    """
    for name in _GIT_LOCATION:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))


class GitRepo:
    """A real git repository on disk, for `check --base`: commit a base, then change it."""

    def __init__(self, root: Path, branch: str = "main") -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.git("init", "--quiet", f"--initial-branch={branch}")
        self.git("config", "user.email", "tests@example.com")
        self.git("config", "user.name", "Tests")
        self.git("config", "commit.gpgsign", "false")

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=self.root, capture_output=True, text=True, check=False, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def write(self, files: dict[str, str | bytes]) -> None:
        write_files(self.root, files)

    def remove(self, *names: str) -> None:
        for name in names:
            (self.root / name).unlink()

    def commit(self, message: str = "change") -> str:
        """Commit every change of the working tree; the new commit's id."""
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD").strip()


def ran_checkout(root: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """`root`, made a checkout (specs/, a local-backend Config) whose backfill of one node
    `apply --wait` ran to its end from `root` (now the current directory): its store and
    the attempt's files are in root/.backfillctl. The instance's ID."""
    root.mkdir()
    monkeypatch.chdir(root)
    nodes = dump(config(backend="local"), workspace(operators=("ops",)), resource_group("rg"))
    catalog = dump(node("a", resourceGroup="rg", command="echo ran"), backfill())
    write_files(root / "specs", {"backfillctl.yaml": nodes, "catalog.yaml": catalog})
    ran = run("apply", "specs", "--as", "ops", "--now", NOW, "--wait")
    assert ran.exit_code == 0, ran.stderr
    return run("get", "instances", "-o", "name").stdout.split()[0].removeprefix("instance/")


def files_under(root: Path) -> dict[Path, bytes]:
    """The files below `root`, with their content."""
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def interruptible() -> None:
    """Before a child's exec (`preexec_fn`): SIGINT as a terminal's Ctrl-C finds it. A
    shell without job control runs its background jobs (a CI run's among them) with
    SIGINT ignored, which children inherit, and Python then installs no KeyboardInterrupt
    for it: a test of Ctrl-C would test nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
