"""The end of an attempt's log as the instance page shows it and its script follows it:
read from the log file beside the store by bytes, in whole characters (a character
half-written, or cut by the LOG_TAIL bytes read, waits for the next poll); else the
store's copy of a finished attempt's log (a shared PostgreSQL store's, for a dashboard
on another machine than the attempt's)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from backfill_ctl.backends.files import RunFiles
from backfill_ctl.usecases.log_reading import whole

if TYPE_CHECKING:
    from backfill_ctl.core.records import AttemptRecord
    from backfill_ctl.state import StateStore

LOG_TAIL = 64 * 1024  # bytes of a log the instance page shows, or a poll sends


def log_of(store: StateStore, attempt: AttemptRecord | None) -> str | None:
    """Where the attempt's log file is read: beside the store (`RunFiles.readable`)."""
    return RunFiles.of(store).readable(attempt.log) if attempt and attempt.log else None


def since(path: str | None, offset: int, ended: bool) -> tuple[int, bytes, int]:
    """(where it was read from, at most LOG_TAIL bytes, the log's size): from `offset`,
    or from 0 when the log is shorter (cut, or another); `offset` and nothing when it
    cannot be read (not on this machine). Whole characters only: the first bytes of one
    whose last are not read (not written yet, or past LOG_TAIL) wait for the next poll,
    unless the attempt `ended` and they end the log."""
    data, size = b"", 0
    with contextlib.suppress(OSError), Path(path or "").open("rb") as f:
        size = f.seek(0, 2)
        offset = offset if 0 <= offset <= size else 0
        f.seek(offset)
        data = f.read(LOG_TAIL)
    if not (ended and offset + len(data) == size):
        data = data[: whole(data)]
    return offset, data, size


def tail(path: str | None, ended: bool) -> tuple[str | None, int]:
    """The last LOG_TAIL bytes of a log, and where they end (where following it goes
    on): whole characters only, the first bytes of one not written yet left for the
    page's next poll (unless the attempt `ended`)."""
    if not path:
        return None, 0
    try:
        with Path(path).open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - LOG_TAIL))
            data = f.read()
    except OSError:
        return None, 0
    if size > LOG_TAIL:  # it starts with a whole character (a continuation byte does not)
        data = data[next((n for n in range(3) if not 0x80 <= data[n] < 0xC0), 3) :]
    hidden = size - len(data)
    if not ended:
        data = data[: whole(data)]
    cut = f"[the first {hidden} bytes are not shown]\n" if hidden else ""
    return cut + data.decode("utf-8", errors="replace"), hidden + len(data)


def kept(store: StateStore, attempt: AttemptRecord) -> tuple[str | None, int]:
    """The tail of the copy of a finished attempt's log that a shared (PostgreSQL) store
    keeps, for a dashboard on another machine than the attempt's."""
    kept = store.stored_log(attempt.instance, attempt.number)
    if kept is None:
        return None, 0
    text = kept.text[-LOG_TAIL:]
    shown = len(text.encode("utf-8", errors="replace"))
    cut = f"[the first {kept.size - shown} bytes are not shown]\n" if kept.size > shown else ""
    return cut + text, kept.size
