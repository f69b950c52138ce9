"""Shell completion through the real Typer app, with Click's completion env protocol.

A shell runs `backfillctl` with `_BACKFILLCTL_COMPLETE=bash_complete`, the words typed
so far in `COMP_WORDS` and the index of the word being completed in `COMP_CWORD`; the
candidates come back one per line. zsh and fish pass the line in `_TYPER_COMPLETE_ARGS`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backfill_ctl.cli.main import app
from tests.cli.helpers import CLEAN_ENV, EXAMPLE_SPECS, NOW, isolate_git, run

BACKFILLS = ["clicks-late-data", "dw-rebuild-2024-01", "fix-orders-2024-03"]


def complete(line: str, env: dict[str, str] | None = None, shell: str = "bash") -> list[str]:
    """The candidates for the last word of `line` (empty when `line` ends in a space)."""
    words = line.split()
    if line.endswith(" "):
        words.append("")
    protocol = {
        "bash": {"COMP_WORDS": " ".join(words), "COMP_CWORD": str(len(words) - 1)},
        "zsh": {"_TYPER_COMPLETE_ARGS": line},
        "fish": {"_TYPER_COMPLETE_ARGS": line, "_TYPER_COMPLETE_FISH_ACTION": "get-args"},
    }[shell]
    result = CliRunner().invoke(
        app,
        [],
        prog_name="backfillctl",
        env={**CLEAN_ENV, **protocol, "_BACKFILLCTL_COMPLETE": f"{shell}_complete", **(env or {})},
    )
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr == ""
    return result.stdout.splitlines()


@pytest.fixture
def applied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example specs applied to the default store, the current directory their root."""
    isolate_git(monkeypatch, tmp_path)
    shutil.copytree(EXAMPLE_SPECS, tmp_path / "specs")
    monkeypatch.chdir(tmp_path)
    result = run("apply", "specs", "--now", NOW)
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / ".backfillctl" / "state.db").is_file()
    return tmp_path


def test_verbs_and_flags_complete() -> None:
    assert complete("backfillctl ge") == ["get"]
    assert {"apply", "describe", "explain", "completion", "logs"} <= set(complete("backfillctl "))
    assert {"--backfill", "--node", "--bizdate"} <= set(complete("backfillctl get instances --"))
    assert complete("backfillctl completion ") == ["bash", "zsh", "fish"]


def test_backfill_names_come_from_the_store(applied: Path) -> None:
    assert complete("backfillctl get backfills ") == BACKFILLS
    assert complete("backfillctl get backfills dw") == ["dw-rebuild-2024-01"]
    assert complete("backfillctl get instances --backfill ") == BACKFILLS
    assert complete("backfillctl get instances -b f") == ["fix-orders-2024-03"]
    assert complete("backfillctl stop --backfill c") == ["clicks-late-data"]
    described = complete("backfillctl describe backfill/")
    assert described == [f"backfill/{name}" for name in BACKFILLS]


