"""The PostgreSQL state store (psycopg 3): a team's shared store (DESIGN §7).

`open_postgres("postgresql://USER@HOST:PORT/DATABASE")`; the password comes from the URL,
libpq's environment ($PGPASSWORD, $PGPASSFILE) or `?passfile=`. psycopg is imported only
here, when such a store is opened (`pip install 'backfillctl[postgresql]'`).

It is the SQLite store's record parts (state/sql/) on a connection of its own
(`connection.py`): the same SQL but where the databases differ, and SQLite's schema
migrations, translated, so both stores have the same tables at the same version (kept in
`meta` as `schema_version`, beside `store_id`).

Why the semantics are exactly SQLite's. SQLite serializes writers (BEGIN IMMEDIATE: one
write transaction at a time, reading the database as the one before left it). Here every
write transaction first takes one transaction-level advisory lock
(`pg_advisory_xact_lock(WRITE_LOCK)`), held until it commits or rolls back, so writers
take turns too; and at READ COMMITTED each statement sees everything committed before it
began, so a writer, once it holds the lock, reads what every earlier writer committed and
nothing can commit beside it. Hence, as in SQLite:

- a guarded transition (select the rows in an allowed state, then update them) moves an
  instance at most once when two operators or controllers race: the second reads the
  first's result;
- the first report of an attempt's end wins: the second finds it no longer running;
- a fenced start checks the lease's epoch and begins the attempt in one turn: a new
  holder cannot take the lease between the check and the start;
- event ids grow in commit order (the identity is drawn under the lock), so a reader
  that has seen event N never later finds a new event below N.

Readers take no lock (each read is one statement in autocommit: one snapshot). A writer
waits for the lock up to the busy timeout (`lock_timeout`: SQLite's BUSY_TIMEOUT), then
fails with `StoreLocked` ("locked by another process"), nothing changed; a client
that leaves a transaction open (a paused process) is ended by the server after 20 s,
a lease holder's after half its lease (so a standby can take over when the lease
ends): it cannot hold every other writer back. One
store object serialises its calls (a lock), whichever thread makes them.

A connection lost mid-run makes the call fail with `StoreUnavailable` (the controller
keeps what it knows and retries); the next call connects again. A lost COMMIT's outcome
is unknown to the caller, as after a crash: every write is guarded or idempotent, so
writing it again does no harm. save_apply's new instances and events go in with COPY.

Round trips are what a write costs (bench/run_bench.py): a transaction's statements are
prepared once per connection and queued as EXECUTEs, sent as one query string when the
part reads a result and with the COMMIT (`connection._Transaction`), so the lock, the
statements and the COMMIT of a write that reads nothing back are one round trip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backfill_ctl.state import StateError
from backfill_ctl.state.postgres.url import is_postgres_url, redact

if TYPE_CHECKING:
    from backfill_ctl.state import StateStore

__all__ = ["is_postgres_url", "open_postgres", "redact"]


def open_postgres(url: str, *, create: bool = True) -> StateStore:
    """The store in the database of `url`; its tables are made when `create` and none
    are there yet."""
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise StateError(
            f"the state store {redact(url)} is in PostgreSQL, and psycopg is not installed",
            hint="pip install 'backfillctl[postgresql]'",
        ) from exc
    from backfill_ctl.state.postgres.store import PostgresStore

    return PostgresStore(url, create=create)
