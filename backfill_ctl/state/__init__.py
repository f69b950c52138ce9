"""The state store: what has been applied and what has run (DESIGN §7).

What goes where:

- `protocols.py`: the interface, as narrow protocols per consumer (`PlanStore`,
  `RunStore`, `OperationsStore`, `ReadStore`, `RetentionStore`) and `StateStore`, all of
  them; light enough for pure modules to import;
- `sqlite/`: the SQLite store (stdlib sqlite3, WAL), one module per kind of record;
- `sql/`: the records of the SQL stores, shared by SQLite's and PostgreSQL's;
- `postgres/`: the PostgreSQL store (psycopg 3, imported only when opened);
- `memory/`: the in-memory store (tests, `open_store("memory:")`);
- here: the errors every store raises and `open_store`.

A new store implements `StateStore` and passes the store contract suite
(tests/state/contract.py). Every state change is atomic and writes its events; guarded
updates (only from an allowed state) make concurrent operators and the controller safe
without locks held across calls.
"""

from __future__ import annotations

import weakref
from pathlib import Path

from backfill_ctl.errors import UsageError
from backfill_ctl.state.protocols import (
    OperationsStore,
    PlanStore,
    ReadStore,
    RetentionStore,
    RunStore,
    StateStore,
)

__all__ = [
    "LeaseLost",
    "NoStore",
    "OperationsStore",
    "PlanStore",
    "ReadStore",
    "RetentionStore",
    "RunStore",
    "StateError",
    "StateStore",
    "StoreLocked",
    "StoreUnavailable",
    "open_store",
    "opened_stores",
    "store_path",
]


class StateError(UsageError):
    """The state store cannot be used: locked, corrupt, or from a newer version."""


class NoStore(StateError):
    """There is no store there yet (opened without `create`)."""


class StoreUnavailable(StateError):
    """A write failed for a cause outside the store that may pass (a full disk, an I/O
    error, a read-only file): nothing was changed; the same write may succeed later."""


class StoreLocked(StateError):
    """Another process held the store's write lock past the busy timeout (a long write,
    or a writer paused mid-write): nothing was changed; a controller waits and retries."""


class StoreConflict(StateError):
    """A write found the store changed since what it writes was read (another apply
    created the same instances meanwhile): nothing was changed; read again and retry."""


class LeaseLost(StateError):
    """This controller no longer holds the lease: another took it over. It must start
    nothing more (fencing)."""


def store_path(url: str, base: Path) -> Path:
    """`sqlite:///relative/path.db` (relative to `base`) or `sqlite:////absolute.db`."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise UsageError(
            "unsupported state URL (sqlite:/// or postgresql://)",
            hint="use sqlite:///relative/path.db (from the current directory), "
            "sqlite:////absolute/path.db or postgresql://USER@HOST:PORT/DATABASE",
        )
    path = Path(url[len(prefix) :])
    return path if path.is_absolute() else base / path


MEMORY = "memory:"  # open_store(MEMORY): a new, empty in-memory store


# The stores open_store opened that are still referenced: a process that ends without
# tearing its interpreter down (cli/teardown.py) closes them first.
_opened: weakref.WeakSet[StateStore] = weakref.WeakSet()


def open_store(path: Path | str, *, create: bool = True) -> StateStore:
    """The SQLite store at `path`; the PostgreSQL store of a `postgresql://` (or
    `postgres://`) URL; a new in-memory store for the string "memory:"."""
    store: StateStore
    if path == MEMORY:
        from backfill_ctl.state.memory import MemoryStore

        store = MemoryStore()
    elif isinstance(path, str) and path.startswith(("postgresql://", "postgres://")):
        from backfill_ctl.state.postgres import open_postgres

        store = open_postgres(path, create=create)
    else:
        from backfill_ctl.state.sqlite import SQLiteStore

        store = SQLiteStore(Path(path), create=create)
    _opened.add(store)
    return store


def opened_stores() -> list[StateStore]:
    """The stores open_store opened that something still holds (closed or not)."""
    return list(_opened)
