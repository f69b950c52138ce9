"""Instances: their rows, the reads (by backfill, id, state; the scheduler's
task rows; counts) and the state changes made outside an attempt (guarded transitions,
the scheduler's waiting states with their blockers), each with its events."""

from __future__ import annotations

import json
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from backfill_ctl.core.records import DateSpan, InstanceRecord, Run, date_spans
from backfill_ctl.state.sql.base import SQLStore
from backfill_ctl.state.sql.blocks import block_of, block_sql
from backfill_ctl.state.sql.events import EVENT_INSERT

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from backfill_ctl.core.blocks import TaskBlock
    from backfill_ctl.core.records import TaskTuple

INSTANCE_COLUMNS = (
    "id, backfill, node, bizdate, cyctime, cyctime_epoch, timezone, grp, seq, priority, "
    "depends_on, run, resource_group, dry_run_reason, state, reason, attempts, tries_left, "
    "ignore_deps, stop_requested, created_at, updated_at, started_at, finished_at, not_before, "
    "blocker"
)
_SETTABLE_INSTANCE = {
    "tries_left",
    "ignore_deps",
    "stop_requested",
    "finished_at",
    "started_at",
    "not_before",
}


_BLOCKS = 64  # dates read at a time (task_blocks): their texts, freed, stay in the heap


