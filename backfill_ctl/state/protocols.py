"""What a state store offers, as narrow protocols, one per kind of consumer (DESIGN §7).

Nothing here is heavy: only `typing`, and the records for type checking. A pure module
(reconcile) can depend on these protocols without pulling in a store implementation.

The building blocks (`BackfillReads`, `InstanceReads`, ...) each hold a few methods; the
consumers' protocols are made of them:

- `PlanStore`: what apply and reconcile read and write (`save_apply`);
- `OperationsStore`: what an operator's verbs do (guarded transitions, backfill fields);
- `RunStore`: what the controller does (task rows, waiting states, attempts, the lease);
- `ReadStore`: what get, describe and progress show;
- `RetentionStore`: what gc weighs and deletes;
- `StateStore`: all of them; what a store implementation provides, and what the store
  contract suite (tests/state/contract.py) checks.

Semantics every implementation keeps: each call that changes state is atomic and writes
its events; transitions are guarded (only from an allowed state; the ids moved are
returned); the first report of an attempt's end wins; a fenced start raises `LeaseLost`
when the lease moved; a write the store cannot make for now raises `StoreUnavailable`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence
    from contextlib import AbstractContextManager

    from backfill_ctl.core.blocks import TaskBlock
    from backfill_ctl.core.records import (
        AttemptRecord,
        BackfillRecord,
        DateSpan,
        EventRecord,
        InstanceAge,
        InstanceRecord,
        Lease,
        Run,
        TaskTuple,
    )

# One waiting state as the scheduler decided it: (instance id, state, reason, blocker).
WaitingUpdate = tuple[str, str, "str | None", "Mapping[str, Any] | None"]
# A cell of a big backfill's grid: (instances, the smallest of their ids).
GridCount = tuple[int, str]


class AttemptEnd(NamedTuple):
    """How one attempt ended, as the controller reports it (`end_attempts`): the
    attempt's state and exit code, the message, what its instance becomes; with
    `not_before`, a retry waits until then; with `log`, the copy of its log's end and
    the whole log's size, kept in the same commit; with `handle`, the attempt's handle
    and log path, not written yet (it started and ended between two writes), written
    with its end: one statement, not two."""

    instance: str
    number: int
    attempt_state: str
    exit_code: int | None
    message: str | None
    instance_state: str
    not_before: float | None = None
    log: tuple[str, int] | None = None
    handle: tuple[dict[str, Any], str | None] | None = None


class Begun(NamedTuple):
    """An attempt `begin_attempts` began: its number, and what starting it needs of its
    instance, as the begin left it (`tries_left`: after the begin took one), read by
    the statement that began it."""

    id: str  # the instance
    number: int
    backfill: str
    node: str
    bizdate: str
    cyctime: str
    run: Run
    timezone: str
    tries_left: int


class StoredLog(NamedTuple):
    """The copy of an attempt's log kept in the store: its text (the last bytes of the
    log, decoded; NUL characters replaced), the whole log's size in bytes, and when it
    was stored. `size` larger than the text's bytes: the start was left out."""

    text: str
    size: int
    stored_at: float

    @property
    def cut(self) -> int:
        """How many bytes of the log's start the copy leaves out."""
        return max(0, self.size - len(self.text.encode("utf-8", errors="replace")))


class StoreIdentity(Protocol):
    """Where the store is and which one it is (what a backend tags its work with)."""

    path: str

    @property
    def store_id(self) -> str: ...
    def close(self) -> None: ...


class BackfillReads(Protocol):
    def backfills(self, *, include_deleted: bool = False) -> list[BackfillRecord]: ...
    def backfill(self, name: str) -> BackfillRecord | None: ...
    def resource_groups(self) -> dict[str, tuple[str, int]]: ...


class InstanceReads(Protocol):
    def instances(
        self,
        *,
        backfill: str | None = None,
        ids: Iterable[str] | None = None,
        states: Iterable[str] | None = None,
        node: str | None = None,
        bizdate: str | None = None,
    ) -> list[InstanceRecord]: ...


