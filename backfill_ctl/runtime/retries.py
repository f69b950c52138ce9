"""A retry's wait (`run.retryDelay`) measured on the controller's timer (monotonic).

The store and the scheduler keep when a retry may start as a time on the clock of the
controller that recorded it (`not_before`): that is what `describe` says ("retrying at
..."), and what the scheduler's gate compares with its `now`. Alone, that clock would
decide how long the wait lasts: one set back after the attempt failed stretches it by
as much, one set forward cuts it short, and a controller started with `--now` far ahead
records a time that a later controller on the wall clock waits for (a year, for a
`--now` a year ahead).

So the controller also keeps, for each retry it knows of, when its wait is over on the
timer: `retryDelay` after the attempt's end it recorded, or, for a retry it found in the
store (loaded, or recorded by another controller), what is left of it by this
controller's clock but never more than the node's `retryDelay` from when it was found.
Before each decision, a `not_before` that no longer agrees with the timer is told
again on the clock of now (nothing when they agree, so no reason is rewritten), and one
whose wait is over on the timer is lifted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backfill_ctl.core.records import WAITING

if TYPE_CHECKING:
    from collections.abc import Callable

    from backfill_ctl.runtime.scheduler import Scheduler
    from backfill_ctl.state.protocols import InstanceReads

_SLACK = 1.0  # seconds a told time may differ from the timer's before it is told again


class RetryWaits:
    """When each retry's wait is over, on `timer`: by instance (deadline, the
    `not_before` told to the scheduler for it)."""

    def __init__(self, timer: Callable[[], float]) -> None:
        self.timer = timer
        self._waits: dict[str, tuple[float, float]] = {}

    def began(self, instance: str, not_before: float, delay: float) -> None:
        """An attempt of `instance` ended now, to be retried at `not_before` (the clock),
        `delay` seconds from now."""
        self._waits[instance] = (self.timer() + delay, not_before)

    def hold(self, scheduler: Scheduler, store: InstanceReads, now: float) -> None:
        """Make the scheduler's retry times agree with the timer, at `now` (the clock)."""
        tb = scheduler.table
        told = {tb.ids[k]: at for k, at in tb.not_before.items() if tb.state_of(k) in WAITING}
        for gone in self._waits.keys() - told.keys():  # started, or no longer a retry
            del self._waits[gone]
        found = [i for i, at in told.items() if i not in self._waits or self._waits[i][1] != at]
        if found:  # the store's (loaded, reread): what is left, at most retryDelay
            for record in store.instances(ids=found):
                left = min(max(0.0, told[record.id] - now), record.run.retry_delay)
                self._waits[record.id] = (self.timer() + left, told[record.id])
        timer = self.timer()
        for instance, (deadline, at) in list(self._waits.items()):
            left = deadline - timer
            if left <= 0:
                if at > now:  # over on the timer, not yet on the clock: it may start
                    self._tell(scheduler, instance, None)
                    del self._waits[instance]
            elif at <= now or at > now + left + _SLACK:  # the clock moved
                self._tell(scheduler, instance, now + left)
                self._waits[instance] = (deadline, now + left)

    @staticmethod
    def _tell(scheduler: Scheduler, instance: str, not_before: float | None) -> None:
        state = scheduler.tasks[instance].state
        scheduler.set_state(instance, state, not_before=not_before)
