"""The in-memory store's tables (dictionaries under one lock), the event log, and the
reads: backfills, instances, counts."""

from __future__ import annotations

import bisect
import copy
import secrets
import threading
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from backfill_ctl.core.blocks import TaskBlock, blocks_of
from backfill_ctl.core.records import (
    AttemptRecord,
    BackfillRecord,
    DateSpan,
    EventRecord,
    InstanceRecord,
    Lease,
    TaskRow,
    TaskTuple,
    date_spans,
)
from backfill_ctl.state.protocols import StoredLog

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence


SETTABLE_BACKFILL = frozenset(
    {"status", "suspended", "finished_at", "outcome", "notified_at", "spec"}
)
SETTABLE_INSTANCE = frozenset(
    {"tries_left", "ignore_deps", "stop_requested", "finished_at", "started_at", "not_before"}
)
_BOOLEAN = frozenset({"suspended", "ignore_deps", "stop_requested"})


def field_values(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: bool(v) if k in _BOOLEAN else copy.deepcopy(v) for k, v in fields.items()}


def _order(i: InstanceRecord) -> tuple[str, int, int, float, str]:
    return (i.backfill, i.group, i.sequence, i.cyctime_epoch, i.node)


class Tables:
    """What the in-memory store holds; each part below builds on it."""

    def __init__(self, path: str = "memory:") -> None:
        self.path = path
        self._store_id = secrets.token_hex(6)
        self._lock = threading.RLock()
        self._backfills: dict[str, BackfillRecord] = {}
        self._instances: dict[str, InstanceRecord] = {}
        self._attempts: dict[tuple[str, int], AttemptRecord] = {}
        self._events: list[EventRecord] = []
        self._next_event = 1
        self._groups: dict[str, tuple[str, int]] = {}
        self._lease: Lease | None = None
        self._logs: dict[tuple[str, int], StoredLog] = {}  # logs.py

    @property
    def store_id(self) -> str:
        return self._store_id

    def _saved(self) -> tuple[Any, ...]:
        """The tables as they are (their records are immutable), for `_restore`."""
        return (
            dict(self._backfills),
            dict(self._instances),
            dict(self._attempts),
            list(self._events),
            self._next_event,
            dict(self._groups),
            self._lease,
            dict(self._logs),
        )

    def _restore(self, saved: tuple[Any, ...]) -> None:
        (
            self._backfills,
            self._instances,
            self._attempts,
            self._events,
            self._next_event,
            self._groups,
            self._lease,
            self._logs,
        ) = saved

    def close(self) -> None:
        """Nothing to let go of: the records stay readable."""

    # -- events ----------------------------------------------------------------------

    def _keep_log(self, instance: str, number: int, text: str, size: int, at: float) -> None:
        """An attempt's log copy (save_log, end_attempt); the caller holds the lock."""
        self._logs[instance, number] = StoredLog(text.replace("\x00", "\ufffd"), size, at)

    def _event(
        self,
        at: float,
        actor: str,
        origin: str,
        kind: str,
        backfill: str | None,
        instance: str | None = None,
        from_state: str | None = None,
        to_state: str | None = None,
        message: str | None = None,
    ) -> None:
        self._events.append(
            EventRecord(
                self._next_event,
                at,
                actor,
                kind,
                backfill,
                instance,
                from_state,
                to_state,
                message,
                origin,
            )
        )
        self._next_event += 1

    def events(
        self,
        *,
        backfill: str | None = None,
        instance: str | None = None,
        after: int = 0,
        limit: int | None = None,
    ) -> list[EventRecord]:
        with self._lock:
            start = bisect.bisect_right(self._events, after, key=lambda e: e.id)
            found = [
                e
                for e in self._events[start:]
                if (backfill is None or e.backfill == backfill)
                and (instance is None or e.instance == instance)
            ]
        if limit is not None and limit >= 0:  # the newest `limit`, in order
            found = found[len(found) - limit :] if limit else []
        return found

    def news(self, after: int, origin: str) -> tuple[list[EventRecord], int]:
        found = self.events(after=after)
        newest = found[-1].id if found else after
        return [e for e in found if e.origin != origin], newest

    def last_event_id(self) -> int:
        with self._lock:
            return self._events[-1].id if self._events else 0

    def add_events(
        self,
        kind: str,
        entries: Sequence[tuple[str | None, str]],
        *,
        at: float,
        actor: str,
        origin: str,
    ) -> None:
        with self._lock:
            for backfill, message in entries:
                self._event(at, actor, origin, kind, backfill, message=message)

    # -- backfills -------------------------------------------------------------------

    def backfills(self, *, include_deleted: bool = False) -> list[BackfillRecord]:
        with self._lock:
            chosen = [
                b
                for _, b in sorted(self._backfills.items())
                if include_deleted or b.status != "deleted"
            ]
        return copy.deepcopy(chosen)

    def backfill(self, name: str) -> BackfillRecord | None:
        with self._lock:
            return copy.deepcopy(self._backfills.get(name))

    def resource_groups(self) -> dict[str, tuple[str, int]]:
        with self._lock:
            return dict(self._groups)

    def update_backfill(
        self,
        name: str,
        *,
        at: float,
        actor: str,
        origin: str,
        event: str | None = None,
        **fields: Any,
    ) -> bool:
        unknown = set(fields) - SETTABLE_BACKFILL
        if unknown:
            raise ValueError(f"cannot set {sorted(unknown)} on a backfill")
        with self._lock:
            record = self._backfills.get(name)
            if record is None:
                return False
            self._backfills[name] = replace(record, **field_values(fields))
            if event:
                self._event(at, actor, origin, "backfill", name, message=event)
        return True

    # -- instances -------------------------------------------------------------------

    def instances(
        self,
        *,
        backfill: str | None = None,
        ids: Iterable[str] | None = None,
        states: Iterable[str] | None = None,
        node: str | None = None,
        bizdate: str | None = None,
    ) -> list[InstanceRecord]:
        wanted = None if states is None else set(states)
        with self._lock:
            if ids is None:
                pool = list(self._instances.values())
            else:
                pool = [self._instances[i] for i in dict.fromkeys(ids) if i in self._instances]
        found = [
            i
            for i in pool
            if (backfill is None or i.backfill == backfill)
            and (node is None or i.node == node)
            and (bizdate is None or i.bizdate == bizdate)
            and (wanted is None or i.state in wanted)
        ]
        return sorted(found, key=_order)

    def task_rows(self, backfills: Sequence[str]) -> list[TaskTuple]:
        chosen = set(backfills)
        with self._lock:
            return [TaskRow.of(i) for i in self._instances.values() if i.backfill in chosen]

    def task_blocks(self, backfills: Sequence[str]) -> list[TaskBlock]:
        return blocks_of(self.task_rows(backfills))

    def counts(self, backfill: str | None = None) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(
                Counter(
                    (i.backfill, i.state)
                    for i in self._instances.values()
                    if backfill is None or i.backfill == backfill
                )
            )

    def month_counts(
        self, backfill: str
    ) -> dict[tuple[str, str, str, bool, bool], tuple[int, str]]:
        with self._lock:
            mine = [i for i in self._instances.values() if i.backfill == backfill]
        first: dict[int, int] = {}
        for i in mine:
            if i.state == "failed":
                first[i.group] = min(first.get(i.group, i.sequence), i.sequence)
        least: dict[tuple[str, str, str], str] = {}
        counts: Counter[tuple[str, str, str, bool, bool]] = Counter()
        for i in mine:
            behind = i.group in first and i.sequence > first[i.group]
            counts[(i.node, i.bizdate[:7], i.state, i.dry_run, behind)] += 1
            cell = (i.node, i.bizdate[:7], i.state)
            least[cell] = min(least.get(cell, i.id), i.id)
        return {key: (n, least[key[:3]]) for key, n in counts.items()}

    def date_counts(self, backfill: str) -> dict[tuple[int, int, str, str], int]:
        with self._lock:
            return dict(
                Counter(
                    (i.group, i.sequence, i.bizdate, i.state)
                    for i in self._instances.values()
                    if i.backfill == backfill
                )
            )

    def date_spans(self, backfill: str) -> dict[tuple[int, int, str], DateSpan]:
        with self._lock:
            mine = [i for i in self._instances.values() if i.backfill == backfill]
        return date_spans(
            (
                (i.group, i.sequence, i.bizdate),
                i.state,
                1,
                i.started_at,
                None if i.started_at is None else i.finished_at,
            )
            for i in mine
        )
