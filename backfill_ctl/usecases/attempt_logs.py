"""Attempts' logs kept in a shared store, so that `backfillctl logs` works wherever the
store is reachable (issue 14).

A backend writes an attempt's log as a file beside the store (the local backend while
it runs, the kubernetes backend's copy of the pod's log when it ends). A SQLite store
has its files beside it: whoever reads the store reads them. A PostgreSQL store is read
from laptops and pipelines that have no such files, so when an attempt's end is
recorded the controller keeps the log's last `CAP` bytes in the store (`keep_log`: one
file read and one write per attempt, after the outcome is stored). A log that runs on is
not copied while it runs: `logs` on another machine says where it runs.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from backfill_ctl.state import StateError
from backfill_ctl.state.postgres.url import is_postgres_url

if TYPE_CHECKING:
    from backfill_ctl.state import RunStore
    from backfill_ctl.state.protocols import StoreIdentity

CAP = 1 << 20  # bytes of a log's end kept in the store


def shares_logs(store: StoreIdentity) -> bool:
    """Whether `store` keeps copies of the logs: one that is not a file (a PostgreSQL
    store; its path is the URL, password hidden)."""
    return is_postgres_url(store.path)


def log_tail(path: str, cap: int = CAP) -> tuple[bytes, int]:
    """The last `cap` bytes of the file at `path` and its size (raises OSError)."""
    with open(path, "rb") as f:  # noqa: PTH123
        size = os.fstat(f.fileno()).st_size
        f.seek(max(0, size - cap))
        return f.read(cap), size


def keep_log(store: RunStore, instance: str, number: int, log: str | None, at: float) -> bool:
    """At an attempt's end, once its outcome is stored: a copy of the end of its log (the
    file at `log`, as the backend named it) in a shared store. Never fails its caller: a
    log that cannot be read or written is only not copied (the file, where it is, is
    still the log). Whether it was kept."""
    if not shares_logs(store) or not log:
        return False
    try:
        data, size = log_tail(log)
        store.save_log(instance, number, data.decode("utf-8", errors="replace"), size=size, at=at)
    except (OSError, StateError):
        return False
    return True
