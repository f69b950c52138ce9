"""The planning rules of DESIGN §4, each pinned with concrete dates and values."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from backfill_ctl.core.planner import (
    BackfillPlan,
    Instance,
    business_dates,
    instance_id,
    split_groups,
)
from backfill_ctl.spec.model import FIRST_BUSINESS_DATE, LAST_BUSINESS_DATE, Period
from backfill_ctl.usecases.plan import make_plan
from tests.builders import NOW, backfill, node, specs_of, workspace

SHANGHAI = workspace("ws", "Asia/Shanghai", operators=("ops",))


def plan_of(
    *docs: dict[str, Any],
    now: datetime = NOW,
    actor: str | None = None,
    ws: dict[str, Any] = SHANGHAI,
) -> BackfillPlan:
    plan, diagnostics = make_plan(specs_of(ws, *docs), now, actor)
    errors = [d.format() for d in diagnostics if d.is_error]
    assert not errors
    assert len(plan.backfills) == 1
    return plan.backfills[0]


def by_node(bp: BackfillPlan, name: str) -> list[Instance]:
    return [i for i in bp.instances if i.node == name]


def times(instances: list[Instance]) -> list[str]:
    return [i.cyctime.isoformat() for i in instances]


# -- dates and groups ----------------------------------------------------------------


def test_dates_are_the_sorted_union_of_ranges_and_single_dates() -> None:
    periods = [
        Period(date(2024, 3, 5), date(2024, 3, 7)),
        Period(date(2024, 3, 1), date(2024, 3, 1)),
        Period(date(2024, 3, 6), date(2024, 3, 8)),
    ]
    assert business_dates(periods) == [date(2024, 3, d) for d in (1, 5, 6, 7, 8)]
    assert business_dates(periods, "descending") == [date(2024, 3, d) for d in (8, 7, 6, 5, 1)]


def test_dates_cost_the_union_not_each_range() -> None:
    """2,000 copies of a century (a spec from a pull request may hold them) are its
    36,524 dates once, not 73 million dates to go through one range at a time."""
    century = Period(date(1900, 1, 1), date(1999, 12, 31))
    started = time.perf_counter()
    dates = business_dates([century] * 2000)
    assert time.perf_counter() - started < 2.0
    assert (len(dates), dates[0], dates[-1]) == (36_524, century.start, century.end)


@pytest.mark.parametrize(
    ("days", "groups", "sizes"),
    [
        (3, 2, [2, 1]),  # 11-13 Jan in 2 groups: [11, 12], [13]
        (3, 4, [1, 1, 1]),  # more groups than dates: one group per date
        (10, 3, [4, 3, 3]),  # larger chunks first
        (8, 1, [8]),
        (0, 3, []),
    ],
)
def test_groups_are_contiguous_chunks_larger_first(
    days: int, groups: int, sizes: list[int]
) -> None:
    dates = [date(2024, 1, 11 + i) for i in range(days)]
    chunks = split_groups(dates, groups)
    assert [len(c) for c in chunks] == sizes
    assert [d for c in chunks for d in c] == dates


def test_group_and_sequence_follow_the_date_order() -> None:
    bp = plan_of(
        node("a"),
        backfill(dates=[{"from": "2024-01-11", "to": "2024-01-13"}], groups=2, order="descending"),
    )
    got = [(i.bizdate.day, i.group, i.sequence) for i in bp.instances]
    assert got == [(13, 0, 0), (12, 0, 1), (11, 1, 0)]
    assert [list(c) for c in bp.chunks] == [
        [date(2024, 1, 13), date(2024, 1, 12)],
        [date(2024, 1, 11)],
    ]


# -- business date and scheduled time ---------------------------------------------------


def test_daily_instance_for_bizdate_d_is_scheduled_on_d_plus_1_in_workspace_time() -> None:
    bp = plan_of(node("a", "0 2 * * *"), backfill(dates=["2024-03-01"]))
    (only,) = bp.instances
    assert only.bizdate == date(2024, 3, 1)
    assert only.cyctime.isoformat() == "2024-03-02T02:00:00+08:00"


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("0 * * * *", ["00:00", "01:00"]),  # hourly, window 00:00-01:00 -> 2 instances
        ("*/30 * * * *", ["00:00", "00:30", "01:00"]),  # every 30 minutes -> 3
    ],
)
def test_time_window_is_inclusive_at_both_ends(schedule: str, expected: list[str]) -> None:
    bp = plan_of(node("a", schedule), backfill(timeWindow={"from": "00:00", "to": "01:00"}))
    assert [f"{i.cyctime:%H:%M}" for i in bp.instances] == expected
    assert {i.cyctime.date() for i in bp.instances} == {date(2024, 3, 2)}


def test_sub_daily_node_without_a_tick_in_the_window_fails_the_plan() -> None:
    specs = specs_of(
        SHANGHAI,
        node("clicks", "5 * * * *"),
        backfill(
            select={"method": "descendants", "roots": ["clicks"]},
            timeWindow={"from": "10:30", "to": "10:45"},
        ),
    )
    plan, diagnostics = make_plan(specs, NOW, None)
    assert plan.backfills == ()
    (error,) = [d for d in diagnostics if d.is_error]
    assert error.path == ("spec", "timeWindow")
    assert error.message == (
        "hourly node 'clicks' (5 * * * *) has no scheduled time between 10:30 and 10:45"
    )
    assert (
        error.hint
        == "widen timeWindow to include one of its times (00:05, 01:05, 02:05, 03:05 ...)"
    )


def test_daily_node_outside_the_window_has_no_instance_and_its_downstream_is_isolated() -> None:
    bp = plan_of(
        node("a", "0 2 * * *"),
        node("b", "30 1 * * *", ["a"]),
        backfill(timeWindow={"from": "00:00", "to": "01:59"}),
    )
    assert by_node(bp, "a") == []
    (b,) = by_node(bp, "b")
    assert b.depends_on == ()
    assert [(x.node, x.upstream) for x in bp.isolated] == [("b", "a")]


def test_monthly_node_runs_on_its_day_and_dry_runs_on_the_others() -> None:
    bp = plan_of(
        node("m", "0 5 1 * *"),
        backfill(
            select={"method": "descendants", "roots": ["m"]},
            dates=[{"from": "2024-01-30", "to": "2024-02-01"}],
        ),
    )
    got = [(str(i.bizdate), f"{i.cyctime:%Y-%m-%d %H:%M}", i.dry_run_reason) for i in bp.instances]
    assert got == [
        ("2024-01-30", "2024-01-31 05:00", "not-scheduled-day"),
        ("2024-01-31", "2024-02-01 05:00", None),  # business date = scheduled date - 1
        ("2024-02-01", "2024-02-02 05:00", "not-scheduled-day"),
    ]


def test_weekly_node_runs_for_the_business_date_before_its_weekday() -> None:
    # 0 3 * * 1: Mondays. 2024-03-04 is a Monday, so business date 2024-03-03 runs.
    bp = plan_of(
        node("w", "0 3 * * 1"),
        backfill(
            select={"method": "descendants", "roots": ["w"]},
            dates=[{"from": "2024-03-02", "to": "2024-03-04"}],
        ),
    )
    assert [(i.bizdate.day, i.dry_run) for i in bp.instances] == [(2, True), (3, False), (4, True)]


def test_effective_period_is_checked_against_the_scheduled_date() -> None:
    bp = plan_of(
        node("a", effective={"from": "2024-03-03", "to": "2024-03-04"}),
        backfill(dates=[{"from": "2024-02-29", "to": "2024-03-05"}]),
    )
    # scheduled on 03-03 and 03-04 -> business dates 03-02 and 03-03
    assert [i.bizdate for i in bp.instances] == [date(2024, 3, 2), date(2024, 3, 3)]


# -- now: waiting for time, priority --------------------------------------------------


def test_future_instances_wait_for_their_time_unless_run_immediately() -> None:
    now = datetime(2024, 3, 20, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    dates = [{"from": "2024-03-18", "to": "2024-03-20"}]
    bp = plan_of(
        node("a", "0 8 * * *"), node("b", "0 10 * * *", ["a"]), backfill(dates=dates), now=now
    )
    waiting = {(i.node, i.bizdate.day) for i in bp.instances if i.wait_for_time}
    # 03-19 is scheduled on 03-20: a at 08:00 has passed, b at 10:00 has not.
    assert waiting == {("b", 19), ("a", 20), ("b", 20)}
    eager = plan_of(node("a", "0 8 * * *"), backfill(dates=dates, runImmediately=True), now=now)
    assert not any(i.wait_for_time for i in eager.instances)


@pytest.mark.parametrize(("baseline", "degraded"), [(8, 3), (7, 3), (5, 2), (3, 2), (1, 1)])
def test_priority_is_kept_for_t_minus_1_and_degraded_from_t_minus_2(
    baseline: int, degraded: int
) -> None:
    now = datetime(2024, 3, 20, 1, 0, tzinfo=UTC)  # T = 2024-03-20 in Shanghai
    bp = plan_of(
        node("a", priority=baseline),
        backfill(dates=[{"from": "2024-03-17", "to": "2024-03-21"}]),
        now=now,
    )
    got = {i.bizdate.day: i.priority for i in bp.instances}
    assert got == {17: degraded, 18: degraded, 19: baseline, 20: baseline, 21: baseline}


def test_today_is_taken_in_the_workspace_timezone() -> None:
    now = datetime(2024, 3, 19, 17, 0, tzinfo=UTC)  # 2024-03-20 01:00 in Shanghai
    utc = plan_of(
        node("a", priority=8), backfill(dates=["2024-03-18"]), now=now, ws=workspace("ws", "UTC")
    )
    shanghai = plan_of(node("a", priority=8), backfill(dates=["2024-03-18"]), now=now)
    assert utc.instances[0].priority == 8  # T-1 in UTC
    assert shanghai.instances[0].priority == 3  # T-2 in Shanghai


# -- dependencies -------------------------------------------------------------------


def test_same_cron_depends_slot_to_slot() -> None:
    bp = plan_of(
        node("u", "0 * * * *"),
        node("v", "0 * * * *", ["u"]),
        backfill(
            select={"method": "descendants", "roots": ["u"]},
            timeWindow={"from": "00:00", "to": "02:00"},
        ),
    )
    u, v = by_node(bp, "u"), by_node(bp, "v")
    assert [x.depends_on for x in v] == [(u[0].id,), (u[1].id,), (u[2].id,)]


def test_different_cycles_depend_on_every_upstream_instance_of_the_date() -> None:
    bp = plan_of(
        node("u", "0 * * * *"),
        node("v", "0 2 * * *", ["u"]),
        backfill(select={"method": "descendants", "roots": ["u"]}),
    )
    u, (v,) = by_node(bp, "u"), by_node(bp, "v")
    assert len(u) == 24
    assert v.depends_on == tuple(x.id for x in u)


def test_dependencies_stay_inside_one_business_date() -> None:
    bp = plan_of(
        node("u"),
        node("v", "0 3 * * *", ["u"]),
        backfill(
            select={"method": "descendants", "roots": ["u"]},
            dates=[{"from": "2024-03-01", "to": "2024-03-02"}],
        ),
    )
    u = {i.bizdate: i.id for i in by_node(bp, "u")}
    for v in by_node(bp, "v"):
        assert v.depends_on == (u[v.bizdate],)


def test_dependencies_bridge_out_of_scope_nodes() -> None:
    # a -> x -> c with x not selected: c still waits for a.
    bp = plan_of(
        node("a"),
        node("x", upstream=["a"]),
        node("c", upstream=["x"]),
        backfill(select={"method": "manual", "roots": ["a"], "descendants": ["c"]}),
    )
    (a,), (c,) = by_node(bp, "a"), by_node(bp, "c")
    assert by_node(bp, "x") == []
    assert c.depends_on == (a.id,)
    assert bp.scope.upstream["c"] == ("a",)


def test_self_dependent_sub_daily_instances_run_one_after_another() -> None:
    window = {"from": "00:00", "to": "02:00"}
    chained = plan_of(
        node("h", "0 * * * *", selfDependent=True),
        backfill(select={"method": "descendants", "roots": ["h"]}, timeWindow=window),
    )
    ids = [i.id for i in chained.instances]
    assert [i.depends_on for i in chained.instances] == [(), (ids[0],), (ids[1],)]
    free = plan_of(
        node("h", "0 * * * *"),
        backfill(select={"method": "descendants", "roots": ["h"]}, timeWindow=window),
    )
    assert all(i.depends_on == () for i in free.instances)


# -- ids --------------------------------------------------------------------------------


def test_instance_ids_are_stable_and_derived_from_backfill_node_date_and_slot() -> None:
    docs = (node("a"), node("b", upstream=["a"]), backfill(dates=["2024-03-01", "2024-03-02"]))
    first, again = plan_of(*docs), plan_of(*docs)
    assert [i.id for i in first.instances] == [i.id for i in again.instances]
    a0 = first.instances[0]
    assert a0.id == instance_id("bf", "a", date(2024, 3, 1), 0, 1)  # tick 0 of 1 a day
    assert len({i.id for i in first.instances}) == len(first.instances)
    renamed = plan_of(
        node("a"), node("b", upstream=["a"]), backfill("other", dates=["2024-03-01", "2024-03-02"])
    )
    assert not {i.id for i in renamed.instances} & {i.id for i in first.instances}


def test_ids_do_not_depend_on_now_or_on_other_nodes() -> None:
    later = datetime(2025, 1, 1, tzinfo=UTC)
    small = plan_of(node("a"), backfill())
    large = plan_of(node("a"), node("z", upstream=["a"]), backfill(), now=later)
    assert by_node(small, "a")[0].id == by_node(large, "a")[0].id


# -- daylight saving time ------------------------------------------------------------


NEW_YORK = workspace("ws", "America/New_York")


def test_hourly_node_on_spring_forward_day_has_23_distinct_instances() -> None:
    bp = plan_of(
        node("h", "0 * * * *"),
        backfill(select={"method": "descendants", "roots": ["h"]}, dates=["2024-03-09"]),
        ws=NEW_YORK,
    )
    assert len(bp.instances) == 23
    assert times(bp.instances)[1:3] == ["2024-03-10T01:00:00-05:00", "2024-03-10T03:00:00-04:00"]
    assert len({i.id for i in bp.instances}) == 23


def test_hourly_node_on_fall_back_day_runs_each_wall_clock_hour_once() -> None:
    bp = plan_of(
        node("h", "0 * * * *"),
        backfill(select={"method": "descendants", "roots": ["h"]}, dates=["2024-11-02"]),
        ws=NEW_YORK,
    )
    assert len(bp.instances) == 24
    assert times(bp.instances)[1:3] == ["2024-11-03T01:00:00-04:00", "2024-11-03T02:00:00-05:00"]


def test_daily_time_skipped_by_dst_runs_after_the_jump() -> None:
    bp = plan_of(
        node("d", "30 2 * * *"),
        backfill(
            select={"method": "descendants", "roots": ["d"]},
            dates=[{"from": "2024-03-08", "to": "2024-03-10"}],
        ),
        ws=NEW_YORK,
    )
    assert times(bp.instances) == [
        "2024-03-09T02:30:00-05:00",
        "2024-03-10T03:30:00-04:00",
        "2024-03-11T02:30:00-04:00",
    ]


# -- commands and parameters ------------------------------------------------------------


def test_command_elements_are_resolved_one_by_one() -> None:
    bp = plan_of(
        node(
            "a",
            "0 2 * * *",
            command=["etl", "--pt", "${pt}", "--hour", "$[hh24]", "--job", "$jobid"],
            parameters={"pt": "${yyyy-mm-dd}"},
        ),
        backfill(dates=["2024-03-01"]),
    )
    assert bp.instances[0].command == ("etl", "--pt", "2024-03-01", "--hour", "02", "--job", "bf")


def test_each_tick_gets_the_command_of_its_date_tick_and_id() -> None:
    """An hourly node's instances: a command that reads the business date only is the
    same on every tick of a date; one that reads the tick or $taskid is each tick's."""
    daily = ["etl", "$nodeid", "${yyyymmdd}", "$jobid", "$gmtdate"]
    bp = plan_of(
        node("d", "0 1,3 * * *", command=daily),
        node("t", "0 1,3 * * *", command=["etl", "$nodeid", "$[hh24]", "$taskid"]),
        backfill(
            dates=["2024-03-01", "2024-03-02"],
            select={"method": "descendants", "roots": ["d", "t"]},
        ),
    )
    assert [i.command for i in by_node(bp, "d")] == [
        ("etl", "d", day, "bf", "$gmtdate") for day in ("20240301",) * 2 + ("20240302",) * 2
    ]
    assert [i.command for i in by_node(bp, "t")] == [
        ("etl", "t", hour, i.id) for hour, i in zip(["01", "03"] * 2, by_node(bp, "t"), strict=True)
    ]