class CountReads(Protocol):
    def counts(self, backfill: str | None = None) -> dict[tuple[str, str], int]: ...
    def date_counts(self, backfill: str) -> dict[tuple[int, int, str, str], int]: ...
    def month_counts(self, backfill: str) -> dict[tuple[str, str, str, bool, bool], GridCount]:
        """(node, YYYY-MM, state, dry-run, behind a failed date of its group) ->
        (instances, the smallest id of that node, month and state): a big backfill's
        grid, aggregated in the store."""
        ...

    def date_spans(self, backfill: str) -> dict[tuple[int, int, str], DateSpan]:
        """(group, sequence, bizdate) -> when its attempts ran and its instances by state,
        in one aggregate read: the dashboard's Gantt of attempts and its date groups."""
        ...


class AttemptReads(Protocol):
    def attempts(
        self, instance: str | None = None, *, states: Iterable[str] | None = None
    ) -> list[AttemptRecord]: ...


class LogReads(Protocol):
    def stored_log(self, instance: str, number: int) -> StoredLog | None: ...


class EventReads(Protocol):
    def events(
        self,
        *,
        backfill: str | None = None,
        instance: str | None = None,
        after: int = 0,
        limit: int | None = None,
    ) -> list[EventRecord]: ...
    def news(self, after: int, origin: str) -> tuple[list[EventRecord], int]: ...
    def last_event_id(self) -> int: ...


class BackfillUpdates(Protocol):
    def update_backfill(
        self,
        name: str,
        *,
        at: float,
        actor: str,
        origin: str,
        event: str | None = None,
        **fields: Any,
    ) -> bool: ...


class Transitions(Protocol):
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
    ) -> list[str]: ...


class Batches(Protocol):
    def batch(self) -> AbstractContextManager[None]:
        """Every call inside in one transaction, committed at the end (all of it, or on
        an error none); a read inside sees the batch's writes, and no other writer
        changes the store meanwhile (a check and the change it allows are one)."""
        ...


class LeaseStore(Protocol):
    """The controller lease: one holder at a time, a new epoch for each new holder."""

    def acquire_lease(
        self, holder: str, *, pid: int, host: str, at: float | None = None, ttl: float
    ) -> Lease:
        """Take or renew the lease until `at` + `ttl` (`at` None: now by the store's
        clock, which every controller of the store shares); the lease as it stands."""
        ...

    def lease(self) -> Lease | None: ...
    def take_over_lease(self, dead_holder: str) -> None: ...
    def release_lease(self, holder: str) -> None: ...
    def check_fence(self, fence: tuple[str, int]) -> None: ...


class PlanStore(BackfillReads, InstanceReads, BackfillUpdates, CountReads, Protocol):
    """apply and reconcile: what is applied, and one transaction writing a new apply."""

    def save_apply(
        self,
        backfills: Sequence[BackfillRecord],
        creates: Sequence[InstanceRecord],
        updates: Sequence[InstanceRecord],
        cancels: Sequence[str],
        *,
        at: float,
        actor: str,
        origin: str,
        resource_groups: Sequence[tuple[str, str, int]] = (),
    ) -> list[str]:
        """One transaction: the backfills, new and changed instances, and of `cancels`
        those that have not started cancelled, each with its event; the ids cancelled,
        in the order of `cancels` (one that started meanwhile is kept, and has none)."""
        ...


class OperationsStore(
    StoreIdentity,
    BackfillReads,
    InstanceReads,
    BackfillUpdates,
    Transitions,
    Batches,
    EventReads,
    Protocol,
):
    """The operator's verbs (stop, rerun, set-success, delete ...); their messages name
    the store. `stop --force` reads what the lease's holder recorded of an attempt."""

    def lease(self) -> Lease | None: ...


