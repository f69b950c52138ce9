"""Attempts' logs kept in a shared store, so that `backfillctl logs` works wherever the
store is reachable (issue 14).

A backend writes an attempt's log as a file beside the store (the local backend while
it runs, the kubernetes backend's copy of the pod's log when it ends). A SQLite store
has its files beside it: whoever reads the store reads them. A PostgreSQL store is read
from laptops and pipelines that have no such files, so when an attempt's end is
recorded the controller keeps the log's last `CAP` bytes in the store (`log_copy`: one
file read per attempt, written in the end's own transaction). A log that runs on is
not copied while it runs: `logs` on another machine says where it runs.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from backfill_ctl.backends.files import RunFiles
from backfill_ctl.state.postgres.url import is_postgres_url

if TYPE_CHECKING:
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


def log_copy(store: StoreIdentity, log: str | None) -> tuple[str, int] | None:
    """At an attempt's end: what a shared store keeps of its log (the file at `log`, as
    the backend named it): its last CAP bytes, decoded, and the whole log's size, which
    end_attempt writes with the end, in one commit. None for a store that keeps no
    copies, and for a log that cannot be read (the file, where it is, is still the log)."""
    if not shares_logs(store) or not log:
        return None
    try:
        data, size = log_tail(RunFiles.of(store).readable(log))
    except OSError:
        return None
    return data.decode("utf-8", errors="replace"), size