def test_a_string_command_reads_parameters_from_the_environment() -> None:
    bp = plan_of(
        node(
            "a",
            command="load ${label} > out_${pt}_${yyyy mm}.txt",
            parameters={"pt": "$bizdate", "label": "${yyyy} data"},
        ),
        backfill(dates=["2024-03-01"]),
    )
    # Parameters are expansions (their values are in the instance's environment); a
    # time expression is inline, one word.
    assert bp.instances[0].command == (
        'load "${BACKFILL_PARAM_LABEL}" > out_"${BACKFILL_PARAM_PT}"_\'2024 03\'.txt'
    )


def test_backfill_parameters_override_and_add_to_node_parameters() -> None:
    bp = plan_of(
        node(
            "a",
            command=["etl", "${pt}", "${mode}"],
            parameters={"pt": "${yyyymmdd}", "mode": "incremental"},
        ),
        backfill(dates=["2024-03-01"], parameters={"mode": "full"}),
    )
    assert bp.instances[0].command == ("etl", "20240301", "full")


# -- scope-level dry runs ------------------------------------------------------------


def test_blocked_intermediate_node_is_dry_run_and_blocked_leaf_is_left_out() -> None:
    bp = plan_of(
        node("a"),
        node("b", upstream=["a"]),
        node("c", upstream=["b"]),
        node("d", upstream=["a"]),
        backfill(select={"method": "descendants", "roots": ["a"], "block": ["b", "d"]}),
    )
    assert [(i.node, i.dry_run_reason) for i in bp.instances] == [
        ("a", None),
        ("b", "blocklisted"),
        ("c", None),
    ]
    assert bp.scope.left_out == ("d",)


