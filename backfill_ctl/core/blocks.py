"""The scheduler's rows a date at a time, by column (issue 15: a controller's load).

`TaskTuple` rows cost a database driver a Python object per column of each of a million
rows (about 2 of the 3.8 s a SQLite store took to load); most of those columns are the
same for every instance of a date. A `TaskBlock` is the instances of one date of a
backfill (its business date, date group and sequence): their ids, and each other column
as one value when all of them have it (the usual: one priority, time zone, resource
group and state for a date), else a list. A store builds it in SQL (GROUP BY the date,
an aggregate per column: state/sql/instances.py), so its driver makes a few objects per
date, not fifteen per row; `TaskTable.extend` then stores a date with a few C calls.

The order of the instances in a block is the store's (the same for every column); each
block holds a date's instances, a date is in one block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    from backfill_ctl.core.records import TaskTuple

DRY_RUN, IGNORE_DEPS = 1, 2  # the bits of `TaskBlock.flags`


@dataclass(slots=True)
class TaskBlock:
    """One date's instances by column (see the module docstring)."""

    backfill: str
    bizdate: str
    group: int
    sequence: int
    ids: list[str]
    priority: int | list[int]
    cyctime: float | list[float]
    timezone: str | list[str]
    resource_group: str | list[str]
    flags: int | list[int]  # DRY_RUN | IGNORE_DEPS
    state: str | list[str]
    deps: list[list[str]] | None = None  # one list each ([] for none); None: none has any
    reason: list[str | None] | None = None  # None: none has a reason
    not_before: list[float | None] | None = None  # None: none waits for a retry

    def column(self, values: Any) -> list[Any]:
        """A column as one value per instance."""
        return values if isinstance(values, list) else [values] * len(self.ids)

    def rows(self) -> list[TaskTuple]:
        """The block as `task_rows` gives it, a `TaskTuple` per instance."""
        n = len(self.ids)
        flags = self.column(self.flags)
        deps = self.deps or [[]] * n
        return list(
            zip(
                self.ids,
                [self.backfill] * n,
                [self.bizdate] * n,
                [self.group] * n,
                [self.sequence] * n,
                self.column(self.priority),
                self.column(self.cyctime),
                self.column(self.timezone),
                self.column(self.resource_group),
                [f & DRY_RUN for f in flags],
                [tuple(d) or None for d in deps],
                [1 if f & IGNORE_DEPS else 0 for f in flags],
                self.column(self.state),
                self.reason or [None] * n,
                self.not_before or [None] * n,
                strict=True,
            )
        )


def blocks_of(rows: Iterable[TaskTuple]) -> list[TaskBlock]:
    """`TaskTuple` rows as blocks, a block per date in the order of their first rows (the
    rows of a date in their order): what a store without SQL gives (the in-memory one)."""
    dates: dict[tuple[str, str, int, int], list[TaskTuple]] = {}
    for r in rows:
        dates.setdefault((r[1], r[2], r[3], r[4]), []).append(r)
    return [_block(key, members) for key, members in dates.items()]


def _one(values: list[Any]) -> Any:
    """A column's one value, if every instance has it; else the list."""
    return values[0] if values.count(values[0]) == len(values) else values


def _block(key: tuple[str, str, int, int], rows: list[TaskTuple]) -> TaskBlock:
    cols = list(zip(*rows, strict=True))
    flags = [
        (DRY_RUN if d else 0) | (IGNORE_DEPS if g else 0)
        for d, g in zip(cols[9], cols[11], strict=True)
    ]
    deps = [list(d or ()) for d in cols[10]]
    return TaskBlock(
        *key,
        ids=list(cols[0]),
        priority=_one(list(cols[5])),
        cyctime=_one(list(cols[6])),
        timezone=_one(list(cols[7])),
        resource_group=_one(list(cols[8])),
        flags=_one(flags),
        state=_one(list(cols[12])),
        deps=deps if any(deps) else None,
        reason=list(cols[13]) if any(r is not None for r in cols[13]) else None,
        not_before=list(cols[14]) if any(t is not None for t in cols[14]) else None,
    )