def test_a_store_named_on_the_command_line_or_in_the_environment(
    applied: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (applied / ".backfillctl").rename(elsewhere / "store")  # with its WAL
    moved = elsewhere / "store" / "state.db"
    assert complete("backfillctl get backfills ") == []
    assert complete(f"backfillctl get backfills --state-file {moved} ") == BACKFILLS
    assert complete("backfillctl get backfills ", env={"BACKFILLCTL_STATE": str(moved)}) == (
        BACKFILLS
    )


def test_instance_ids_come_from_the_store(applied: Path) -> None:
    listed = run("get", "instances", "-b", "clicks-late-data", "-o", "name")
    ids = complete("backfillctl logs ")
    assert len(ids) > 10
    some = ids[0]
    assert complete(f"backfillctl logs {some[:6]}")[0] == some
    assert complete(f"backfillctl logs instance/{some[:6]}")[0] == f"instance/{some}"
    targets = complete("backfillctl describe ")
    assert targets[:3] == [f"backfill/{name}" for name in BACKFILLS]
    assert set(ids) <= set(targets)
    assert complete(f"backfillctl rerun {some}") == [some]
    assert complete(f"backfillctl get instances {some}") == [some]
    assert listed.exit_code == 0


def test_node_names_come_from_the_specs_and_the_store(
    applied: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    nodes = complete("backfillctl get instances --node ")
    assert {"ods_orders", "dwd_orders", "ads_store_kpi"} <= set(nodes)
    assert complete("backfillctl get instances --node dwd_ord") == ["dwd_orders"]
    # without a store: from the specs under the current directory alone
    monkeypatch.chdir(tmp_path_factory.mktemp("bare"))
    shutil.copytree(EXAMPLE_SPECS, Path.cwd() / "specs")
    assert complete("backfillctl stop --node ods_orders") == ["ods_orders"]
    assert not (Path.cwd() / ".backfillctl").exists()


def test_explain_paths_and_kinds_come_from_the_schemas() -> None:
    assert complete("backfillctl explain Back") == ["Backfill."]
    assert "Backfill.spec.select." in complete("backfillctl explain Backfill.spec.s")
    assert complete("backfillctl explain Backfill.spec.select.me") == [
        "Backfill.spec.select.method"
    ]
    assert complete("backfillctl explain Backfill.spec.dates.f") == ["Backfill.spec.dates.from"]
    assert complete("backfillctl explain Nope.spec") == []
    assert complete("backfillctl schema N") == ["Node"]


def test_no_store_means_no_values_and_no_store_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert complete("backfillctl get backfills ") == []
    assert complete("backfillctl logs ") == []
    assert list(tmp_path.iterdir()) == []


def test_a_broken_store_completes_nothing_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".backfillctl").mkdir()
    (tmp_path / ".backfillctl" / "state.db").write_text("not a database\n")
    assert complete("backfillctl get backfills ") == []
    assert complete("backfillctl describe ") == []
    (tmp_path / "dir.db").mkdir()
    assert complete("backfillctl logs ", env={"BACKFILLCTL_STATE": str(tmp_path / "dir.db")}) == []
    # verbs still complete
    assert complete("backfillctl unf") == ["unfreeze"]


def test_an_unknown_instruction_completes_nothing() -> None:
    result = CliRunner().invoke(
        app, [], prog_name="backfillctl", env={**CLEAN_ENV, "_BACKFILLCTL_COMPLETE": "tcsh_x"}
    )
    assert (result.exit_code, result.stdout) == (0, "")


def test_zsh_and_fish_offer_backfill_names(applied: Path) -> None:
    zsh = "\n".join(complete("backfillctl get backfills ", shell="zsh"))
    assert all(f'"{name}"' in zsh for name in BACKFILLS)
    fish = complete("backfillctl get backfills ", shell="fish")
    assert [line.split("\t")[0] for line in fish] == BACKFILLS


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_the_script(shell: str) -> None:
    result = run("completion", shell)
    assert result.exit_code == 0
    assert "_BACKFILLCTL_COMPLETE=" in result.stdout
    assert "backfillctl" in result.stdout


def test_completion_refuses_an_unknown_shell() -> None:
    assert run("completion", "tcsh").exit_code == 2


def test_the_installed_command_completes_fast(applied: Path) -> None:
    """The real console script, as a shell runs it: as fast as --version, give or take."""
    exe = Path(sys.executable).parent / "backfillctl"
    if not exe.exists():
        pytest.skip("backfillctl is not installed as a command")
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}

    def timed(extra: dict[str, str], *args: str) -> tuple[float, str]:
        start = time.perf_counter()
        done = subprocess.run(
            [str(exe), *args], env={**env, **extra}, capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0 and done.stderr == ""
        return time.perf_counter() - start, done.stdout

    version = min(timed({}, "--version")[0] for _ in range(5))
    protocol = {
        "_BACKFILLCTL_COMPLETE": "bash_complete",
        "COMP_WORDS": "backfillctl get instances --node ",
        "COMP_CWORD": "4",
    }
    spent, out = min(timed(protocol) for _ in range(5))
    assert "dwd_orders" in out.split()
    print(f"completion {spent:.3f}s, --version {version:.3f}s")
    assert spent < version + 0.4  # Typer resolving the words is most of it
