"""Cron analysis, DST-exact localisation and priority degradation (DESIGN §4)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest

from backfill_ctl.core.schedules import (
    analyse,
    degrade,
    is_degraded,
    localize,
    scheduled_day,
    scheduled_days,
    steady,
    ticks_on,
    zone,
)
from backfill_ctl.spec.cron import cron_error
from backfill_ctl.spec.model import TimeWindow


@pytest.mark.parametrize(
    ("expr", "error"),
    [
        ("0 2 * * *", None),
        ("@daily", None),
        ("0 2 * *", "it has 4 fields, a cron expression has 5"),
        ("0 0 2 * * *", "it has 6 fields, a cron expression has 5"),
        ("61 2 * * *", "minute 61 is out of range 0-59"),
        ("0 0 0 * *", "day-of-month 0 is out of range 1-31"),
        ("H 2 * * *", "minute 'H' is not a number"),
        ("0 2 * * mon-fri", None),
    ],
)
def test_cron_error_explains_what_is_wrong(expr: str, error: str | None) -> None:
    assert cron_error(expr) == error


def test_an_expression_that_never_fires_is_an_error() -> None:
    error = cron_error("0 0 31 2 *")
    assert error is not None and error.startswith("it never fires")


@pytest.mark.parametrize(
    ("expr", "daily", "cycle", "count"),
    [
        ("0 2 * * *", True, "daily", 1),
        ("@daily", True, "daily", 1),
        ("0 2,14 * * *", True, "hourly", 2),
        ("5 * * * *", True, "hourly", 24),
        ("*/30 * * * *", True, "minutely", 48),
        ("0 0 1-31 * *", True, "daily", 1),  # every day of every month, written out
        ("0 0 * * 0-6", True, "daily", 1),  # every weekday, written out
        ("0 3 1 * *", False, "monthly", 1),
        ("@monthly", False, "monthly", 1),
        ("0 3 * * 1", False, "weekly", 1),
        ("0 3 1,15 * *", False, "monthly", 1),
        ("0 3 1 * 1", False, "calendar", 1),  # the 1st or a Monday
        ("0 3 * 1-11 *", False, "calendar", 1),  # no December
        ("0 3 1-30 * *", False, "monthly", 1),  # skips the 31st
    ],
)
def test_daily_or_finer_means_firing_on_every_calendar_day(
    expr: str, daily: bool, cycle: str, count: int
) -> None:
    schedule = analyse(expr)
    assert (schedule.daily, schedule.cycle, len(schedule.times)) == (daily, cycle, count)


def test_times_in_a_window_are_inclusive_and_the_window_may_cross_midnight() -> None:
    hourly = analyse("0 * * * *")
    assert hourly.times_in(TimeWindow(time(0), time(1))) == (time(0), time(1))
    assert hourly.times_in(TimeWindow(time(22), time(1))) == (time(0), time(1), time(22), time(23))


def test_scheduled_days_of_a_monthly_node() -> None:
    asked = tuple(date(2024, 1, 15) + timedelta(days=n) for n in range(78))  # to 1 April
    days = scheduled_days("0 5 1 * *", asked)
    assert sorted(days) == [date(2024, 2, 1), date(2024, 3, 1), date(2024, 4, 1)]


def test_scheduled_days_cost_the_days_asked_for_not_the_span_between_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two dates 8,000 years apart of a weekly node were 417,000 steps of the cron (15 s
    of a pull request's check, for a plan of two instances); now a step or two each."""
    from croniter import croniter

    steps = []
    get_next = croniter.get_next
    monkeypatch.setattr(
        croniter, "get_next", lambda self, *a, **k: steps.append(1) or get_next(self, *a, **k)
    )
    asked = (date(1000, 1, 2), date(1000, 1, 3), date(9000, 12, 31), date(9001, 1, 1))

    days = scheduled_days("30 1 * * 1", asked)

    assert days == {d for d in asked if d.weekday() == 0}
    assert len(steps) <= 2 * len(asked)


def test_business_date_is_scheduled_the_next_day() -> None:
    assert scheduled_day(date(2024, 2, 29)) == date(2024, 3, 1)
    assert scheduled_day(date(2023, 12, 31)) == date(2024, 1, 1)