def test_intermediate_node_without_permission_is_dry_run() -> None:
    bp = plan_of(
        node("a", owners=("ann",)),
        node("b", upstream=["a"], owners=("bo",)),
        node("c", upstream=["b"], owners=("ann",)),
        backfill(),
        actor="ann",
    )
    assert [(i.node, i.dry_run_reason) for i in bp.instances] == [
        ("a", None),
        ("b", "no-permission"),
        ("c", None),
    ]


# -- which backfills are planned ------------------------------------------------------


def test_a_broken_backfill_does_not_hide_the_others() -> None:
    broken = backfill("broken", grups=2)  # a schema error: this one is not even built
    specs = specs_of(SHANGHAI, node("a"), backfill("good"), broken)
    plan, diagnostics = make_plan(specs, NOW, None)
    assert [bp.name for bp in plan.backfills] == ["good"]
    assert [d.message for d in diagnostics if d.is_error] == ["unknown field 'grups'"]


def test_an_error_in_the_catalog_stops_every_plan() -> None:
    specs = specs_of(SHANGHAI, node("a"), node("b", upstream=["ghost"]), backfill("good"))
    plan, diagnostics = make_plan(specs, NOW, None)
    assert plan.backfills == ()
    assert [d.message for d in diagnostics if d.is_error] == ["unknown upstream node 'ghost'"]


