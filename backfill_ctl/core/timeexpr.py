"""Time expressions of scheduling parameters: `${FORMAT}` and `$[FORMAT]` (DESIGN §6).

`business_expr("yyyymmdd-7")` and `scheduled_expr("hh24mi-15/24/60")` parse the inside
of the braces into a `TimeExpr`: a `str.format` pattern and an offset in minutes or
months. Parsers are `lru_cache`d, so equal expressions are one object; `TimeExpr.value`
memoizes its text per date in the caller's cache (see `params`). Offsets are capped at
about 100 years so that rendering real dates cannot fail.

Month arithmetic clamps the day to the month's end as DataWorks does (2024-03-31 less
a month is 2024-02-29); time arithmetic is on the naive wall clock, like the scheduler.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from backfill_ctl.core.params import Cache, Context

_D = TypeVar("_D", bound=date)


def add_months(day: _D, months: int) -> _D:
    year, month0 = divmod(day.year * 12 + day.month - 1 + months, 12)
    if month0 == 1:
        last = 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    else:
        last = 30 if month0 in (3, 5, 8, 10) else 31
    return day.replace(year=year, month=month0 + 1, day=min(day.day, last))


# str.format fields, filled positionally by TimeExpr.evaluate.
_FIELDS = {
    "yyyy": "{0:04d}",
    "yy": "{1:02d}",
    "mm": "{2:02d}",
    "dd": "{3:02d}",
    "hh24": "{4:02d}",
    "mi": "{5:02d}",
    "ss": "{6:02d}",
}
BUSINESS_TOKENS = ("yyyy", "yy", "mm", "dd")
_CYC_TOKENS = ("yyyy", "yy", "mm", "dd", "hh24", "mi", "ss")  # bare hh is deliberately absent
_SEPARATORS = frozenset("-_/.: ")
_MAX_DAYS = 36_600  # ~100 years
_MAX_MONTHS = 1_200


class ExprError(Exception):
    """Why an expression does not parse; the caller turns it into a ParamError."""


def _unexpected(rest: str, scheduled: bool) -> ExprError:
    if not scheduled and rest.startswith(("hh", "mi", "ss")):
        token = "hh24" if rest.startswith("hh24") else rest[:2]
        return ExprError(f"unexpected {token!r} (hours, minutes and seconds exist only in $[...])")
    if rest.startswith("hh"):
        return ExprError("unexpected 'hh' (hours are written hh24)")
    word = re.match(r"[A-Za-z]+|[0-9/]+|.", rest, re.S)
    chunk = word.group() if word else rest
    return ExprError(
        f"unexpected {chunk!r}" + (" (tokens are lower case)" if chunk.isupper() else "")
    )


def _compile_format(fmt: str, tokens: tuple[str, ...]) -> tuple[str, frozenset[str]]:
    """`yyyy-mm-dd` -> (`{0:04d}-{2:02d}-{3:02d}`, {yyyy, mm, dd})."""
    if not fmt:
        raise ExprError("no format")
    for end in (fmt[0], fmt[-1]):
        if end in _SEPARATORS:
            raise ExprError(f"separator {end!r} is not between two tokens")
    out: list[str] = []
    seen: set[str] = set()
    i = 0
    while i < len(fmt):
        tok = next((t for t in tokens if fmt.startswith(t, i)), None)
        if tok is None and fmt[i] not in _SEPARATORS:
            raise _unexpected(fmt[i:], tokens is _CYC_TOKENS)
        out.append(_FIELDS[tok] if tok else fmt[i])
        seen.add(tok or "")
        i += len(tok) if tok else 1
    return "".join(out), frozenset(seen)


def _bounded(sign: str, digits: str, limit: int, unit: str) -> int:
    # The length test first: int() refuses strings of more than 4300 digits.
    if len(digits) > 9 or int(digits) > limit:
        raise ExprError(f"offset {sign}{digits} is too large (at most {limit} {unit})")
    return -int(digits) if sign == "-" else int(digits)


@dataclass(frozen=True, slots=True)
class TimeExpr:
    """A parsed `${...}` (scheduled=False) or `$[...]` (scheduled=True)."""

    pattern: str
    scheduled: bool
    minutes: int = 0
    months: int = 0
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Hashed once per instance rendered; the generated __hash__ would rehash
        # every field each time.
        object.__setattr__(
            self, "_hash", hash((self.pattern, self.scheduled, self.minutes, self.months))
        )

    def __hash__(self) -> int:
        return self._hash

    def evaluate(self, t: date) -> str:
        if self.months:
            t = add_months(t, self.months)
        elif self.minutes:
            t = t + timedelta(minutes=self.minutes)  # a date keeps whole days only
        if isinstance(t, datetime):
            return self.pattern.format(
                t.year, t.year % 100, t.month, t.day, t.hour, t.minute, t.second
            )
        return self.pattern.format(t.year, t.year % 100, t.month, t.day)

    def value(self, ctx: Context, cache: Cache | None) -> str:
        t = ctx.cyctime if self.scheduled else ctx.bizdate
        if cache is None:
            return self.evaluate(t)
        key = (self, t)
        out = cache.get(key)
        if out is None:
            out = cache[key] = self.evaluate(t)
        return out


_BIZ_RE = re.compile(r"(.*?)(?:([+-])([0-9]+))?", re.S)
_CYC_RE = re.compile(r"(.*?)(?:([+-])([0-9]+)(/24(?:/60)?)?)?", re.S)
_ADD_MONTHS_RE = re.compile(r"add_months\((.*),\s*([+-]?)([0-9]+)\s*\)", re.S)
_CYC_UNITS = {None: ("days", 1440), "/24": ("hours", 60), "/24/60": ("minutes", 1)}


@lru_cache(maxsize=4096)
def business_expr(content: str) -> TimeExpr:
    fmt, sign, digits = _BIZ_RE.fullmatch(content).groups()  # type: ignore[union-attr]
    pattern, seen = _compile_format(fmt, BUSINESS_TOKENS)
    if not sign:
        return TimeExpr(pattern, False)
    if "dd" in seen:
        return TimeExpr(pattern, False, minutes=1440 * _bounded(sign, digits, _MAX_DAYS, "days"))
    if "mm" in seen:
        return TimeExpr(pattern, False, months=_bounded(sign, digits, _MAX_MONTHS, "months"))
    return TimeExpr(pattern, False, months=12 * _bounded(sign, digits, 100, "years"))


@lru_cache(maxsize=4096)
def scheduled_expr(content: str) -> TimeExpr:
    if content.startswith("add_months"):
        match = _ADD_MONTHS_RE.fullmatch(content)
        if match is None:
            raise ExprError("expected add_months(format,months)")
        fmt, sign, digits = match.groups()
        months = _bounded(sign, digits, _MAX_MONTHS, "months")
        return TimeExpr(_compile_format(fmt, _CYC_TOKENS)[0], True, months=months)
    fmt, sign, digits, per = _CYC_RE.fullmatch(content).groups()  # type: ignore[union-attr]
    pattern = _compile_format(fmt, _CYC_TOKENS)[0]
    if not sign:
        return TimeExpr(pattern, True)
    unit, scale = _CYC_UNITS[per]
    return TimeExpr(
        pattern, True, minutes=scale * _bounded(sign, digits, _MAX_DAYS * 1440 // scale, unit)
    )