class RunStore(
    StoreIdentity,
    BackfillReads,
    InstanceReads,
    BackfillUpdates,
    Transitions,
    Batches,
    AttemptReads,
    EventReads,
    LeaseStore,
    Protocol,
):
    """The controller: the scheduler's rows, waiting states, attempts, the lease, the
    copies of logs (a shared store's: usecases/attempt_logs.py)."""

    def save_log(self, instance: str, number: int, text: str, *, size: int, at: float) -> None: ...

    def task_rows(self, backfills: Sequence[str]) -> Iterable[TaskTuple]: ...
    def task_blocks(self, backfills: Sequence[str]) -> Iterable[TaskBlock]: ...
    def set_waiting(
        self, updates: Sequence[WaitingUpdate], *, at: float, actor: str, origin: str
    ) -> int: ...
    def begin_attempt(
        self,
        instance: str,
        backend: str,
        *,
        at: float,
        actor: str,
        origin: str,
        fence: tuple[str, int] | None = None,
    ) -> int | None: ...
    def begin_attempts(
        self,
        instances: Sequence[str],
        backend: str,
        *,
        at: float,
        actor: str,
        origin: str,
        fence: tuple[str, int] | None = None,
        handle: Mapping[str, Any] | None = None,
    ) -> dict[str, Begun]: ...
    def set_attempt_handle(
        self, instance: str, number: int, handle: dict[str, Any], log: str | None
    ) -> None: ...
    def set_attempt_handles(
        self, handles: Sequence[tuple[str, int, dict[str, Any], str | None]]
    ) -> None: ...
    def end_attempts(
        self, ends: Sequence[AttemptEnd], *, at: float, actor: str, origin: str
    ) -> list[bool]: ...
    def end_attempt(
        self,
        instance: str,
        number: int,
        *,
        attempt_state: str,
        exit_code: int | None,
        message: str | None,
        instance_state: str,
        at: float,
        actor: str,
        origin: str,
        not_before: float | None = None,
        log: tuple[str, int] | None = None,
    ) -> bool: ...
    def abandon_attempt(
        self,
        instance: str,
        number: int,
        *,
        state: str,
        reason: str,
        at: float,
        actor: str,
        origin: str,
    ) -> None: ...


class ReadStore(
    StoreIdentity,
    BackfillReads,
    InstanceReads,
    CountReads,
    AttemptReads,
    LogReads,
    EventReads,
    Protocol,
):
    """get, describe, progress: reads only."""


class RetentionStore(BackfillReads, BackfillUpdates, CountReads, AttemptReads, Protocol):
    """gc: what it weighs, and its deletions, each call one guarded transaction."""

    def instance_ages(self) -> list[InstanceAge]: ...
    def delete_instances(self, ids: Sequence[str], *, finished_before: float) -> list[str]: ...
    def delete_backfills(self, names: Sequence[str], *, finished_before: float) -> list[str]: ...
    def clear_logs(
        self, logs: Sequence[tuple[str, int, str]], *, at: float
    ) -> list[tuple[str, int]]: ...
    def add_events(
        self,
        kind: str,
        entries: Sequence[tuple[str | None, str]],
        *,
        at: float,
        actor: str,
        origin: str,
    ) -> None: ...


class StateStore(
    PlanStore, OperationsStore, RunStore, ReadStore, RetentionStore, StoreIdentity, Protocol
):
    """The whole store: what an implementation provides."""


class StoreRows(Protocol):
    """A store's tables as rows, inside one of its write transactions (state/sql/
    transfer.py): what `state migrate` reads from one store and writes into another."""

    def tables(self) -> list[str]: ...
    def count(self, table: str) -> int: ...
    def batches(self, table: str, size: int) -> Iterator[list[tuple[Any, ...]]]: ...
    def put(self, table: str, rows: Sequence[tuple[Any, ...]]) -> None: ...
    def loading(self, table: str) -> AbstractContextManager[None]: ...
    def store_id(self) -> str: ...
    def lease(self) -> tuple[str, int, str, float, int] | None: ...
    def event_counter(self) -> int: ...
    def adopt(self, store_id: str, event_counter: int) -> None: ...


class MovableStore(StoreIdentity, Protocol):
    """A store `state migrate` moves from or into: the SQL stores (not the in-memory
    one, which nothing outlives)."""

    def rows(self) -> AbstractContextManager[StoreRows]: ...
