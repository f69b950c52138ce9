"""The plan table for people: header lines, one row per scope node, the totals line."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

import pytest

from backfill_ctl.core.planner import Plan
from backfill_ctl.reports.plan_table import date_ranges, render_backfill, render_plan
from backfill_ctl.spec.loader import Specs
from backfill_ctl.usecases.plan import make_plan
from tests.builders import NOW, backfill, node, specs_of, workspace

D = date.fromisoformat


def planned(*docs: dict[str, Any], now: datetime = NOW) -> tuple[Plan, Specs]:
    specs = specs_of(*docs)
    plan, diagnostics = make_plan(specs, now, None)
    assert [d.format() for d in diagnostics if d.is_error] == []
    return plan, specs


def lines_of(*docs: dict[str, Any]) -> list[str]:
    plan, specs = planned(*docs)
    [bp] = plan.backfills
    return render_backfill(bp, specs.catalog())


def row(lines: list[str], name: str) -> dict[str, str]:
    """The cells of `name`'s row, by column header."""
    header = next(line for line in lines if line.strip().startswith("NODE"))
    cells = next(line for line in lines if line.strip().split("  ")[0] == name)
    return dict(zip(header.split(), re.split(r"\s{2,}", cells.strip()), strict=True))


@pytest.mark.parametrize(
    ("days", "text"),
    [
        ([], ""),
        (["2024-03-01"], "2024-03-01"),
        (["2024-03-01", "2024-03-02", "2024-03-03"], "2024-03-01..2024-03-03"),
        (["2024-03-01", "2024-03-03"], "2024-03-01, 2024-03-03"),
        (
            ["2024-03-01", "2024-03-02", "2024-03-04", "2024-03-05", "2024-03-07"],
            "2024-03-01..2024-03-02, 2024-03-04..2024-03-05, 2024-03-07",
        ),
        (["2024-02-28", "2024-02-29", "2024-03-01"], "2024-02-28..2024-03-01"),  # leap day
        (["2023-12-31", "2024-01-01"], "2023-12-31..2024-01-01"),
        (["2024-03-03", "2024-03-02", "2024-03-01"], "2024-03-03..2024-03-01"),  # descending
    ],
)
def test_date_ranges_collapse_consecutive_days_in_the_given_order(
    days: list[str], text: str
) -> None:
    assert date_ranges(map(D, days)) == text


# -- the priority column ---------------------------------------------------------------
# NOW is 2024-03-20 01:00 UTC: T-1 is 2024-03-19, so older business dates are degraded.


@pytest.mark.parametrize(
    ("dates", "shown"),
    [
        (["2024-03-01"], "8->3"),  # degraded
        (["2024-03-19"], "8"),  # T-1 keeps the baseline
        (["2024-03-01", "2024-03-19"], "8 (older: 3)"),  # some dates degraded
    ],
)
def test_priority_shows_the_degradation(dates: list[str], shown: str) -> None:
    lines = lines_of(workspace(), node("a", priority=8), backfill(dates=dates))

    assert row(lines, "a")["PRIORITY"] == shown


def test_a_node_without_instances_shows_dashes() -> None:
    lines = lines_of(
        workspace(),
        node("a"),
        node("b", upstream=["a"], effective={"from": "2030-01-01"}),
        backfill(),
    )

    assert row(lines, "b") == {
        "NODE": "b",
        "CYCLE": "daily",
        "ROLE": "target",
        "INSTANCES": "0",
        "DRY-RUN": "-",
        "PRIORITY": "-",
        "FIRST": "-",
        "LAST": "-",
    }


def test_rows_count_instances_and_dry_runs_per_node() -> None:
    lines = lines_of(
        workspace(),
        node("a", priority=5),
        node("m", schedule="0 5 1 * *", upstream=["a"]),
        node("h", schedule="0 */8 * * *", upstream=["a"]),
        backfill(dates=[{"from": "2024-02-28", "to": "2024-03-01"}]),
    )

    assert row(lines, "a") == {
        "NODE": "a",
        "CYCLE": "daily",
        "ROLE": "target",
        "INSTANCES": "3",
        "DRY-RUN": "-",
        "PRIORITY": "5->2",
        "FIRST": "2024-02-29 02:00 +0000",
        "LAST": "2024-03-02 02:00 +0000",
    }
    assert row(lines, "m")["CYCLE"] == "monthly"
    assert row(lines, "m")["DRY-RUN"] == "2 (not-scheduled-day)"
    hourly = row(lines, "h")  # 00:00, 08:00 and 16:00 on each of 3 days
    assert (hourly["CYCLE"], hourly["INSTANCES"], hourly["LAST"]) == (
        "hourly",
        "9",
        "2024-03-02 16:00 +0000",
    )


