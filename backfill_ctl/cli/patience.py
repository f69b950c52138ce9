"""Reading a state store that may be away for a while: what `apply --wait` and `wait`
do while they show progress, follow a controller and say how the backfills ended.

A store that cannot be reached (a PostgreSQL server restarting), is full, or is locked by
a writer paused mid-write — what the controller waits for too (`runtime.lease.waitable`)
— is waited for, not a reason to exit: said once an outage (the first failure: a server
that restarts first ends the session, then refuses new ones), and once more when it
answers again. Between tries the wait doubles from RETRY_FIRST to RETRY_MOST seconds.
Any other error (a corrupt store, a bad password) is raised at once, as before.

Two ways to read:
- `ask(read, otherwise)`: one try now (none while waiting to retry), else `otherwise`,
  for loops that must go on meanwhile (the embedded controller follows its attempts, and
  `--timeout` is theirs to judge);
- `read(read)`: tries until it answers, for what cannot go on without the answer.
Either gives up with `StoreGone` once the store has been away for `limit` seconds
(OUTAGE_LIMIT by default): a clear error; the caller makes its hint say what was done.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, TypeVar

from backfill_ctl.runtime.lease import waitable
from backfill_ctl.state import StateError

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")

OUTAGE_LIMIT = 600.0  # seconds a store may be away before apply --wait and wait give up
RETRY_FIRST = 0.5  # seconds before the first retry, doubled each time
RETRY_MOST = 5.0  # seconds between two retries at most


class StoreGone(StateError):
    """The store was away for longer than a reader waits for it."""


class Patience:
    """The reads of one command, through one outage at a time (see the module)."""

    def __init__(
        self,
        say: Callable[[str], None],
        *,
        limit: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.say, self.clock, self.sleep = say, clock, sleep
        self.limit = OUTAGE_LIMIT if limit is None else limit
        self.since: float | None = None  # when the current outage began (`clock`)
        self._retry_at = 0.0
        self._backoff = 0.0

    @property
    def away(self) -> bool:
        """Is the store away (its last read failed)?"""
        return self.since is not None

    def ask(self, read: Callable[[], T], otherwise: T) -> T:
        """`read()`, or `otherwise` while the store is away (tried again when due)."""
        if self.since is not None and self.clock() < self._retry_at:
            return otherwise
        try:
            value = read()
        except StateError as exc:
            if not waitable(exc):
                raise
            self._failed(exc)
            return otherwise
        self._answered()
        return value

    def read(self, read: Callable[[], T]) -> T:
        """`read()`, tried again until the store answers."""
        while True:
            try:
                value = read()
            except StateError as exc:
                if not waitable(exc):
                    raise
                self._failed(exc)
                self.sleep(max(0.0, self._retry_at - self.clock()))
                continue
            self._answered()
            return value

    def _failed(self, exc: StateError) -> None:
        now = self.clock()
        if self.since is None:
            self.since = now
            limit = _span(self.limit)
            self.say(f"{exc.message}: waiting for the state store ({limit} at most)")
        elif now - self.since >= self.limit:
            raise StoreGone(
                f"the state store has been away for {_span(now - self.since)}: stopped "
                f"waiting for it ({exc.message})",
                hint="nothing was changed by waiting; when the store is back, run the same "
                "command again (backfillctl get backfills says where each backfill is)",
            ) from exc
        self._backoff = min(RETRY_MOST, max(RETRY_FIRST, self._backoff * 2))
        self._retry_at = now + self._backoff

    def _answered(self) -> None:
        if self.since is not None:
            self.say("the state store answers again: carrying on")
        self.since, self._backoff, self._retry_at = None, 0.0, 0.0


def _span(seconds: float) -> str:
    """90 s, 10 min."""
    return f"{seconds / 60:g} min" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:.0f} s"
