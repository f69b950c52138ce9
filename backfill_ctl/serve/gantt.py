"""A backfill's attempts by date group as a Gantt chart: inline SVG, written here.

One lane per date group, one bar per business date from the first start of an attempt of
its instances to the last end (to `now` while one runs), coloured by how the date stands:
succeeded (all its instances), failed (one failed, none runs), running, or mixed (some
ran, the rest did not: waiting, cancelled, frozen). The times are in each bar's <title>
(shown on hover); the axis is wall-clock time in UTC.

Pure: a function of the store's aggregate (`date_spans`, a row per date, never per
instance) and of `now`, given by the caller. No script, no style attribute: the colours
are classes of the page's stylesheet (STYLE, joined to it by pages).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING

from backfill_ctl.usecases.progress import duration, utc

if TYPE_CHECKING:
    from collections.abc import Mapping

    from backfill_ctl.core.records import DateSpan

OUTCOMES = ("succeeded", "failed", "running", "mixed")
STYLE = """
svg.gantt text,svg.dag text{font:11px system-ui,sans-serif;fill:#444}
.gantt .axis{stroke:#ddd}.gantt .now{stroke:#1565c0;stroke-dasharray:3 3}
.g-succeeded{fill:#2e7d32}.g-failed{fill:#c62828}.g-running{fill:#1565c0}.g-mixed{fill:#f9a825}
"""
LABEL = 70  # px left of the time axis: the lanes' names
WIDTH = 900  # px of the time axis
LANE = 20  # px per lane
BAR = 14  # px of a bar's height
TOP = 22  # px above the first lane: the axis' labels
# The axis' steps (seconds): the first that gives at most 8 ticks is used.
STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)


def outcome(span: DateSpan) -> str:
    """How a date stands: its bar's colour."""
    states = span.states
    if states.get("running"):
        return "running"
    if states.get("failed"):
        return "failed"
    if states.get("succeeded", 0) == sum(states.values()):
        return "succeeded"
    return "mixed"


@dataclass(frozen=True)
class _Scale:
    """Wall-clock time from `first` to `last` on WIDTH pixels, after the lanes' names."""

    first: float
    last: float

    def x(self, t: float) -> float:
        return LABEL + (t - self.first) * WIDTH / (self.last - self.first)


def gantt(spans: Mapping[tuple[int, int, str], DateSpan], now: float) -> str:
    """The section of the backfill page: a heading, the chart and its legend; "" when no
    date has started an attempt."""
    started = {k: s for k, s in spans.items() if s.started is not None}
    if not started:
        return ""
    first = min(s.started or 0.0 for s in started.values())
    last = max(now if s.finished is None else s.finished for s in started.values())
    scale = _Scale(first, max(last, first + 1))
    lanes = {g: i for i, g in enumerate(sorted({g for g, _, _ in spans}))}
    height = TOP + LANE * len(lanes) + 4
    parts = _axis(scale, height)
    parts += [
        f'<text x="4" y="{TOP + LANE * i + BAR - 3}">group {g}</text>' for g, i in lanes.items()
    ]
    parts += [
        _bar(scale, TOP + LANE * lanes[key[0]], key, s, now) for key, s in sorted(started.items())
    ]
    if any(s.finished is None for s in started.values()):
        at = scale.x(now)
        parts.append(f'<line class=now x1="{at:.1f}" x2="{at:.1f}" y1="14" y2="{height}"/>')
    legend = "".join(
        f'<span><svg width="12" height="12"><rect class="g-{o}" width="12" height="12"/></svg>'
        f" {o}</span>"
        for o in OUTCOMES
    )
    width = LABEL + WIDTH + 30  # room for the last tick's label
    return (
        "<h2>Attempts by date group</h2>"
        f'<svg class=gantt role=img aria-label="attempts by date group" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">{"".join(parts)}</svg>'
        f"<p class=legend>{legend} (a bar per business date, times in UTC)</p>"
    )


def _bar(scale: _Scale, y: int, key: tuple[int, int, str], s: DateSpan, now: float) -> str:
    """One date's bar, its times and counts in its <title>."""
    group, _, bizdate = key
    begin = s.started if s.started is not None else now
    end = now if s.finished is None else s.finished
    state = outcome(s)
    took = duration(end - begin)
    until = f"{utc(s.finished)} ({took})" if s.finished is not None else f"now ({took} so far)"
    counts = ", ".join(f"{k} {n}" for k, n in sorted(s.states.items()))
    title = f"{bizdate} (group {group}): {state}, {utc(begin)} to {until} · {counts}"
    left, right = scale.x(begin), scale.x(end)
    return (
        f'<rect class="g-{state}" data-date="{escape(bizdate)}" x="{left:.1f}" y="{y}" '
        f'width="{max(2.0, right - left):.1f}" height="{BAR}"><title>{escape(title)}</title></rect>'
    )


def _axis(scale: _Scale, height: int) -> list[str]:
    """Ticks of wall-clock time (UTC) at a round step, each a line and a label."""
    span = scale.last - scale.first
    step = next((s for s in STEPS if span / s <= 8), 86400 * math.ceil(span / 86400 / 8))
    fmt = "%H:%M:%S" if step < 60 else "%H:%M" if span < 86400 else "%m-%d %H:%M"
    parts = []
    tick = math.ceil(scale.first / step) * step
    while tick <= scale.last:
        at = scale.x(tick)
        label = datetime.fromtimestamp(tick, UTC).strftime(fmt)
        parts.append(
            f'<line class=axis x1="{at:.1f}" x2="{at:.1f}" y1="14" y2="{height}"/>'
            f'<text x="{at:.1f}" y="11" text-anchor="middle">{label}</text>'
        )
        tick += step
    return parts
