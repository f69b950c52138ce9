"""The scheduler's rows a date at a time (core/blocks.py), read with one GROUP BY.

A row per date (bizdate, grp, seq) of a backfill, in the order of the date index (no
sort): each column's values joined by an aggregate, in the same order for every column.
Every aggregate reads every row (a CASE around one does not spare it), so there is one
per column, not a min() and max() besides: a column whose values are all the same is
recognised here, by comparing its text with its first value repeated (C, not a step per
instance), and kept as that one value; only a column that differs is parsed as a list.

The aggregates are the store's (SQLStore.TEXTS, JOINED, REAL): text as a JSON array
(its values joined by the store's TEXTS_SEPARATOR), numbers as their text joined by
commas, doubles as a text that reads back exactly.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from backfill_ctl.core.blocks import TaskBlock

if TYPE_CHECKING:
    from collections.abc import Callable

    from backfill_ctl.state.sql.base import SQLStore

# dry-run 1, ignore-deps 2 (core/blocks.py)
FLAGS = "CASE WHEN dry_run_reason IS NULL THEN 0 ELSE 1 END + 2 * ignore_deps"


def block_sql(store: SQLStore) -> str:
    """The GROUP BY of one backfill's blocks (its one parameter: the backfill)."""
    texts, joined, real = store.TEXTS.format, store.JOINED.format, store.REAL.format
    columns = (
        texts("id"),
        joined("priority"),
        joined(real("cyctime_epoch")),
        texts("timezone"),
        texts("resource_group"),
        joined(FLAGS),
        texts("state"),
        joined("depends_on"),
        texts("reason"),
        joined(real("not_before")),
    )
    return (
        f"SELECT bizdate, grp, seq, count(*), {', '.join(columns)} FROM instances "
        "WHERE backfill = ? GROUP BY bizdate, grp, seq"
    )


def _one(joined: str, n: int, sep: str = ",") -> str | None:
    """The one value of `n` joined by `sep`, if they are all the same; else None. The
    text is its first value and `sep` n - 1 times, then the first value, if it has
    their length, ends with the first value, and holds n - 1 of first + sep (a value
    holds no `sep` and starts with no part of it but the whole, so these cannot overlap
    the end: they tile the rest)."""
    first = joined.partition(sep)[0]
    if (
        len(joined) == n * (len(first) + len(sep)) - len(sep)
        and joined.endswith(first)
        and joined.count(first + sep) == n - 1
    ):
        return first
    return None


def _column(
    joined: str, n: int, one: Callable[[str], Any], many: Callable[[str], Any], sep: str = ","
) -> Any:
    value = _one(joined, n, sep)
    return many(joined) if value is None else one(value)


def _numbers(joined: str) -> list[Any]:
    return json.loads(f"[{joined}]")  # type: ignore[no-any-return]


def _floats(joined: str) -> list[Any]:
    return json.loads(f"[{joined}]", parse_int=float)  # type: ignore[no-any-return]


def _texts(array: str) -> list[Any]:
    return json.loads(array)  # type: ignore[no-any-return]


def _nulls(
    joined: str, n: int, many: Callable[[str], list[Any]], sep: str = ","
) -> list[Any] | None:
    """A column few instances have (NULL otherwise): None when none has it."""
    return None if _one(joined, n, sep) == "null" else many(joined)


def block_of(backfill: str, row: tuple[Any, ...], sep: str) -> TaskBlock:
    """A row of `block_sql` as the block of a date (`sep`: the store's TEXTS_SEPARATOR)."""
    bizdate, group, sequence, n, ids, priority, cyctime, zone, rg, flags, state = row[:11]
    deps, reason, not_before = row[11:]
    flag = _column(flags, n, int, _numbers)
    return TaskBlock(
        backfill,
        bizdate=bizdate,
        group=group,
        sequence=sequence,
        ids=json.loads(ids),
        priority=_column(priority, n, int, _numbers),
        cyctime=_column(cyctime, n, float, _floats),
        timezone=_column(zone[1:-1], n, json.loads, lambda _: json.loads(zone), sep),
        resource_group=_column(rg[1:-1], n, json.loads, lambda _: json.loads(rg), sep),
        flags=flag,
        state=_column(state[1:-1], n, json.loads, lambda _: json.loads(state), sep),
        deps=None if _one(deps, n) == "[]" else _numbers(deps),
        reason=_nulls(reason[1:-1], n, lambda _: _texts(reason), sep),
        not_before=_nulls(not_before, n, _floats),
    )
