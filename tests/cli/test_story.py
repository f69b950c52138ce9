"""An operator's day, end to end on the local backend with real processes: a backfill
fails, describe and logs say why, the spec is fixed and applied, the failed instance is
rerun and the backfill finishes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.builders import API, backfill, dump, node, resource_group, workspace
from tests.cli.helpers import NOW, run, write_files

CONFIG = {"apiVersion": API, "kind": "Config", "spec": {"backend": "local"}}
WRITE = 'echo "$BACKFILL_NODE $BACKFILL_BIZDATE" >> done.txt'
BROKEN = 'echo "no such table: clicks" >&2; exit 3'


def write_specs(root: Path, load_command: str) -> str:
    docs = (
        workspace(operators=("ops",)),
        resource_group("rg", 2),
        node("extract", resourceGroup="rg", command=WRITE),
        node("load", upstream=["extract"], resourceGroup="rg", command=load_command),
        backfill(
            "late-clicks",
            {"method": "descendants", "roots": ["extract"]},
            dates=[{"from": "2024-03-01", "to": "2024-03-02"}],
        ),
    )
    write_files(root / "specs", {"backfillctl.yaml": dump(CONFIG), "catalog.yaml": dump(*docs)})
    return str(root / "specs")


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli(*args: str) -> tuple[int, str, str]:
    result = run(*args, env={"BACKFILLCTL_ACTOR": "ops"})
    return result.exit_code, result.stdout, result.stderr


def test_a_failed_backfill_is_fixed_rerun_and_finishes(repo: Path) -> None:
    specs = write_specs(repo, BROKEN)

    # 1. The first date's load fails: the backfill stops there, the second date waits.
    code, _, err = cli("apply", specs, "--now", NOW, "--wait")
    assert code == 1
    assert err.splitlines()[-2] == "backfill/late-clicks: failed"
    code, listed, _ = cli("get", "instances", "--state", "failed", "-o", "name")
    assert code == 0
    (failed,) = listed.split()
    said = err.splitlines()[-1]  # which one failed, how, and where its log is
    assert said.startswith(f"  {failed} (load 2024-03-01): exit code ")
    assert said.endswith(f"; its log: backfillctl logs {failed.removeprefix('instance/')}")
    code, text, _ = cli("describe", "backfill/late-clicks")
    assert "Status:             Failed" in text
    assert "exit code 3" in text
    assert "wait behind 2024-03-01, which has 1 failed" in text
    code, log, _ = cli("logs", failed)
    assert (code, log) == (0, "no such table: clicks\n")

    # 2. The fix is applied: the failed and the waiting load take the new command.
    write_specs(repo, WRITE)
    code, out, _ = cli("apply", specs, "--now", NOW)
    assert (code, out.splitlines()[0]) == (0, "~ backfill/late-clicks: +0 ~2 -0")

    # 3. Rerun the failed instance; the backfill is open again and runs to the end.
    code, out, _ = cli("rerun", "--backfill", "late-clicks", "--state", "failed")
    assert (code, out) == (0, f"{failed} rerun\n")
    code, out, _ = cli("get", "backfills")
    assert out.splitlines()[1].split()[:2] == ["late-clicks", "Pending"]
    code, _, err = cli("apply", specs, "--now", NOW, "--wait")
    assert code == 0, err
    assert err.splitlines()[-1] == "backfill/late-clicks: succeeded"

    code, out, _ = cli("get", "backfills")
    assert out.splitlines()[1].split()[:4] == ["late-clicks", "Succeeded", "4", "4"]
    assert (repo / "specs" / "done.txt").read_text().splitlines() == [
        "extract 20240301",
        "load 20240301",
        "extract 20240302",
        "load 20240302",
    ]
    code, out, _ = cli("get", "instances", failed, "-o", "wide")
    assert " 2 " in out.splitlines()[1]  # the rerun is attempt 2
