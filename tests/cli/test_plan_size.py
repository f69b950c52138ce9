"""A Backfill too large to plan is refused before its instances are made, by every command
that plans, in a process that could not hold them (the pull-request check runs on
untrusted specs: planning must never exhaust memory)."""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.builders import backfill, dump, node, resource_group, workspace
from tests.cli.helpers import CLEAN_ENV, NOW, REPO, line_of, run, write_files

# Far less than a plan of a hundred million instances needs; ample for one of a few.
MEMORY = 512 << 20

# A minutely node over two centuries: 1,440 instances a day x 73,049 dates.
HUGE_DATES = [{"from": "1900-01-01", "to": "2099-12-31"}]
HUGE = 1440 * 73_049


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # file names in messages are the paths as given


def write_specs(root: Path, schedule: str, dates: list[Any]) -> None:
    write_files(
        root / "specs",
        {
            "all.yaml": dump(
                workspace(operators=("ops",)),
                resource_group("rg"),
                node("a", schedule, resourceGroup="rg", command=["sleep", "5"]),
                backfill(dates=dates),
            )
        },
    )


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def backfillctl(*args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in a fresh process limited to `MEMORY` of address space."""
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    return subprocess.run(
        [sys.executable, "-m", "backfill_ctl", *args],
        env={**env, "PYTHONPATH": str(REPO), "TERM": "dumb"},
        preexec_fn=_limit_memory,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "command",
    [
        ["check", "specs", "--now", NOW],
        ["plan", "specs", "--now", NOW],
        ["plan", "specs", "--now", NOW, "-o", "json"],
        ["validate", "specs"],
        ["apply", "specs", "--now", NOW, "--dry-run"],
    ],
    ids=lambda command: " ".join(c for c in command if c not in ("--now", NOW)),
)
def test_a_plan_too_large_is_refused_at_the_backfill_s_dates(
    tmp_path: Path, command: list[str]
) -> None:
    write_specs(tmp_path, "* * * * *", HUGE_DATES)

    done = backfillctl(*command, "--as", "ops")

    at = line_of((tmp_path / "specs" / "all.yaml").read_text(), "dates:")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    # check reports on stdout; check and apply name each finding's code
    lines = (done.stdout + done.stderr).replace(" [plan-too-large]", "").splitlines()
    assert [line for line in lines if ": error: " in line] == [
        f"specs/all.yaml:{at}:3: error: $.spec.dates: would plan up to "
        f"{HUGE:,} instances (a: {HUGE:,}), more than the 2,000,000 backfillctl plans at once"
    ]


def _files(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_apply_of_a_plan_too_large_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    write_specs(tmp_path, "0 1 * * *", ["2024-03-01"])
    assert run("apply", "specs", "--as", "ops", "--now", NOW).exit_code == 0
    store = _files(tmp_path / ".backfillctl")
    write_specs(tmp_path, "* * * * *", HUGE_DATES)

    done = backfillctl("apply", "specs", "--as", "ops", "--now", NOW)

    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1] == (
        "apply refused: 1 error finding(s); fix them first "
        "(checks.stopOnRisk: false does not accept these)"
    )
    assert _files(tmp_path / ".backfillctl") == store
