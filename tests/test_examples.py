"""The example repo in specs/ validates and plans cleanly, as the README promises."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from backfill_ctl.planning import make_plan
from backfill_ctl.spec.loader import load_specs

SPECS = Path(__file__).resolve().parent.parent / "specs"
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