def test_moving_a_cron_time_or_the_timezone_keeps_the_ids() -> None:
    def ids(schedule: str, ws: dict[str, Any] = SHANGHAI) -> list[str]:
        bp = plan_of(node("a", schedule), backfill(dates=["2024-03-01", "2024-03-02"]), ws=ws)
        return [i.id for i in bp.instances]

    assert ids("30 2 * * *") == ids("45 2 * * *") == ids("30 2 * * *", workspace("ws"))
    # Another number of ticks a day is other slots: other ids.
    assert not set(ids("30 2,14 * * *")) & set(ids("30 2 * * *"))


def test_an_id_names_the_tick_among_all_ticks_of_the_cron_not_of_the_time_window() -> None:
    def ids(window: dict[str, str]) -> dict[str, str]:
        bp = plan_of(
            node("h", "15 * * * *"),
            backfill(select={"method": "descendants", "roots": ["h"]}, timeWindow=window),
        )
        return {f"{i.cyctime:%H:%M}": i.id for i in bp.instances}

    wide, narrow = ids({"from": "00:00", "to": "05:59"}), ids({"from": "03:00", "to": "05:59"})
    assert list(narrow) == ["03:15", "04:15", "05:15"]
    assert narrow == {at: wide[at] for at in narrow}  # 03:15 is tick 3 of 24 in both
    assert wide["00:15"] == instance_id("bf", "h", date(2024, 3, 1), 0, 24)