def _with_deps(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """A batch of task rows with their dependencies parsed (a row without: as it is)."""
    if list(map(itemgetter(10), rows)).count(None) == len(rows):
        return rows
    return [r if r[10] is None else (*r[:10], tuple(json.loads(r[10])), *r[11:]) for r in rows]


def instance_row(i: InstanceRecord) -> tuple[Any, ...]:
    return (
        i.id,
        i.backfill,
        i.node,
        i.bizdate,
        i.cyctime,
        i.cyctime_epoch,
        i.timezone,
        i.group,
        i.sequence,
        i.priority,
        json.dumps(list(i.depends_on)),
        json.dumps(i.run.to_json()),
        i.resource_group,
        i.dry_run_reason,
        i.state,
        i.reason,
        i.attempts,
        i.tries_left,
        int(i.ignore_deps),
        int(i.stop_requested),
        i.created_at,
        i.updated_at,
        i.started_at,
        i.finished_at,
        i.not_before,
        None if i.blocker is None else json.dumps(i.blocker),
    )


def instance_of(row: Sequence[Any]) -> InstanceRecord:
    return InstanceRecord(
        id=row[0],
        backfill=row[1],
        node=row[2],
        bizdate=row[3],
        cyctime=row[4],
        cyctime_epoch=row[5],
        timezone=row[6],
        group=row[7],
        sequence=row[8],
        priority=row[9],
        depends_on=tuple(json.loads(row[10])),
        run=Run.from_json(json.loads(row[11])),
        resource_group=row[12],
        dry_run_reason=row[13],
        state=row[14],
        reason=row[15],
        attempts=row[16],
        tries_left=row[17],
        ignore_deps=bool(row[18]),
        stop_requested=bool(row[19]),
        created_at=row[20],
        updated_at=row[21],
        started_at=row[22],
        finished_at=row[23],
        not_before=row[24],
        blocker=None if row[25] is None else json.loads(row[25]),
    )


class Instances(SQLStore):
    def instances(
        self,
        *,
        backfill: str | None = None,
        ids: Iterable[str] | None = None,
        states: Iterable[str] | None = None,
        node: str | None = None,
        bizdate: str | None = None,
    ) -> list[InstanceRecord]:
        clauses, params = [], []
        for column, value in (("backfill", backfill), ("node", node), ("bizdate", bizdate)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        for column, values in (("state", states), ("id", ids)):
            if values is not None:
                chosen = list(values)
                if not chosen:
                    return []
                among, param = self._among(column, chosen)
                clauses.append(among)
                params.append(param)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        # "+grp": the order is sorted, not read from the index by date (migration 5),
        # which would scan a whole backfill to find its few failed instances.
        rows = self._read(
            f"SELECT {INSTANCE_COLUMNS} FROM instances{where} "
            "ORDER BY backfill, +grp, seq, cyctime_epoch, node",
            params,
        )
        return [instance_of(r) for r in rows]

    def task_rows(self, backfills: Sequence[str]) -> Iterator[TaskTuple]:
        """The scheduler's view of the instances of `backfills` (no commands parsed), as
        the cursor streams it: never the whole list at once, and the rows as the driver
        gives them (flags as 0/1, no dependencies as NULL); only a row with dependencies
        is rebuilt, to parse them (a million rows: issue 15)."""
        among, chosen = self._among("backfill", backfills)
        batches = self._batches(
            "SELECT id, backfill, bizdate, grp, seq, priority, cyctime_epoch, timezone, "
            "resource_group, dry_run_reason IS NOT NULL, NULLIF(depends_on, '[]'), "
            f"ignore_deps, state, reason, not_before FROM instances WHERE {among}",
            (chosen,),
        )
        return chain.from_iterable(map(_with_deps, batches))  # no Python step per row

    def task_blocks(self, backfills: Sequence[str]) -> Iterator[TaskBlock]:
        """What task_rows gives, a date at a time (core/blocks.py): one GROUP BY per
        backfill, in the order of its date index (no sort), that the connection streams;
        a row per date of a few values (those all of its instances have) and JSON arrays
        (those that differ), not a row of fifteen values per instance (issue 15)."""
        sql = block_sql(self)
        for name in backfills:
            for batch in self._batches(sql, (name,), _BLOCKS):
                yield from (block_of(name, row, self.TEXTS_SEPARATOR) for row in batch)

    def counts(self, backfill: str | None = None) -> dict[tuple[str, str], int]:
        sql = "SELECT backfill, state, COUNT(*) FROM instances"
        params: tuple[Any, ...] = ()
        if backfill is not None:
            sql += " WHERE backfill = ?"
            params = (backfill,)
        return {(b, s): n for b, s, n in self._read(sql + " GROUP BY backfill, state", params)}

    def month_counts(
        self, backfill: str
    ) -> dict[tuple[str, str, str, bool, bool], tuple[int, str]]:
        """(node, YYYY-MM, state, dry-run, behind a failed date of its group) ->
        (instances, the smallest id of that node, month and state).

        Two reads: each date group's first failed date (index by state), then one pass
        over the backfill's grid index (migration 5) in its order, so SQLite groups
        without sorting: under 0.3 s for 1,000,000 instances where a join to the failed
        dates, or a GROUP BY on the "behind" flag, took 1.3 s (bench/run_bench.py)."""
        failed = self._read(
            "SELECT grp, MIN(seq) FROM instances WHERE backfill = ? AND state = 'failed' "
            "GROUP BY grp",
            (backfill,),
        )
        first = " ".join(f"WHEN {int(g)} THEN {int(q)}" for g, q in failed)
        behind = f"CASE WHEN seq > CASE grp {first} END THEN 1 ELSE 0 END" if failed else "0"
        rows = self._read(
            "SELECT node, substr(bizdate, 1, 7), state, dry_run_reason IS NOT NULL, "
            f"COUNT(*), MIN(id), SUM({behind}) FROM instances WHERE backfill = ? "
            "GROUP BY node, substr(bizdate, 1, 7), state, dry_run_reason IS NOT NULL",
            (backfill,),
        )
        cells: dict[tuple[str, str, str, bool, bool], tuple[int, str]] = {}
        for node, month, state, dry, count, least, late in rows:
            for flag, n in ((False, count - (late or 0)), (True, late or 0)):
                if n:
                    cells[(node, month, state, bool(dry), flag)] = (n, least)
        return cells

    def date_counts(self, backfill: str) -> dict[tuple[int, int, str, str], int]:
        """(group, sequence, bizdate, state) -> instances: a backfill's progress by date."""
        rows = self._read(
            "SELECT grp, seq, bizdate, state, COUNT(*) FROM instances WHERE backfill = ? "
            "GROUP BY bizdate, grp, seq, state",  # the order of the date index
            (backfill,),
        )
        return {(g, q, d, s): n for g, q, d, s, n in rows}

    def date_spans(self, backfill: str) -> dict[tuple[int, int, str], DateSpan]:
        """Per (group, sequence, bizdate): the first start, the last end of an attempt
        (None while one runs) and the instances by state, from one GROUP BY (a row per
        date and state; a finish without a start, as a dry-run's or a cancel's, is no
        attempt's end)."""
        rows = self._read(
            "SELECT grp, seq, bizdate, state, COUNT(*), MIN(started_at), "
            "MAX(CASE WHEN started_at IS NOT NULL THEN finished_at END) "
            "FROM instances WHERE backfill = ? GROUP BY bizdate, grp, seq, state",
            (backfill,),
        )
        return date_spans(((g, q, d), s, n, first, last) for g, q, d, s, n, first, last in rows)

    def transition(
        self,
        ids: Sequence[str],
        to_state: str,
        *,
        allowed: Iterable[str],
        at: float,
        actor: str,
        origin: str,
        reason: str | None = None,
        kind: str = "transition",
        **fields: Any,
    ) -> list[str]:
        """Move the instances that are in an `allowed` state; the ids that moved."""
        unknown = set(fields) - _SETTABLE_INSTANCE
        if unknown:
            raise ValueError(f"cannot set {sorted(unknown)} on an instance")
        allowed = list(allowed)
        extra = "".join(f", {k} = ?" for k in fields)
        values = [int(v) if isinstance(v, bool) else v for v in fields.values()]
        moved: list[str] = []
        among_ids, chosen = self._among("id", ids)
        among_states, states = self._among("state", allowed)
        with self._write() as db:
            rows = db.execute(
                f"SELECT id, backfill, state FROM instances WHERE {among_ids} AND {among_states}",
                (chosen, states),
            ).fetchall()
            db.executemany(
                "UPDATE instances SET state = ?, reason = ?, blocker = NULL, "
                f"updated_at = ?{extra} WHERE id = ?",
                [(to_state, reason, at, *values, row[0]) for row in rows],
            )
            db.executemany(
                EVENT_INSERT,
                [(at, actor, origin, kind, b, i, s, to_state, reason) for i, b, s in rows],
            )
            moved = [row[0] for row in rows]
        return moved

    def set_waiting(
        self,
        updates: Sequence[tuple[str, str, str | None, Mapping[str, Any] | None]],
        *,
        at: float,
        actor: str,
        origin: str,
    ) -> int:
        """Batch the scheduler's view of waiting instances: (id, state, reason, blocker)."""
        if not updates:
            return 0
        with self._write() as db:
            changed = self._waiting_changes(db, [(i, s, r) for i, s, r, _ in updates])
            db.executemany(
                "UPDATE instances SET state = ?, reason = ?, blocker = ?, updated_at = ? "
                "WHERE id = ? AND state IN ('pending', 'waiting-for-time', "
                "'waiting-for-resources')",
                [
                    (state, reason, None if blocker is None else json.dumps(blocker), at, i)
                    for i, state, reason, blocker in updates
                ],
            )
            db.executemany(
                "INSERT INTO events (at, actor, origin, kind, backfill, instance, from_state, "
                "to_state, message) VALUES (?, ?, ?, 'transition', ?, ?, ?, ?, ?)",
                [(at, actor, origin, b, i, s, new, why) for i, b, s, new, why in changed],
            )
        return len(changed)
