"""The example repo in specs/ validates, plans and runs to the end, as the README promises."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backfill_ctl.spec.loader import load_specs
from backfill_ctl.usecases.plan import make_plan

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
NOW = datetime(2024, 3, 20, 1, 0, tzinfo=UTC)


def test_the_examples_are_valid_and_plan_for_the_on_call_operator() -> None:
    specs = load_specs([str(SPECS)])
    assert specs.diagnostics == []
    assert (len(specs.workspaces), len(specs.resource_groups), len(specs.nodes)) == (2, 3, 16)
    plan, diagnostics = make_plan(specs, NOW, "oncall")
    assert diagnostics == []
    summaries = {bp.name: bp.summary() for bp in plan.backfills}
    assert summaries == {
        "clicks-late-data": {
            "instances": 14,
            "dryRun": 0,
            "nodes": 4,
            "dates": 1,
            "groups": 1,
            "waitingForTime": 0,
        },
        "dw-rebuild-2024-01": {
            "instances": 28,
            "dryRun": 3,
            "nodes": 7,
            "dates": 4,
            "groups": 1,
            "waitingForTime": 0,
        },
        "fix-orders-2024-03": {
            "instances": 40,
            "dryRun": 8,
            "nodes": 5,
            "dates": 8,
            "groups": 2,
            "waitingForTime": 0,
        },
    }


def test_the_examples_show_each_selection_method() -> None:
    specs = load_specs([str(SPECS)])
    methods = {b.select.method for b in specs.backfills.values()}
    assert methods == {"descendants", "link", "workspace"}


def test_a_dw_engineer_cannot_run_the_ods_backfill() -> None:
    plan, diagnostics = make_plan(load_specs([str(SPECS)]), NOW, "bob")
    assert plan.backfills == ()
    assert (
        "'bob' may not operate target node 'ods_order_items' (allowed: alice, dora, oncall); the "
        "backfill cannot run" in [d.message for d in diagnostics]
    )


def test_the_readme_opens_with_running_the_examples() -> None:
    first = (ROOT / "README.md").read_text().split("```sh\n")[1].split("\n")[0]
    assert first.endswith(
        "pip install . && backfillctl apply specs/ --as oncall --wait && backfillctl get backfills"
    )


def test_the_examples_run_to_the_end_on_the_local_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.cli.helpers import run

    shutil.copytree(SPECS, tmp_path / "specs", ignore=shutil.ignore_patterns("out", "__pycache__"))
    monkeypatch.chdir(tmp_path)

    applied = run("apply", "specs/", "--as", "oncall", "--wait")

    assert applied.exit_code == 0, applied.stderr
    assert applied.stderr.splitlines()[-3:] == [
        "backfill/clicks-late-data: succeeded",
        "backfill/dw-rebuild-2024-01: succeeded",
        "backfill/fix-orders-2024-03: succeeded",
    ]
    listed = run("get", "backfills").stdout.splitlines()[1:]
    assert [line.split()[1] for line in listed] == ["Succeeded"] * 3
    # Every real instance wrote its partition: one file per node and business date (hour).
    out = tmp_path / "specs" / "out"
    assert sorted(p.name for p in (out / "dwd_orders").iterdir())[:2] == [
        "20240129.txt",
        "20240130.txt",
    ]
    assert (
        (out / "dwd_orders" / "20240301.txt")
        .read_text()
        .startswith("node=dwd_orders pt=20240301 hour= cyctime=20240302020000")
    )
