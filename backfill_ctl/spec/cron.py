"""Five-field cron expressions, the syntax of a node's `schedule` (DESIGN §4): their
fields, the aliases (@daily ...), and why one is not usable. Pure: no clock.

What an expression means for planning (its ticks, its days) is `core.schedules`.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from functools import cache

ONE_DAY = timedelta(days=1)
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# Two years including a leap year: every (day-of-month, weekday) and month length
# combination a day pattern can miss occurs in it.
REFERENCE_START = date(2023, 1, 1)
REFERENCE_END = date(2024, 12, 31)


# Name, range and the names a field accepts, in the order of the five fields.
_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    (
        "month",
        1,
        12,
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    ),
    ("day-of-week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
_ITEM = re.compile(r"^(\*|[^-/]+(?:-[^-/]+)?)(?:/([0-9]+))?$")


def field_error(index: int, text: str) -> str | None:
    """Why field `index` (0: minute ... 4: day-of-week) of an expression is not valid:
    `hour 25 is out of range 0-23`; None if it is."""
    name, low, high, names = _FIELDS[index]
    for item in text.split(","):
        match = _ITEM.match(item)
        if not match:
            return f"{name} {item[:40]!r} is not a number, a range or */step"
        if match.group(2) is not None and int(match.group(2)) == 0:
            return f"{name} {item[:40]!r} has a step of 0"
        if match.group(1) == "*":
            continue
        for value in match.group(1).split("-"):
            if value.lower() in names:
                continue
            if not value.isdigit():
                known = f" or a name ({', '.join(names)})" if names else ""
                return f"{name} {value[:40]!r} is not a number{known}"
            if not low <= int(value) <= high:
                return f"{name} {int(value)} is out of range {low}-{high}"
    return None


def fields(expr: str) -> list[str]:
    """The five fields of an expression, aliases expanded."""
    text = expr.strip()
    return ALIASES.get(text.lower(), text).split()


_NUMBER = re.compile(r"0|[1-9][0-9]?")


def plain_daily(parts: list[str]) -> bool:
    """Fields `M H * * *` with M and H plain numbers in range: once a day, every day.
    The commonest schedule, read here without croniter (and its import)."""
    return (
        len(parts) == 5
        and parts[2:] == ["*", "*", "*"]
        and _NUMBER.fullmatch(parts[0]) is not None
        and _NUMBER.fullmatch(parts[1]) is not None
        and int(parts[0]) <= 59
        and int(parts[1]) <= 23
    )


@cache
def cron_error(expr: str) -> str | None:
    """Why `expr` is not a usable five-field cron expression, or None if it is."""
    parts = fields(expr)
    if len(parts) == 1 and parts[0].startswith("@"):
        return f"{parts[0]} is not a schedule (use @yearly, @monthly, @weekly, @daily or @hourly)"
    if len(parts) != 5:
        plural = "" if len(parts) == 1 else "s"
        return f"it has {len(parts)} field{plural}, a cron expression has 5"
    for index, text in enumerate(parts):
        error = field_error(index, text)
        if error:
            return error
    if plain_daily(parts):  # "30 2 * * *": croniter parses it and it fires every day
        return None
    from croniter import croniter

    if not croniter.is_valid(" ".join(parts)):
        return "croniter cannot parse it"
    try:
        days_of(expr)
    except (ValueError, KeyError, ArithmeticError):  # croniter's CroniterError family
        return "it never fires (no day matches its day-of-month, month and day-of-week)"
    return None


def days_of(expr: str) -> str:
    """The day half of an expression, as a cron expression firing once on each such day."""
    _, _, dom, month, dow = fields(expr)
    day_part = f"0 0 {dom} {month} {dow}"
    first_day(day_part)  # raises if it never fires
    return day_part


@cache
def first_day(day_part: str) -> date:
    if day_part.split()[2:] == ["*", "*", "*"]:  # every day: the reference's first
        return REFERENCE_START
    from croniter import croniter

    start = datetime.combine(REFERENCE_START - ONE_DAY, time())
    first: datetime = croniter(day_part, start).get_next(datetime)
    return first.date()
