"""The in-memory state store: the whole `StateStore` protocol in dictionaries, with the
SQLite store's semantics (the store contract suite, tests/state/contract.py, runs both).

Each change holds one lock, checks everything it may refuse before it changes anything
(so a refused change leaves nothing behind, like a rolled-back transaction), and writes
its events. Event ids only grow, as SQLite's AUTOINCREMENT. What a caller hands in or
gets back of a backfill's documents is copied, as a store that serialises them would.
Nothing survives the process: it serves tests and `open_store("memory:")`.

What goes where: `tables.py` holds the records, the event log and the reads;
`changes.py` apply, transitions and waiting states; `attempts.py` attempts and the lease;
`logs.py` the copies of attempts' logs; `retention.py` what gc deletes.
"""

from __future__ import annotations

from backfill_ctl.state.memory.attempts import Attempts
from backfill_ctl.state.memory.changes import Changes
from backfill_ctl.state.memory.logs import AttemptLogs
from backfill_ctl.state.memory.retention import Retention

__all__ = ["MemoryStore"]


class MemoryStore(Changes, Attempts, AttemptLogs, Retention):
    """A store that lives in this process only."""
