"""The state store: what has been applied and what has run (DESIGN §7).

`StateStore` is the interface the reconciler, the scheduler loop, the operations and
the inspection commands use; `SQLiteStore` is the implementation (stdlib sqlite3, WAL).
Every state change is one transaction and writes its events; guarded updates
(`UPDATE ... WHERE state IN (...)`) make concurrent operators and the controller safe
without locks held across calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from backfill_ctl.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from backfill_ctl.core.records import (
        AttemptRecord,
        BackfillRecord,
        EventRecord,
        InstanceAge,
        InstanceRecord,
        Lease,
        TaskRow,
    )


class StateError(UsageError):
    """The state store cannot be used: locked, corrupt, or from a newer version."""


class StoreUnavailable(StateError):
    """A write failed for a cause outside the store that may pass (a full disk, an I/O
    error, a read-only file): nothing was changed; the same write may succeed later."""


class LeaseLost(StateError):
    """This controller no longer holds the lease: another took it over. It must start
    nothing more (fencing)."""


class StateStore(Protocol):
    path: str

    @property
    def store_id(self) -> str: ...

    # -- backfills and instances ---------------------------------------------------
    def backfills(self, *, include_deleted: bool = False) -> list[BackfillRecord]: ...
    def backfill(self, name: str) -> BackfillRecord | None: ...
    def instances(
        self,
        *,
        backfill: str | None = None,
        ids: Iterable[str] | None = None,
        states: Iterable[str] | None = None,
        node: str | None = None,
        bizdate: str | None = None,
    ) -> list[InstanceRecord]: ...
    def counts(self, backfill: str | None = None) -> dict[tuple[str, str], int]: ...
    def date_counts(self, backfill: str) -> dict[tuple[int, int, str, str], int]: ...
    def task_rows(self, backfills: Sequence[str]) -> list[TaskRow]: ...
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
    ) -> None: ...
    def resource_groups(self) -> dict[str, tuple[str, int]]: ...
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

    # -- state changes ---------------------------------------------------------------
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
    def set_waiting(
        self,
        updates: Sequence[tuple[str, str, str | None, Mapping[str, Any] | None]],
        *,
        at: float,
        actor: str,
        origin: str,
    ) -> int: ...

    # -- attempts -------------------------------------------------------------------
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
    def check_fence(self, fence: tuple[str, int]) -> None: ...
    def set_attempt_handle(
        self, instance: str, number: int, handle: dict[str, Any], log: str | None
    ) -> None: ...
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
    def attempts(
        self, instance: str | None = None, *, states: Iterable[str] | None = None
    ) -> list[AttemptRecord]: ...

    # -- retention (gc): each call is one transaction -----------------------------------
    def instance_ages(self) -> list[InstanceAge]: ...
    def delete_instances(self, ids: Sequence[str], *, finished_before: float) -> list[str]: ...
    def delete_backfills(self, names: Sequence[str], *, finished_before: float) -> list[str]: ...
    def clear_logs(self, logs: Sequence[tuple[str, int, str]]) -> list[tuple[str, int]]: ...
    def add_events(
        self,
        kind: str,
        entries: Sequence[tuple[str | None, str]],
        *,
        at: float,
        actor: str,
        origin: str,
    ) -> None: ...

    # -- events and the lease ---------------------------------------------------------
    def events(
        self,
        *,
        backfill: str | None = None,
        instance: str | None = None,
        after: int = 0,
        limit: int | None = None,
        not_from: str | None = None,
    ) -> list[EventRecord]: ...
    def last_event_id(self) -> int: ...
    def acquire_lease(
        self, holder: str, *, pid: int, host: str, at: float, ttl: float
    ) -> Lease: ...
    def lease(self) -> Lease | None: ...
    def take_over_lease(self, dead_holder: str) -> None: ...
    def release_lease(self, holder: str) -> None: ...
    def close(self) -> None: ...


def store_path(url: str, base: Path) -> Path:
    """`sqlite:///relative/path.db` (relative to `base`) or `sqlite:////absolute.db`."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise UsageError(
            f"unsupported state URL {url!r}",
            hint="use sqlite:///relative/path.db (from the current directory) or sqlite:////absolute/path.db",
        )
    path = Path(url[len(prefix) :])
    return path if path.is_absolute() else base / path


def open_store(path: Path, *, create: bool = True) -> StateStore:
    from backfill_ctl.state.sqlite import SQLiteStore

    return SQLiteStore(path, create=create)
