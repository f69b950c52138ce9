"""Adopting what a previous controller left (DESIGN §7): attempts whose processes still
run are followed, finished ones are recorded, ones that never started are put back, and
a stop an operator asked for meanwhile is carried out. An attempt begun but not recorded
as started is settled as the backend says (`recover`); one the backend cannot tell of
yet (unreachable) keeps its instance running and is asked of again on each tick, so it
never runs twice. An attempt adopted out of reach (the backend cannot see nor signal its
processes) is recorded so, which lets an operator declare it ended (`stop --force`,
usecases/force_stop.py) once its place is gone: carried out here (`_stop_asked`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backfill_ctl.backends import BackendError
from backfill_ctl.runtime.attempts import AttemptRunner, Running

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from backfill_ctl.core.records import AttemptRecord, EventRecord, InstanceRecord


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
        self._followed(record, attempt.number, self.backend.adopt(handle))
        if record.stop_requested:  # asked while no controller ran: carried out now
            self._stop_asked(record.id, run)

    def _followed(self, record: InstanceRecord, number: int, reach: str | None) -> None:
        """Say an attempt was adopted, and `reach`, what cannot be done for it from here
        (if any): recorded too, by this controller, as what `stop --force` is allowed on."""
        self.say(
            f"adopted attempt {number} of {record.id} ({record.node})"
            + (f": {reach}" if reach else "")
        )
        if reach:
            from backfill_ctl.usecases import force_stop  # (seldom: not on every start)

            self.store.transition(
                [record.id],
                "running",
                allowed=["running"],
                at=self.clock(),
                actor=self.actor,
                origin=self.origin,
                reason=f"attempt {number} {reach.removeprefix('it ')}",
                kind=force_stop.OUT_OF_REACH,
            )

    def _stop_asked(
        self, instance: str, run: Running, events: Sequence[EventRecord] | None = None
    ) -> None:
        """An operator asked to stop the attempt (`stop_requested`; `events`: a tick's
        news). With `stop --force` (usecases/force_stop.py), the backend reports it ended
        where it cannot follow it; one it can follow after all is stopped."""
        from backfill_ctl.usecases import force_stop  # (operations: 4 ms, seldom needed)

        forced = force_stop.forced_by(force_stop.current(self.store, instance))
        if forced is not None:
            why = (
                f"stop --force by {forced}: declared ended where this controller could not "
                "follow its processes (no exit code came)"
            )
            if run.refused == why:  # (declared already)
                return
            try:
                self.backend.declare_ended((instance, run.number), run.handle, why)
            except BackendError as exc:  # (taken over since by a controller that sees it)
                self.say(f"attempt {run.number} of {instance}: {exc}; stopping it")
                if run.cancelled is None:
                    self._cancel(instance, run, f"stopped by {forced}")
                return
            run.refused, run.retry = why, False
            self.say(f"attempt {run.number} of {instance}: {why}")
            return
        if run.cancelled is None:
            self._cancel(instance, run, self._stopper(instance, events))

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
