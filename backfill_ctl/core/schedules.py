"""Cron schedules and the calendar rules of a backfill (DESIGN §4). Pure: no clock.

A five-field cron expression is split in two independent halves, both evaluated with
croniter and cached per expression, so croniter runs per *schedule*, never per instance:

- its **times of day** (minute and hour fields): the wall-clock ticks of a day on which
  it fires, read once from croniter over one reference day;
- its **days** (day-of-month, month, day-of-week): either every calendar day (the
  node is *daily-or-finer*) or a sparse set of days (a *calendar* node: weekly,
  monthly, 1st-and-15th ...), enumerated once per planned date range.

Ticks are computed in wall-clock time and only then placed in the workspace
timezone (`localize`), which is what makes DST changes exact and deterministic:
a wall-clock time skipped by a DST jump runs at the same offset after the jump
(02:30 -> 03:30, PEP 495's reading of the gap), and a wall-clock time that occurs
twice runs once, at its first occurrence. Ticks that collapse onto one instant
(02:00 -> 03:00 next to a real 03:00) are one tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from backfill_ctl.spec.cron import (
    ONE_DAY,
    REFERENCE_END,
    REFERENCE_START,
    days_of,
    fields,
    plain_daily,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from backfill_ctl.spec.model import TimeWindow

# Baseline priority -> priority of a backfill of T-2 or older (DataWorks' degradation).
_DEGRADED = {8: 3, 7: 3, 5: 2, 3: 2, 1: 1}


@dataclass(frozen=True, slots=True)
class Schedule:
    """What a cron expression means for planning."""

    expr: str
    times: tuple[time, ...]  # wall-clock ticks on a day it fires, ascending
    daily: bool  # fires on every calendar day

    @property
    def sub_daily(self) -> bool:
        """Fires more than once on its days (hourly, minutely ...)."""
        return len(self.times) > 1

    def times_in(self, window: TimeWindow) -> tuple[time, ...]:
        return tuple(t for t in self.times if t in window)

    @property
    def cycle(self) -> str:
        """A word for humans: minutely, hourly, daily, weekly, monthly, calendar."""
        if not self.daily:
            _, _, dom, month, dow = fields(self.expr)
            if month == "*" and (dom == "*") != (dow == "*"):
                return "weekly" if dom == "*" else "monthly"
            return "calendar"
        if len(self.times) == 1:
            return "daily"
        hours = {t.hour for t in self.times}
        return "hourly" if len(self.times) == len(hours) else "minutely"


@cache
def analyse(expr: str) -> Schedule:
    """Times of day and daily-ness of a valid cron expression (cached)."""
    minute, hour, *_ = fields(expr)
    return Schedule(expr, _times_of_day(f"{minute} {hour} * * *"), _is_daily(days_of(expr)))


@cache
def _times_of_day(time_part: str) -> tuple[time, ...]:
    parts = time_part.split()
    if plain_daily(parts):  # one plain minute and hour: one tick, no croniter
        return (time(int(parts[1]), int(parts[0])),)
    from croniter import croniter

    day = datetime.combine(REFERENCE_START, time())
    it = croniter(time_part, day - timedelta(seconds=1))
    ticks: list[time] = []
    while (tick := it.get_next(datetime)).date() == day.date():
        ticks.append(tick.time())
    return tuple(ticks)


@cache
def _is_daily(day_part: str) -> bool:
    if day_part.split()[2:] == ["*", "*", "*"]:  # every day of every month: no need to ask
        return True
    from croniter import croniter

    it = croniter(day_part, datetime.combine(REFERENCE_START - ONE_DAY, time()))
    expected = REFERENCE_START
    while expected <= REFERENCE_END:
        if it.get_next(datetime).date() != expected:
            return False
        expected += ONE_DAY
    return True


def scheduled_days(expr: str, days: tuple[date, ...]) -> frozenset[date]:
    """Those of `days` (ascending) on which a calendar expression fires. A step of the
    cron per day it fires on, and one per gap between the days: never the span from the
    first to the last (two dates 8,000 years apart of a weekly node would be 417,000)."""
    return _scheduled_days(days_of(expr), days)


@cache
def _scheduled_days(day_part: str, days: tuple[date, ...]) -> frozenset[date]:
    from croniter import croniter

    if not days:
        return frozenset()
    it = croniter(day_part, datetime.combine(days[0] - ONE_DAY, time()))
    fires = it.get_next(datetime).date()  # the next day it fires on, from the day asked
    fired: set[date] = set()
    for day in days:
        if fires < day:  # (a gap: from the day before this one)
            it.set_current(datetime.combine(day - ONE_DAY, time()), force=True)
            fires = it.get_next(datetime).date()
        if fires == day:
            fired.add(day)
            fires = it.get_next(datetime).date()
    return frozenset(fired)


@cache
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def localize(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The instant a wall-clock tick happens in `tz` (see the module docstring)."""
    wall = datetime.combine(day, at, tzinfo=tz)  # fold=0: the first of a repeated time
    # A time skipped by a DST jump does not survive the round trip through UTC;
    # the round trip moves it forward by the size of the jump.
    return wall.astimezone(UTC).astimezone(tz)


def ticks_on(day: date, times: Iterable[time], tz: ZoneInfo) -> list[tuple[int, datetime]]:
    """Distinct instants of the wall-clock `times` (ascending) on `day`, in order, each
    with the index in `times` of the time it comes from (the first one, when several
    collapse)."""
    if steady(day, tz):  # each wall-clock time is one instant, in the same order
        return [(index, datetime.combine(day, at, tzinfo=tz)) for index, at in enumerate(times)]
    seen: set[datetime] = set()
    out: list[tuple[int, datetime]] = []
    for index, at in enumerate(times):
        instant = localize(day, at, tz)
        if instant not in seen:
            seen.add(instant)
            out.append((index, instant))
    out.sort(key=lambda tick: tick[1])
    return out


# A day whose offset is the same at each hour from its start to the next day's start has
# no change (one undone within the hour would be missed: tzdata has none).
_HOURS = tuple(timedelta(hours=h) for h in range(25))


@lru_cache(maxsize=1 << 14)
def steady(day: date, tz: ZoneInfo) -> bool:
    """No UTC offset change in `tz` on `day`: no wall-clock time is skipped or repeated,
    so `localize` is `datetime.combine` (without its round trip through UTC)."""
    start = datetime.combine(day, time())
    first = tz.utcoffset(start)
    return all(tz.utcoffset(start + hours) == first for hours in _HOURS)


def scheduled_day(bizdate: date) -> date:
    """Business date D is scheduled on D+1 (T+1 processing, all cycles)."""
    return bizdate + ONE_DAY


def is_degraded(bizdate: date, today: date) -> bool:
    """T-1 and later keep the baseline priority; T-2 or older are degraded."""
    return bizdate < today - ONE_DAY


def degrade(priority: int) -> int:
    """The priority of a backfill of T-2 or older: 7/8 -> 3, 5/3 -> 2, 1 -> 1."""
    return _DEGRADED.get(priority, priority)
