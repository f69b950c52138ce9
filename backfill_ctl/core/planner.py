"""From a Backfill and its scope to the exact, ordered list of instances (DESIGN §4).

Pure: no clock (`now` is an argument), no I/O. The same inputs give the same plan,
byte for byte, and the same instance ids, which is what the reconciler diffs on.

An instance id names a *slot*, not a time: a hash of backfill, node, business date and
"tick k of n", where n is how many times of day the node's cron fires and k the
position of the instance's time among them (before the timeWindow cuts any). Moving a
cron time (02:30 -> 02:45), the workspace's timezone, or the timeWindow keeps the ids
of the slots that remain, so the reconciler sees a changed scheduled time of the same
instance, not a new instance beside the old one; a cron that fires a different number
of times a day has other slots, hence other ids.

Ordering is expressed with two mechanisms, never with N² edges:

- `group` / `sequence`: the business dates, in the backfill's order, are cut into
  contiguous chunks (larger first). Chunks run in parallel; inside a chunk, the
  date with sequence k+1 waits for every instance of sequence k (a date barrier).
- `depends_on`: edges inside one business date only: from an in-scope upstream
  (slot to slot when both nodes share a cron and timezone, all of the upstream's
  instances otherwise) and, for self-dependent sub-daily nodes, from the previous
  instance of the same node.

The inner loop runs once per instance (a million of them in the benchmark), so the
work that does not depend on the instance is hoisted out of it: schedules per cron,
ticks per (timezone, times, day), expression values per date (the render cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cached_property
from typing import TYPE_CHECKING, NamedTuple

from backfill_ctl.core.params import Context

# compile_node is used beside the planner (semantics, reconcile): imported from here.
from backfill_ctl.core.prepare import compile_node as compile_node
from backfill_ctl.core.prepare import prepare, slot_key, ticks_of
from backfill_ctl.core.schedules import is_degraded, scheduled_day, zone
from backfill_ctl.core.size import merged
from backfill_ctl.hashes import blake2b
from backfill_ctl.spec.collector import collector_paused

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from backfill_ctl.core.params import Template
    from backfill_ctl.core.prepare import Tick
    from backfill_ctl.core.selection import DryRunReason, Scope
    from backfill_ctl.errors import Diagnostic
    from backfill_ctl.spec.catalog import Catalog
    from backfill_ctl.spec.model import Backfill, Period


class Instance(NamedTuple):
    """One (backfill, node, business date, tick of the day) to execute.

    A NamedTuple rather than a frozen dataclass: it is as immutable and typed, and
    building a million of them costs a third of the time.
    """

    id: str
    node: str
    bizdate: date
    cyctime: datetime  # aware, in the node's workspace timezone
    dry_run_reason: DryRunReason | None
    group: int
    sequence: int
    priority: int
    wait_for_time: bool
    depends_on: tuple[str, ...]
    command: tuple[str, ...] | str

    @property
    def dry_run(self) -> bool:
        return self.dry_run_reason is not None


class Isolated(NamedTuple):
    """An in-scope upstream produced no instance for a date the node has one."""

    node: str
    bizdate: date
    upstream: str


@dataclass(frozen=True)
class BackfillPlan:
    """One Backfill planned: its scope, business dates, date chunks and instances."""

    backfill: Backfill
    scope: Scope
    dates: tuple[date, ...]  # business dates in run order
    chunks: tuple[tuple[date, ...], ...]
    instances: tuple[Instance, ...]
    isolated: tuple[Isolated, ...] = ()
    diagnostics: tuple[Diagnostic, ...] = ()

    @property
    def name(self) -> str:
        return self.backfill.name

    def summary(self) -> dict[str, int]:
        return dict(self._summary)

    @cached_property
    def _summary(self) -> dict[str, int]:
        return {
            "instances": len(self.instances),
            "dryRun": sum(1 for i in self.instances if i.dry_run_reason is not None),
            "nodes": len(self.scope.nodes),
            "dates": len(self.dates),
            "groups": len(self.chunks),
            "waitingForTime": sum(1 for i in self.instances if i.wait_for_time),
        }


@dataclass(frozen=True)
class Plan:
    """Every planned Backfill, with the time and actor planned for and the specs' digest."""

    backfills: tuple[BackfillPlan, ...]
    now: datetime
    actor: str | None
    digest: str


def business_dates(periods: Iterable[Period], order: str = "ascending") -> list[date]:
    """The union of the date ranges, each date once, in run order (overlapping ranges
    merged first: each date is made once, however many ranges hold it)."""
    days = [date.fromordinal(d) for first, last in merged(periods) for d in range(first, last + 1)]
    if order == "descending":
        days.reverse()
    return days


def split_groups(dates: Sequence[date], groups: int) -> list[tuple[date, ...]]:
    """Contiguous chunks whose sizes differ by at most one, larger chunks first."""
    count = min(groups, len(dates))
    if count == 0:
        return []
    size, extra = divmod(len(dates), count)
    chunks, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        chunks.append(tuple(dates[start:end]))
        start = end
    return chunks