# -- the ends of the calendar ----------------------------------------------------------

# Every parameter offset at its largest, both ways (core.timeexpr caps them).
FARTHEST = {
    "d1": "${yyyymmdd-36600}",
    "d2": "${yyyymmdd+36600}",
    "m1": "${yyyymm-1200}",
    "m2": "${yyyymm+1200}",
    "y1": "${yyyy-100}",
    "y2": "${yyyy+100}",
    "t1": "$[yyyymmddhh24mi-36600]",
    "t2": "$[yyyymmddhh24mi+36600]",
    "a1": "$[add_months(yyyymmdd,-1200)]",
    "a2": "$[add_months(yyyymmdd,+1200)]",
    "h1": "$[yyyymmddhh24-878400/24]",
    "h2": "$[yyyymmddhh24+878400/24]",
}


@pytest.mark.parametrize("tz", ["Etc/GMT+12", "Pacific/Kiritimati", "America/New_York"])
@pytest.mark.parametrize("schedule", ["59 23 * * *", "0 * * * *", "0 0 1 * *", "0 0 * * 0"])
@pytest.mark.parametrize(
    ("day", "now"),
    [
        (FIRST_BUSINESS_DATE, datetime(200, 1, 1, tzinfo=timezone(timedelta(hours=14)))),
        (LAST_BUSINESS_DATE, datetime(9799, 12, 31, 23, 59, tzinfo=timezone(-timedelta(hours=12)))),
    ],
)
def test_the_business_dates_at_the_ends_of_their_range_plan_and_render(
    tz: str, schedule: str, day: date, now: datetime
) -> None:
    """The range of business dates (spec.model) leaves room for T+1, a time zone's offset
    and the farthest parameter offsets: planning there cannot overflow."""
    command = ["run", *(f"${{{name}}}" for name in FARTHEST), "$bizdate", "$cyctime"]
    bp = plan_of(
        node("a", schedule, parameters=FARTHEST, command=command),
        node(
            "b", "0 3 * * *", upstream=["a"], effective={"from": "0001-01-01", "to": "9999-12-31"}
        ),
        backfill(dates=[day.isoformat()], groups=2),
        now=now,
        ws=workspace("ws", tz),
    )
    assert {i.bizdate for i in bp.instances} == {day}
    assert {i.node for i in bp.instances} == {"a", "b"}
    rendered = [i.command for i in by_node(bp, "a")]
    assert all(len(args) == len(command) and "$" not in "".join(args) for args in rendered)
