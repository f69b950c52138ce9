"""How large a Backfill's plan would be, counted before it is made. Pure.

The planner holds every instance of a plan in memory (a plan of 813,940 peaks at
465 MB), and its loop visits every (business date, scope node) pair, whether it plans an
instance there or not. A pull request's spec may ask for a minutely node over two
centuries, a hundred million instances: `check` would run out of memory before its
`too-many-instances` risk could say so. So a plan's size is counted first, from each
node's times of day and the business date ranges, without enumerating a date, and a
Backfill over `MAX_PLANNED` is refused at its dates before anything is planned
(`semantics`); `usecases.plan` holds the Backfills of one run under it together. The
ceiling protects the process, so no setting raises it; Config `spec.checks.maxInstances`
is the risk threshold below it.

The count is an upper bound: every scheduled time of a node on every date its
`effective` period covers. It is exact for daily-or-finer nodes away from DST changes.
A calendar node is counted as if it ran on every date (it has one dry-run instance on
a date it does not run), and wall-clock times that a DST change folds onto one instant
are counted apart.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import date
from itertools import accumulate
from typing import TYPE_CHECKING, NamedTuple

from backfill_ctl.core.schedules import analyse
from backfill_ctl.errors import Diagnostic
from backfill_ctl.spec.cron import cron_error

if TYPE_CHECKING:
    from collections.abc import Iterable

    from backfill_ctl.core.selection import Scope
    from backfill_ctl.spec.catalog import Catalog
    from backfill_ctl.spec.model import Backfill, Period

# Instances (and date-node pairs) planned at once: above 2x the benchmark's 813,940
# (465 MB), well below what a CI runner holds.
MAX_PLANNED = 2_000_000


def merged(periods: Iterable[Period]) -> list[tuple[int, int]]:
    """The union of date ranges as disjoint (first, last) ordinals, ascending."""
    spans = []
    for period in periods:
        assert period.start is not None and period.end is not None
        spans.append((period.start.toordinal(), period.end.toordinal()))
    spans.sort()
    out: list[tuple[int, int]] = []
    for first, last in spans:
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


class Size(NamedTuple):
    """A Backfill's plan, counted before it is made."""

    instances: int  # at most (see the module docstring)
    dates: int
    nodes: int
    largest: tuple[tuple[str, int], ...]  # the nodes with the most instances, most first

    @property
    def work(self) -> int:
        """What planning holds or visits: its instances, or its date-node pairs."""
        return max(self.instances, self.dates * self.nodes)


def plan_size(catalog: Catalog, backfill: Backfill, scope: Scope) -> Size:
    """Count the plan of `backfill` over `scope`: O(nodes x log(date ranges))."""
    spans = merged(backfill.dates)
    starts = [first for first, _ in spans]
    before = [0, *accumulate(last - first + 1 for first, last in spans)]

    def upto(day: int) -> int:  # business dates on or before the ordinal `day`
        i = bisect_right(starts, day)
        return before[i - 1] + min(day, spans[i - 1][1]) - spans[i - 1][0] + 1 if i else 0

    dates = before[-1]
    per_node: list[tuple[str, int]] = []
    for name in scope.nodes:
        node = catalog.nodes[name]
        if cron_error(node.schedule):
            continue  # reported with the node, which stops all planning
        days = dates
        effective = node.effective
        if effective.start is not None or effective.end is not None:
            # `effective` bounds the scheduled day, business date + 1.
            first = effective.start.toordinal() - 1 if effective.start else 0
            last = effective.end.toordinal() - 1 if effective.end else date.max.toordinal()
            days = max(0, upto(last) - upto(first - 1))
        times = len(analyse(node.schedule).times_in(backfill.time_window))
        per_node.append((name, days * times))
    per_node.sort(key=lambda count: -count[1])
    return Size(sum(n for _, n in per_node), dates, len(scope.nodes), tuple(per_node[:3]))


def too_large(backfill: Backfill, size: Size, planned: int = 0) -> Diagnostic | None:
    """The refusal of a Backfill whose plan does not fit under `MAX_PLANNED` beside the
    `planned` work of the Backfills planned before it, at its dates; None if it fits."""
    room = MAX_PLANNED - planned
    if size.work <= room:
        return None
    if size.instances >= size.dates * size.nodes:
        nodes = ", ".join(f"{name}: {count:,}" for name, count in size.largest)
        what = f"would plan up to {size.instances:,} instances ({nodes})"
    else:
        what = (
            f"spans {size.dates:,} business dates x {size.nodes:,} nodes, "
            f"{size.dates * size.nodes:,} pairs for the planner to go through"
        )
    limit = f"the {MAX_PLANNED:,} backfillctl plans at once"
    if planned:
        limit = f"the {room:,} that the Backfills planned before it leave of {limit}"
    return Diagnostic.in_document(
        backfill.origin,
        f"{what}, more than {limit}",
        path=("spec", "dates"),
        hint="split it into Backfills of fewer dates or nodes; this ceiling keeps planning "
        "within memory and no setting raises it (Config spec.checks.maxInstances is the "
        "risk threshold below it)",
        code="plan-too-large",
        backfill=backfill.name,
    )