# -- the header lines -----------------------------------------------------------------


def test_header_lines_with_groups_dry_runs_waiting_and_left_out() -> None:
    lines = lines_of(
        workspace(),
        node("a"),
        node("m", schedule="0 5 1 * *", upstream=["a"]),
        node("z", upstream=["m"]),
        backfill(
            "fix",
            select={"method": "descendants", "roots": ["a"], "block": ["z"]},
            dates=[{"from": "2024-02-28", "to": "2024-03-01"}, "2024-03-20"],
            groups=2,
        ),
    )

    assert lines[: lines.index("")] == [
        "Backfill fix  (specs.yaml:59)",
        "  select:   a and all descendants; blocked: z",
        "  dates:    2024-02-28..2024-03-01, 2024-03-20 (4 dates, ascending)",
        "  group 0:  2024-02-28..2024-02-29 (2 dates)",
        "  group 1:  2024-03-01, 2024-03-20 (2 dates)",
        "  plan:     2 nodes, 8 instances (3 dry-run, 2 waiting for their time)",
        "  left out: z (blocked)",
    ]


def test_one_of_everything_is_singular_and_one_group_has_no_group_lines() -> None:
    plan, specs = planned(workspace(), node("a"), backfill())

    text = render_plan(plan, specs.catalog())

    assert text.splitlines()[:4] == [
        "Backfill bf  (specs.yaml:25)",
        "  select:   a and all descendants",
        "  dates:    2024-03-01 (1 date, ascending)",
        "  plan:     1 node, 1 instance",
    ]
    assert text.splitlines()[-1] == f"Plan: 1 instance in 1 backfill; digest {plan.digest[:19]}"


def test_the_totals_line_sums_every_backfill() -> None:
    plan, specs = planned(
        workspace(),
        node("a"),
        node("m", schedule="0 5 1 * *", upstream=["a"]),
        backfill("one", dates=[{"from": "2024-03-01", "to": "2024-03-03"}]),
        backfill("two", select={"method": "manual", "roots": ["m"]}),
    )

    text = render_plan(plan, specs.catalog())

    assert [line for line in text.splitlines() if line.startswith("Backfill ")] == [
        "Backfill one  (specs.yaml:42)",
        "Backfill two  (specs.yaml:55)",
    ]
    assert text.splitlines()[-1] == (
        f"Plan: 7 instances in 2 backfills (4 dry-run); digest {plan.digest[:19]}"
    )


@pytest.mark.parametrize(
    ("select", "text"),
    [
        ({"method": "link", "start": "a", "ends": ["c", "d"]}, "link from a to c, d"),
        (
            {"method": "workspace", "roots": ["a"], "workspaces": ["ws"], "includeRoot": False},
            "workspaces ws below a (roots excluded)",
        ),
        ({"method": "workspace", "roots": ["a"], "workspaces": ["ws"]}, "workspaces ws below a"),
        ({"method": "manual", "roots": ["a"]}, "manual: a"),
        (
            {"method": "manual", "roots": ["a"], "descendants": {"depth": 2}},
            "manual: a, 2 level(s) below",
        ),
        ({"method": "manual", "roots": ["a"], "descendants": ["c", "d"]}, "manual: a and c, d"),
        (
            {"method": "descendants", "roots": ["b"], "block": ["c"]},
            "b and all descendants; blocked: c",
        ),
    ],
)
def test_the_select_line_describes_the_method(select: dict[str, Any], text: str) -> None:
    lines = lines_of(
        workspace(),
        node("a"),
        node("b", upstream=["a"]),
        node("c", upstream=["b"]),
        node("d", upstream=["b"]),
        backfill(select=select),
    )

    assert lines[1] == f"  select:   {text}"
