"""Stopping the controller's attempts: a stop an operator asked for, and a timeout.

A stop is asked of the backend, which ends the attempt's processes (TERM, then KILL);
the attempt is recorded as ended only once the backend says none of them is left. One
the backend cannot reach from here (it runs in another place) runs on, said once: its
end is recorded as it comes.

A timeout is measured on the controller's timer (monotonic), not on its clock: a clock
that is set back (NTP, an operator) would let an attempt run on past its timeout for as
long, one set forward would kill healthy attempts, and a `--now` clock is the plan's
time, not the attempt's. An adopted attempt is given what is left of its timeout by the
adopting controller's clock (all of it if that clock is behind the one it began on).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backfill_ctl.backends import BackendError
from backfill_ctl.runtime.lease import LeaseHolder

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from backfill_ctl.backends import Backend, Outcome
    from backfill_ctl.core.records import EventRecord
    from backfill_ctl.runtime.attempts import Running


class Stopping(LeaseHolder):
    """Stops and timeouts, for `AttemptRunner` (`Controller` sets these attributes)."""

    backend: Backend
    clock: Callable[[], float]  # the time the controller records and schedules by
    timer: Callable[[], float]  # monotonic seconds, that timeouts are measured on
    running: dict[str, Running]
    _outcomes: dict[str, tuple[Running, Outcome]]

    def _deadline(self, timeout: float | None, elapsed: float = 0.0) -> float | None:
        """When an attempt with `timeout` that ran `elapsed` s so far times out, on the
        timer (None: never)."""
        return None if not timeout else self.timer() + timeout - max(0.0, elapsed)

    def _stopper(self, instance: str, events: Sequence[EventRecord] | None = None) -> str:
        """Who asked to stop `instance` (the newest stop event), for the reason: among
        `events` (a tick's news), else in the store (the stop's event committed after
        the news were read, with the flag the tick then read)."""

        def stoppers(batch: Sequence[EventRecord]) -> list[str]:
            return [e.actor for e in batch if e.instance == instance and e.kind == "stop"]

        found = stoppers(events or ()) or stoppers(self.store.events(instance=instance, limit=20))
        return f"stopped by {found[-1] if found else 'an operator'}"

    def _cancel(self, instance: str, run: Running, reason: str, *, retry: bool = False) -> None:
        """Stop an attempt (`retry`: as after a timeout). One the backend cannot reach runs
        on, said so: its end is recorded as it comes (after a stop, not retried)."""
        try:
            self.backend.cancel((instance, run.number), run.handle, reason)
        except BackendError as exc:
            run.refused, run.retry = reason, run.retry and retry
            self.say(f"cannot stop attempt {run.number} of {instance} ({reason}): {exc}")
            return
        run.cancelled, run.retry = reason, retry

    def _enforce(self) -> None:
        now = self.timer()
        for instance, run in self.running.items():
            if instance in self._outcomes:  # ended: its end is only not written yet
                continue
            stopping = run.cancelled or run.refused
            if not stopping and run.timeout and run.deadline is not None and now > run.deadline:
                self._cancel(instance, run, f"timed out after {duration(run.timeout)}", retry=True)


def duration(seconds: float) -> str:
    """`seconds` as a message says it: `45s`, `10m00s`, `2h05m`."""
    s = int(seconds)
    return (
        f"{s // 3600}h{s % 3600 // 60:02d}m"
        if s >= 3600
        else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")
    )
