"""Adopting what a previous controller left (DESIGN §7): attempts whose processes still
run are followed, finished ones are recorded, ones that never started are put back, and
a stop an operator asked for meanwhile is carried out. An attempt begun but not recorded
as started is settled as the backend says (`recover`); one the backend cannot tell of
yet (unreachable) keeps its instance running and is asked of again on each tick, so it
never runs twice."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backfill_ctl.backends import BackendError
from backfill_ctl.runtime.attempts import AttemptRunner, Running

if TYPE_CHECKING:
    from collections.abc import Callable

    from backfill_ctl.core.records import AttemptRecord


class Adoption(AttemptRunner):
    """Adoption, for `Controller` (which sets these attributes)."""

    # Attempts begun but not recorded as started, which the backend could not tell of
    # yet: instance -> attempt number.
    _unsettled: dict[str, int]
    _load_backfill: Callable[[str], None]  # read a backfill whole into the scheduler

    def _adopt(self, attempt: AttemptRecord) -> None:
        """Follow an attempt a previous controller left; settle one it began but did not
        record as started, as the backend says (`recover`); one the backend cannot tell
        of now (unreachable) is asked of again on the next tick, its instance running
        meanwhile, so it never runs twice."""
        found = self.store.instances(ids=[attempt.instance])
        if not found:
            return
        record = found[0]
        if record.backfill not in self.scheduler.gates:
            self._load_backfill(record.backfill)
        started = attempt.state == "running"  # (a `starting` one's handle is its begin's)
        try:
            handle = (
                attempt.handle
                if started
                else self.backend.recover(self._spec(record, attempt.number), attempt.handle)
            )
        except BackendError as exc:
            if attempt.instance not in self._unsettled:
                self.say(
                    f"cannot tell yet whether attempt {attempt.number} of {record.id} "
                    f"started ({exc}): asking again on the next tick"
                )
            self._unsettled[attempt.instance] = attempt.number
            return
        self._unsettled.pop(attempt.instance, None)
        if not handle:
            self._settle_unstarted(record, attempt.number)
            return
        if not started:
            self.store.set_attempt_handle(record.id, attempt.number, handle, attempt.log)
        run = self.running[record.id] = Running(
            record.backfill,
            attempt.number,
            handle,
            # (as long as it ran by our clock: none if that is behind the one it began on)
            self._deadline(record.run.timeout, self.clock() - attempt.started_at),
            record.run.timeout,
            record.tries_left,
            retry_delay=record.run.retry_delay,
            log=attempt.log,
        )
        reach = self.backend.adopt(handle)  # what cannot be done for it from here, if any
        self.say(
            f"adopted attempt {attempt.number} of {record.id} ({record.node})"
            + (f": {reach}" if reach else "")
        )
        if record.stop_requested:  # asked while no controller ran: carried out now
            self._cancel(record.id, run, self._stopper(record.id))

    def _settle_later(self) -> None:
        """Ask the backend again of the attempts it could not tell of at adoption."""
        for instance, number in list(self._unsettled.items()):
            left = [
                a
                for a in self.store.attempts(instance, states=("starting", "running"))
                if a.number == number
            ]
            if left:
                self._adopt(left[0])
            else:  # settled meanwhile (an operator's rerun)
                del self._unsettled[instance]
