"""Issue 11 item 5: every verb's `--help` has an Examples section, and they work.

Through the real Typer app. The examples of the verbs that only read run against a
copy of the example specs (`specs/`, in a git repository whose origin/main is HEAD,
for `check --base`) and the store that applying them with `--now` makes; they may
exit 1 (findings, changes) but never 2 (a mistake in the example)."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from backfill_ctl.cli.main import VERBS
from backfill_ctl.state import open_store
from tests.cli.helpers import EXAMPLE_SPECS, NOW, GitRepo, isolate_git, run
from tests.usecases.test_progress import attempt

COMMANDS = [*VERBS, "get backfills", "get instances", "backend check"]
READING = [
    "validate",
    "plan",
    "check",
    "schema",
    "explain",
    "get",
    "get backfills",
    "get instances",
    "describe",
    "logs",
    "events",
]
# Where a shell line stops being backfillctl's arguments.
SHELL = {">", "|", "&&", "||", ";"}
# Examples that do not end by themselves (they follow or watch).
ENDLESS = {"-w", "--watch", "-f", "--follow"}
# How the examples name an instance; the test's store holds a real one.
PLACEHOLDER = re.compile(r"\b(ID|a1b2c3)\b|<id>")


def examples(command: str) -> list[str]:
    """The lines of the Examples section of `backfillctl COMMAND --help`."""
    result = run(*command.split(), "--help")
    assert result.exit_code == 0, result.stderr
    assert "Examples:\n" in result.stdout, f"{command} --help has no Examples section"
    section = result.stdout.split("Examples:\n", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in section.splitlines() if line.strip()]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_verb_has_examples(command: str) -> None:
    lines = examples(command)
    assert any(line.startswith("backfillctl ") for line in lines), lines


def arguments(line: str, instance: str) -> list[str] | None:
    """backfillctl's arguments in an example line; None when it does not end by itself."""
    if line.endswith("\\"):
        return None
    words = shlex.split(PLACEHOLDER.sub(instance, line), comments=True)
    assert words[0] == "backfillctl", line
    args: list[str] = []
    for word in words[1:]:
        if word in SHELL:
            break
        args.append(word)
    return None if ENDLESS & set(args) else args


@pytest.fixture
def example_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The example specs applied in the current directory; an instance id with a log."""
    isolate_git(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    shutil.copytree(EXAMPLE_SPECS, tmp_path / "specs")
    repo = GitRepo(tmp_path)
    repo.commit("example specs")
    repo.git("update-ref", "refs/remotes/origin/main", "HEAD")
    applied = run("apply", "specs/", "--as", "oncall", "--now", NOW)
    assert applied.exit_code == 0, applied.stderr
    listed = run("get", "instances", "-b", "fix-orders-2024-03", "-o", "name")
    instance = listed.stdout.split()[0].removeprefix("instance/")
    log = tmp_path / "attempt.log"
    log.write_text("loading 2024-03-01\ndone\n")
    started = log.stat().st_mtime - 60
    store = open_store(tmp_path / ".backfillctl" / "state.db")
    attempt(store, instance, start=started, end=started + 30, log=str(log))
    return instance


@pytest.mark.parametrize("command", READING)
def test_examples_of_reading_verbs_run(command: str, example_repo: str) -> None:
    ran = 0
    for line in examples(command):
        args = arguments(line, example_repo)
        if args is None:
            continue
        result = run(*args)
        assert result.exit_code in (0, 1), f"{line}\n{result.stderr}"
        ran += 1
    assert ran, f"no example of {command} ran"