def instance_id(backfill: str, node: str, bizdate: date, tick: int, ticks: int) -> str:
    """blake2b-64 of backfill, node, business date and "tick of ticks" (see the module
    docstring; the planner's loop computes the same hash from a per-node prefix)."""
    key = f"{backfill}\x1f{node}\x1f".encode() + slot_key(bizdate.isoformat(), tick, ticks)
    return blake2b(key, digest_size=8).hexdigest()


def plan_backfill(
    catalog: Catalog, backfill: Backfill, scope: Scope, now: datetime
) -> BackfillPlan:
    """The instances of one backfill over a valid scope (see the module docstring)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    with collector_paused():
        return _plan(catalog, backfill, scope, now)


# An Instance from a tuple of its fields, without the Python-level __new__ a NamedTuple
# has: one call fewer per instance.
_new = tuple.__new__


# The loop runs once per instance (a million in the benchmark): it stays in one frame,
# without a call per instance; what does not depend on the instance is in `prepare`.
# shape: the planner's inner loop, kept whole for speed (see above)
def _plan(catalog: Catalog, backfill: Backfill, scope: Scope, now: datetime) -> BackfillPlan:
    dates = business_dates(backfill.dates, backfill.order)
    chunks = split_groups(dates, backfill.groups)
    position = {day: (g, s) for g, chunk in enumerate(chunks) for s, day in enumerate(chunk)}
    prepared, slots = prepare(catalog, backfill, scope, dates)
    today = {tz: now.astimezone(zone(tz)).date() for tz in {p.tz for p in prepared}}
    now_epoch = now.timestamp()
    waits = not backfill.run_immediately
    job = backfill.name
    cache: dict[object, str] = {}
    instances: list[Instance] = []
    isolated: list[Isolated] = []
    append = instances.append

    for bizdate in dates:
        group, sequence = position[bizdate]
        day = scheduled_day(bizdate)
        key = bizdate.isoformat()
        old = {tz: is_degraded(bizdate, t) for tz, t in today.items()}
        day_ticks: list[list[Tick] | None] = [None] * len(slots)
        ids_of: dict[str, list[str]] = {}
        # What a command of the business date only reads (bound templates: no node field)
        on_date = Context(bizdate, datetime.combine(bizdate, time()))
        rendered: dict[Template, str] = {}  # bound templates (shared by nodes) on that date
        for p in prepared:
            name = p.name
            if not p.times or (p.effective is not None and day not in p.effective):
                ids_of[name] = []
                continue
            reason = p.reason
            slot = p.slot
            if p.days is not None and day not in p.days:
                # A calendar node on a day it does not run: keep the order, run nothing.
                slot = p.first_slot
                reason = reason or "not-scheduled-day"
            ticks = day_ticks[slot]
            if ticks is None:
                ticks = day_ticks[slot] = ticks_of(slots[slot], day, key)
            priority = p.degraded if old[p.tz] else p.priority
            many = len(ticks) > 1
            upstream_ids: list[tuple[list[str], bool]] = []
            every: list[str] = []  # every instance of every upstream
            per_tick = many and p.chain
            for up, same in p.upstream:
                found = ids_of[up]
                if not found:
                    isolated.append(Isolated(name, bizdate, up))
                slotted = many and same and len(found) == len(ticks)
                per_tick = per_tick or slotted
                upstream_ids.append((found, slotted))
                every.extend(found)
            # Dependencies and command the same for every tick: built once, shared.
            shared_deps = None if per_tick else tuple(every)
            shared: tuple[str, ...] | None = None
            if p.by_date:
                assert p.argv is not None
                argv = p.argv.copy()
                for i, template in p.dynamic:
                    text = rendered.get(template)
                    if text is None:
                        text = rendered[template] = template.render(on_date, cache)
                    argv[i] = text
                shared = tuple(argv)
            ids: list[str] = []
            for index, tick in enumerate(ticks):
                hasher = p.id_prefix.copy()
                hasher.update(tick.slot)
                iid = hasher.hexdigest()
                deps: list[str] | tuple[str, ...]
                if shared_deps is not None:
                    deps = shared_deps
                else:
                    deps = []
                    for found, slotted in upstream_ids:
                        if slotted:
                            deps.append(found[index])
                        else:
                            deps.extend(found)
                    if p.chain and index:
                        deps.append(ids[index - 1])
                    deps = tuple(deps)
                command: tuple[str, ...] | str
                if shared is not None:
                    command = shared
                elif p.argv is None:
                    assert p.shell is not None
                    command = p.shell.render_shell(
                        Context(bizdate, tick.at.replace(tzinfo=None), iid, name, job), cache
                    )
                else:
                    ctx = Context(bizdate, tick.at.replace(tzinfo=None), iid, name, job)
                    argv = p.argv.copy()
                    for i, template in p.dynamic:
                        argv[i] = template.render(ctx, cache)
                    command = tuple(argv)
                append(
                    _new(
                        Instance,
                        (
                            iid,
                            name,
                            bizdate,
                            tick.at,
                            reason,
                            group,
                            sequence,
                            priority,
                            waits and tick.epoch > now_epoch,
                            deps,
                            command,
                        ),
                    )
                )
                ids.append(iid)
            ids_of[name] = ids
    return BackfillPlan(
        backfill, scope, tuple(dates), tuple(chunks), tuple(instances), tuple(isolated)
    )
