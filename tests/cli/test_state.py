"""Where the CLI finds its state store (cli/state.py): a path or a URL, from the flag,
$BACKFILLCTL_STATE or the Config, through the real app."""

from __future__ import annotations

from pathlib import Path

import pytest

from backfill_ctl.state import open_store
from tests.builders import backfill, dump, node, resource_group, workspace
from tests.cli.helpers import NOW, run, write_files


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_files(
        tmp_path / "specs",
        {
            "all.yaml": dump(
                workspace(operators=("ops",)),
                resource_group("rg", 2),
                node("a", resourceGroup="rg", command="true"),
                backfill(dates=["2024-03-01"]),
            )
        },
    )
    return tmp_path


@pytest.mark.parametrize(
    ("url", "where"),
    [("sqlite:///st/state.db", "st/state.db"), ("st/state.db", "st/state.db")],
)
def test_the_state_url_or_path_of_the_environment_names_the_same_file(
    repo: Path, url: str, where: str
) -> None:
    """A sqlite:/// URL, as the Config and `state migrate` take it, is not a file named
    `sqlite:` here."""
    result = run("apply", "specs", "--as", "ops", "--now", NOW, env={"BACKFILLCTL_STATE": url})

    assert result.exit_code == 0, result.stderr
    assert [i.state for i in open_store(repo / where).instances()] == ["pending"]
    assert not (repo / "sqlite:").exists()


def test_a_state_file_flag_takes_an_absolute_sqlite_url(repo: Path) -> None:
    store = repo / "elsewhere" / "state.db"
    url = f"sqlite:///{store}"  # (an absolute path: four slashes)

    assert run("apply", "specs", "--as", "ops", "--now", NOW, "--state", url).exit_code == 0
    result = run("get", "backfills", "--state-file", url, "-o", "name")

    assert (result.exit_code, result.stdout) == (0, "backfill/bf\n")
    assert store.exists()


def test_a_state_url_of_another_kind_is_refused(repo: Path) -> None:
    result = run("get", "backfills", "--state-file", "mysql://db/backfills")

    assert result.exit_code == 2
    assert "error: unsupported state URL (sqlite:/// or postgresql://)" in result.stderr
    assert not (repo / "mysql:").exists()
