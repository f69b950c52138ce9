"""Stopping the controller's attempts: a stop an operator asked for, and a timeout.

A stop is asked of the backend, which ends the attempt's processes (TERM, then KILL);
the attempt is recorded as ended only once the backend says none of them is left. One
the backend cannot reach from here (it runs in another place) runs on, said once: its
end is recorded as it comes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backfill_ctl.backends import BackendError
from backfill_ctl.runtime.lease import LeaseHolder

if TYPE_CHECKING:
    from collections.abc import Sequence

    from backfill_ctl.backends import Backend, Outcome
    from backfill_ctl.core.records import EventRecord
    from backfill_ctl.runtime.attempts import Running


class Stopping(LeaseHolder):
    """Stops and timeouts, for `AttemptRunner` (`Controller` sets these attributes)."""

    backend: Backend
    running: dict[str, Running]
    _outcomes: dict[str, tuple[Running, Outcome]]

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

    def _enforce(self, now: float) -> None:
        for instance, run in self.running.items():
            if instance in self._outcomes:  # ended: its end is only not written yet
                continue
            stopping = run.cancelled or run.refused
            if not stopping and run.timeout and now - run.started > run.timeout:
                self._cancel(instance, run, f"timed out after {duration(run.timeout)}", retry=True)


def duration(seconds: float) -> str:
    """`seconds` as a message says it: `45s`, `10m00s`, `2h05m`."""
    s = int(seconds)
    return (
        f"{s // 3600}h{s % 3600 // 60:02d}m"
        if s >= 3600
        else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")
    )
