"""The size of a plan, counted before it is made, and the ceiling it is held under."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

import backfill_ctl.usecases.plan as planning
from backfill_ctl.core import size
from backfill_ctl.core.semantics import validate
from backfill_ctl.core.size import Size, merged, plan_size, too_large
from backfill_ctl.spec.model import Period
from backfill_ctl.usecases.plan import make_plan
from tests.builders import NOW, backfill, node, specs_of, workspace

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
UTC_WS = workspace("ws", "UTC", operators=("ops",))
MARCH = [{"from": "2024-03-01", "to": "2024-03-10"}]


def counted(*docs: dict[str, Any], ws: dict[str, Any] = UTC_WS) -> tuple[Size, int]:
    """The counted size of the one Backfill of `docs`, and how many instances it plans."""
    specs = specs_of(ws, *docs)
    plan, diagnostics = make_plan(specs, NOW, None)
    assert [d.format() for d in diagnostics if d.is_error] == []
    (bp,) = plan.backfills
    return plan_size(specs.catalog(), bp.backfill, bp.scope), len(bp.instances)


def test_merged_ranges_are_disjoint_and_ascending() -> None:
    periods = [
        Period(date(2024, 3, 5), date(2024, 3, 7)),
        Period(date(2024, 3, 8), date(2024, 3, 8)),  # adjacent: one range
        Period(date(2024, 3, 1), date(2024, 3, 1)),
        Period(date(2024, 3, 6), date(2024, 3, 9)),  # overlapping
    ]
    assert [(date.fromordinal(a), date.fromordinal(b)) for a, b in merged(periods)] == [
        (date(2024, 3, 1), date(2024, 3, 1)),
        (date(2024, 3, 5), date(2024, 3, 9)),
    ]


@pytest.mark.parametrize(
    "docs",
    [
        # a daily chain over overlapping ranges and single dates
        (
            node("a"),
            node("b", upstream=["a"]),
            backfill(dates=[*MARCH, "2024-03-05", {"from": "2024-03-09", "to": "2024-03-20"}]),
        ),
        # hourly and half-hourly nodes cut by the time window (both ends inclusive)
        (
            node("a", "0 * * * *"),
            node("b", "*/30 * * * *", upstream=["a"]),
            backfill(dates=MARCH, timeWindow={"from": "00:00", "to": "01:00"}),
        ),
        # effective periods (of the scheduled day, business date + 1) cutting the dates
        (
            node("a", effective={"from": "2024-03-04", "to": "2024-03-08"}),
            node("b", upstream=["a"], effective={"to": "2024-03-03"}),
            node("c", upstream=["a"], effective={"from": "2025-01-01"}),
            backfill(dates=MARCH, order="descending"),
        ),
        # a monthly node: a dry-run instance on the dates it does not run
        (node("a"), node("m", "0 5 1 * *", upstream=["a"]), backfill(dates=MARCH)),
        # a daily node whose time is outside the window: none
        (
            node("a", "0 * * * *"),
            node("d", "0 5 * * *", upstream=["a"]),
            backfill(dates=MARCH, timeWindow={"from": "00:00", "to": "02:00"}),
        ),
    ],
    ids=["daily", "window", "effective", "monthly", "daily-outside-window"],
)
def test_the_count_is_the_planner_s_for_daily_or_finer_and_one_time_nodes(
    docs: tuple[dict[str, Any], ...],
) -> None:
    found, planned = counted(*docs)
    assert found.instances == planned


def test_the_count_bounds_calendar_and_dst_plans_from_above() -> None:
    """Counted as if every time ran on every date: an hourly node on Mondays (one week:
    24 + 6 dry-run instances, counted 7 x 24), and in Berlin on the day the clocks
    go forward (02:00 runs at 03:00, beside 03:00: one instance fewer than 24)."""
    week = [{"from": "2024-03-03", "to": "2024-03-09"}]
    assert counted(node("a", "0 * * * 1"), backfill(dates=week))[0].instances == 7 * 24
    assert counted(node("a", "0 * * * 1"), backfill(dates=week))[1] == 24 + 6
    berlin = workspace("ws", "Europe/Berlin", operators=("ops",))
    found, planned = counted(node("a", "0 * * * *"), backfill(dates=["2024-03-30"]), ws=berlin)
    assert (found.instances, planned) == (24, 23)


def test_the_largest_nodes_are_named_most_first() -> None:
    found, _ = counted(
        node("a"),
        node("h", "0 * * * *", upstream=["a"]),
        node("q", "*/15 * * * *", upstream=["a"]),
        node("z", upstream=["a"]),
        backfill(dates=MARCH),
    )
    assert found == Size(10 * (1 + 24 + 96 + 1), 10, 4, (("q", 960), ("h", 240), ("a", 10)))


def test_a_plan_fits_up_to_the_ceiling_itself() -> None:
    bf = specs_of(UTC_WS, node("a"), backfill()).backfills["bf"]
    ceiling = size.MAX_PLANNED
    assert too_large(bf, Size(ceiling, 1, 1, (("a", ceiling),))) is None
    refused = too_large(bf, Size(ceiling + 1, 1, 1, (("a", ceiling + 1),)))
    assert refused is not None
    assert (refused.code, refused.severity, refused.path) == (
        "plan-too-large",
        "error",
        ("spec", "dates"),
    )
    assert refused.message == (
        "would plan up to 2,000,001 instances (a: 2,000,001), more than the 2,000,000 "
        "backfillctl plans at once"
    )


def test_the_schema_says_the_ceiling_above_the_risk_threshold() -> None:
    schema = json.loads((SCHEMAS / "config.schema.json").read_text())
    checks = schema["properties"]["spec"]["properties"]["checks"]["properties"]
    assert f"Above {size.MAX_PLANNED:,} instances" in checks["maxInstances"]["description"]


def no_planning(*args: object) -> None:
    raise AssertionError("the planner ran")


def test_a_backfill_too_large_is_refused_by_validation_and_never_planned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(size, "MAX_PLANNED", 24)
    monkeypatch.setattr(planning, "plan_backfill", no_planning)
    specs = specs_of(UTC_WS, node("a"), node("b", "0 * * * *", upstream=["a"]), backfill())

    _, found = validate(specs, None)
    plan, diagnostics = make_plan(specs, NOW, None)

    message = (
        "would plan up to 25 instances (b: 24, a: 1), more than the 24 backfillctl plans at once"
    )
    assert [(d.code, d.message) for d in found] == [("plan-too-large", message)]
    assert [d.message for d in diagnostics if d.is_error] == [message]
    assert plan.backfills == ()


def test_the_date_node_pairs_the_planner_goes_through_count_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nodes outside their effective period plan nothing, but the planner still goes
    through each of their dates."""
    monkeypatch.setattr(size, "MAX_PLANNED", 19)
    old = {"to": "2020-12-31"}
    specs = specs_of(
        UTC_WS,
        node("a", effective=old),
        node("b", upstream=["a"], effective=old),
        backfill(dates=MARCH),
    )

    _, found = validate(specs, None)

    assert [d.message for d in found] == [
        "spans 10 business dates x 2 nodes, 20 pairs for the planner to go through, more "
        "than the 19 backfillctl plans at once"
    ]


def test_the_backfills_planned_together_fit_under_the_ceiling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each fits, not both: the first by name is planned, the second refused; planned
    on its own, the second fits."""
    monkeypatch.setattr(size, "MAX_PLANNED", 12)
    docs = (node("a"), backfill("x", dates=MARCH), backfill("y", dates=MARCH))

    plan, diagnostics = make_plan(specs_of(UTC_WS, *docs), NOW, None)

    assert [bp.name for bp in plan.backfills] == ["x"]
    assert [(d.backfill, d.message) for d in diagnostics if d.is_error] == [
        (
            "y",
            "would plan up to 10 instances (a: 10), more than the 2 that the Backfills planned "
            "before it leave of the 12 backfillctl plans at once",
        )
    ]
    alone, _ = make_plan(specs_of(UTC_WS, *docs), NOW, None, only=["y"])
    assert [bp.name for bp in alone.backfills] == ["y"]
