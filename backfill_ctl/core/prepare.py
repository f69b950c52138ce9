"""What the planner's inner loop needs of each node of a scope, computed once per plan.

The inner loop (`planner._plan`) runs once per instance; everything that does not depend
on the instance is worked out here: each node's compiled command (constant argv
elements apart from the templates), its times of day inside the time window, and the
*slots* it shares with other nodes (same timezone, times and "k of n"), whose ticks are
computed once per day for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, NamedTuple

from backfill_ctl.core.params import (
    Context,
    ParamError,
    compile_command,
    compile_parameters,
    compile_template,
    env_name,
)
from backfill_ctl.core.schedules import (
    analyse,
    degrade,
    scheduled_day,
    scheduled_days,
    ticks_on,
    zone,
)
from backfill_ctl.hashes import blake2b

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import date, time

    from backfill_ctl.core.params import Template
    from backfill_ctl.core.selection import DryRunReason, Scope
    from backfill_ctl.spec.catalog import Catalog
    from backfill_ctl.spec.model import Backfill, Node, Period


def slot_key(bizdate: str, tick: int, ticks: int) -> bytes:
    """The instance id's input after the node: the business date (ISO text), k/n."""
    return f"{bizdate}\x1f{tick}/{ticks}".encode()


def compile_node(
    node: Node, overrides: Iterable[tuple[str, str]] = ()
) -> tuple[dict[str, Template], list[Template] | Template, dict[str, Template]]:
    """Parameters, command and env templates of a node (raises params.ParamError)."""
    params = compile_parameters(node.parameters, overrides)
    command = node.run.command
    compiled: list[Template] | Template = (
        compile_command(command, params)
        if isinstance(command, str)
        else [compile_template(arg, params) for arg in command]
    )
    env = {key: compile_template(value, params) for key, value in node.run.env}
    for name in params:
        if env_name(name) in env:  # it would hide the value a string command reads
            raise ParamError(
                f"run.env sets {env_name(name)}, where parameter {name}'s value is exported",
                hint="name the variable otherwise",
                parameter=name,
            )
    return params, compiled, env


# The scheduled time in the context a node's templates are bound with: `bind` reads only
# the fields the node fixes.
_ANY_TIME = datetime(2000, 1, 1)


class Tick(NamedTuple):
    at: datetime  # aware (its wall-clock time, what $[...] expressions see: without tzinfo)
    slot: bytes  # the instance id's input after the node: business date, k/n
    epoch: float


class Slots(NamedTuple):
    """The ticks nodes share: same timezone, same times of day, same k/n."""

    tz: str
    times: tuple[time, ...]
    ordinals: tuple[int, ...]  # k of each time among the cron's n times of day
    per_day: int  # n


def ticks_of(slots: Slots, day: date, bizdate: str) -> list[Tick]:
    """The ticks of `slots` on the scheduled `day` of the business date (ISO text)."""
    n = slots.per_day
    ordinals = slots.ordinals
    return [
        _new(Tick, (at, slot_key(bizdate, ordinals[index], n), at.timestamp()))
        for index, at in ticks_on(day, slots.times, zone(slots.tz))
    ]


_new = tuple.__new__  # a NamedTuple without its Python-level __new__


@dataclass
class Prepared:
    """What the inner loop needs of one scope node, computed once per plan."""

    name: str
    tz: str
    times: tuple[time, ...]  # scheduled times of day inside the time window
    slot: int  # index of its Slots: nodes sharing it share their ticks
    first_slot: int  # index of the Slots of its first time: a calendar node's dry-run tick
    days: frozenset[date] | None  # scheduled days of a calendar node; None = every day
    effective: Period | None  # None when the node is always effective
    reason: DryRunReason | None  # node-level dry-run reason
    priority: int
    degraded: int
    upstream: tuple[tuple[str, bool], ...]  # (in-scope upstream, slot to slot?)
    chain: bool  # self-dependent and several instances a day
    id_prefix: blake2b
    # An argv command: the constant elements, and (index, template) of the others, bound
    # to the node (`$nodeid $jobid $gmtdate` are text: what remains reads the date or tick)
    argv: list[str] | None
    dynamic: tuple[tuple[int, Template], ...]
    by_date: bool  # an argv command that reads the business date only: one per node and date
    shell: Template | None  # a string command


def prepare(
    catalog: Catalog, backfill: Backfill, scope: Scope, dates: Sequence[date]
) -> tuple[list[Prepared], list[Slots]]:
    first = scheduled_day(min(dates))
    days = tuple(sorted({scheduled_day(d) for d in dates}))  # (the days they run on)
    slots: dict[Slots, int] = {}
    prepared: list[Prepared] = []
    for name in scope.nodes:
        node = catalog.nodes[name]
        schedule = analyse(node.schedule)
        tz = catalog.timezone(name)
        _, command, _ = compile_node(node, backfill.parameters)
        upstream = tuple(
            (up, analyse(catalog.nodes[up].schedule) == schedule and catalog.timezone(up) == tz)
            for up in scope.upstream[name]
        )
        times = schedule.times_in(backfill.time_window)
        ordinals = _ordinals(schedule.times, times)
        count = len(schedule.times)
        argv: list[str] | None = None
        dynamic: tuple[tuple[int, Template], ...] = ()
        shell: Template | None = None
        if isinstance(command, list):
            argv, dynamic = _bound_argv(command, Context(first, _ANY_TIME, "", name, backfill.name))
        else:
            shell = command
        effective = node.effective
        prepared.append(
            Prepared(
                name=name,
                tz=tz,
                times=times,
                slot=slots.setdefault(Slots(tz, times, ordinals, count), len(slots)),
                first_slot=slots.setdefault(Slots(tz, times[:1], ordinals[:1], count), len(slots)),
                days=None if schedule.daily else scheduled_days(node.schedule, days),
                effective=None if effective.start is None and effective.end is None else effective,
                reason=scope.dry_run.get(name),
                priority=node.priority,
                degraded=degrade(node.priority),
                upstream=upstream,
                chain=node.self_dependent and len(times) > 1,
                id_prefix=blake2b(f"{backfill.name}\x1f{name}\x1f".encode(), digest_size=8),
                argv=argv,
                dynamic=dynamic,
                by_date=argv is not None and not any(t.per_tick for _, t in dynamic),
                shell=shell,
            )
        )
    return prepared, list(slots)


def _bound_argv(
    command: list[Template], ctx: Context
) -> tuple[list[str], tuple[tuple[int, Template], ...]]:
    """The constant elements of a node's argv (what the node fixes made text, see
    `Template.bind`), and (index, bound template) of the others."""
    argv: list[str] = []
    dynamic: list[tuple[int, Template]] = []
    for index, template in enumerate(command):
        bound = template.bind(ctx) if template.constant is None else template
        argv.append(bound.constant or "")
        if bound.constant is None:
            dynamic.append((index, bound))
    return argv, tuple(dynamic)


@cache
def _ordinals(every: tuple[time, ...], chosen: tuple[time, ...]) -> tuple[int, ...]:
    """The position of each chosen time of day among all the times of the cron."""
    position = {at: k for k, at in enumerate(every)}
    return tuple(position[at] for at in chosen)