@pytest.mark.parametrize(
    ("day", "at", "expected"),
    [
        (date(2024, 3, 10), time(2, 30), "2024-03-10T03:30:00-04:00"),  # skipped: after the jump
        (date(2024, 11, 3), time(1, 30), "2024-11-03T01:30:00-04:00"),  # repeated: first one
        (date(2024, 7, 1), time(2, 30), "2024-07-01T02:30:00-04:00"),
    ],
)
def test_localize_handles_dst_gaps_and_folds(day: date, at: time, expected: str) -> None:
    assert localize(day, at, zone("America/New_York")).isoformat() == expected


def test_ticks_collapsing_onto_one_instant_are_one_tick() -> None:
    # 02:00 and 02:30 fall in the gap and move to 03:00 and 03:30; 03:00 exists already.
    times = (time(1, 30), time(2), time(2, 30), time(3))
    ticks = ticks_on(date(2024, 3, 10), times, zone("America/New_York"))
    assert [t.strftime("%H:%M%z") for _, t in ticks] == ["01:30-0500", "03:00-0400", "03:30-0400"]
    # Each keeps the index of the time it comes from: 03:00 is the moved 02:00 (index 1).
    assert [index for index, _ in ticks] == [0, 1, 2]


@pytest.mark.parametrize(
    "tz",
    ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago", "UTC"],
)
def test_ticks_of_days_without_an_offset_change_are_those_of_the_round_trip(tz: str) -> None:
    """`ticks_on` skips the round trip through UTC on a steady day: each day of two
    years (DST starts and ends, Lord Howe's half hour) gives what the round trip gives."""
    times = tuple(time(h, m) for h in range(24) for m in (0, 30))
    zoneinfo = zone(tz)
    day, changes = date(2023, 1, 1), 0
    while day < date(2025, 1, 1):
        reference: dict[datetime, int] = {}
        for index, at in enumerate(times):
            reference.setdefault(localize(day, at, zoneinfo), index)
        assert ticks_on(day, times, zoneinfo) == sorted(
            ((i, t) for t, i in reference.items()), key=lambda tick: tick[1]
        )
        changes += not steady(day, zoneinfo)
        day += timedelta(days=1)
    assert changes == (0 if tz == "UTC" else 4)  # two a year, each found


@pytest.mark.parametrize(
    ("bizdate", "degraded"),
    [
        (date(2024, 3, 21), False),  # future
        (date(2024, 3, 20), False),  # T
        (date(2024, 3, 19), False),  # T-1
        (date(2024, 3, 18), True),  # T-2
        (date(2023, 1, 1), True),
    ],
)
def test_degradation_starts_at_t_minus_2(bizdate: date, degraded: bool) -> None:
    assert is_degraded(bizdate, today=date(2024, 3, 20)) is degraded


@pytest.mark.parametrize(("baseline", "expected"), [(8, 3), (7, 3), (5, 2), (3, 2), (1, 1)])
def test_degraded_priorities_follow_the_reference_table(baseline: int, expected: int) -> None:
    assert degrade(baseline) == expected


@pytest.mark.parametrize(
    ("day_part", "daily"),
    [("0 0 * * *", True), ("0 0 */1 * *", True), ("0 0 * * 0-6", True), ("0 0 * * 1", False)],
)
def test_every_day_is_known_with_or_without_croniter(day_part: str, daily: bool) -> None:
    """`_is_daily` answers "* * *" itself; croniter's walk agrees with it."""
    from backfill_ctl.core.schedules import _is_daily

    assert _is_daily(day_part) is daily
    assert _is_daily.__wrapped__(day_part) is daily


def test_plain_daily_schedules_are_what_croniter_says() -> None:
    """Every `M H * * *` is read without croniter: the same tick, valid, every day."""
    from datetime import datetime, timedelta

    from croniter import croniter

    from backfill_ctl.core.schedules import _times_of_day
    from backfill_ctl.spec.cron import REFERENCE_START, first_day, plain_daily

    day = datetime.combine(REFERENCE_START, time())
    for hour in range(24):
        for minute in range(60):
            expr = f"{minute} {hour} * * *"
            it = croniter(expr, day - timedelta(seconds=1))
            ticks = []
            while (tick := it.get_next(datetime)).date() == day.date():
                ticks.append(tick.time())
            assert _times_of_day(expr) == tuple(ticks), expr
            assert cron_error(expr) is None and croniter.is_valid(expr)
    assert (
        first_day("0 0 * * *")
        == croniter("0 0 * * *", day - timedelta(days=1)).get_next(datetime).date()
    )
    for odd in ("60 1 * * *", "1 24 * * *", "01 1 * * *", "1 1 * * 1"):
        assert not plain_daily(odd.split())
